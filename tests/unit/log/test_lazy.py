"""A logger that logged before the configure hook was set still runs that hook first."""

from __future__ import annotations

from codex_indexd.log import lazy


def test_a_hook_set_after_a_logger_logged_runs_before_its_next_line() -> None:
    calls: list[str] = []
    logger = lazy.get_logger("codex_indexd.test_lazy")
    lazy.set_configure_hook(lambda: calls.append("first"))
    logger.debug("one")  # runs the first hook
    lazy.set_configure_hook(lambda: calls.append("second"))
    logger.debug("two")  # the same logger: the new hook still runs
    logger.debug("three")
    lazy.set_configure_hook(None)
    assert calls == ["first", "second"]
