"""What one heal found, what Codex healed, and what is left (never any prompt or name text)."""

from __future__ import annotations

from codex_indexd.heal.detect import NAME_LOST, REASONS, ROW_MISSING, ROW_STALE
from codex_indexd.records import field, record

# A count of a reason reads "<n> <words>" in the summary (the codes stay in JSON).
REASON_WORDS = {
    NAME_LOST: ("lost name", "lost names"),
    ROW_MISSING: ("rollout without a row", "rollouts without a row"),
    ROW_STALE: ("row pointing at a moved rollout", "rows pointing at moved rollouts"),
}


def zero_counts() -> dict[str, int]:
    """Return a count of 0 for every reason."""
    return dict.fromkeys(REASONS, 0)


def _no_ids() -> dict[str, list[str]]:
    return {reason: [] for reason in REASONS}


@record(slots=True)
class HealReport:
    """What was found, what Codex healed, and what is left (never any prompt or name text)."""

    mode: str
    detected: dict[str, int] = field(default_factory=zero_counts)
    ids: dict[str, list[str]] = field(default_factory=_no_ids)  # first few, by reason
    healed: dict[str, int] = field(default_factory=zero_counts)
    not_healed: dict[str, int] = field(default_factory=zero_counts)
    not_healed_ids: dict[str, list[str]] = field(default_factory=_no_ids)
    given_up: dict[str, int] = field(default_factory=zero_counts)  # not retried: MAX_TRIES reached
    skipped_reason: str | None = None  # set when healing did not run
    how_to_enable: str = ""  # set when healing is off or unusable
    codex_binary: str | None = None
    codex_version: str | None = None
    ran: bool = False  # an app-server child was started
    error: str | None = None  # the child failed (timeout, exit, protocol)
    notes: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # the caller persists this
    duration_s: float = 0.0

    @property
    def total_detected(self) -> int:
        return sum(self.detected.values())

    @property
    def total_healed(self) -> int:
        return sum(self.healed.values())

    @property
    def total_not_healed(self) -> int:
        return sum(self.not_healed.values())

    def summary(self) -> str:
        """One line for `status`."""
        found = (
            ", ".join(
                f"{n} {REASON_WORDS[reason][n != 1]}" for reason, n in self.detected.items() if n
            )
            or "nothing"
        )
        if self.skipped_reason is not None:
            return f"DB heal: found {found}; not healed ({self.skipped_reason})"
        if not self.ran:
            left = f"; {self.total_not_healed} left" if self.total_not_healed else ""
            return f"DB heal: found {found}{left}"
        text = f"DB heal: found {found}; healed {self.total_healed}, {self.total_not_healed} left"
        if self.error:
            text += f" ({self.error})"
        return text
