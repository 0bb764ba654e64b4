"""Import structlog without asyncio.

structlog's `stdlib` and `_native` modules import asyncio at their top for the async logger
methods only (`asyncio.get_running_loop()` inside `async def`s), which this package never
calls. asyncio brings ssl, socket, selectors and concurrent.futures: about 3 MiB of the
daemon's RSS and 15 ms of its start. While structlog is imported, `sys.modules["asyncio"]`
is a stand-in module; the first attribute anyone asks of it imports the real asyncio and
answers from it, and the stand-in leaves `sys.modules` as soon as structlog is imported, so
any later `import asyncio` gets the real module.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

_DEFERRED = "asyncio"


class _StandIn(types.ModuleType):
    """A module whose attributes are the real module's, imported when first asked for."""

    def __getattr__(self, name: str) -> object:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


@contextmanager
def asyncio_deferred() -> Iterator[None]:
    """Within the block, `import asyncio` binds a stand-in that imports asyncio on first use
    (nothing changes when asyncio is already imported)."""
    if _DEFERRED in sys.modules:
        yield
        return
    stand_in = _StandIn(_DEFERRED)
    sys.modules[_DEFERRED] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(_DEFERRED) is stand_in:
            del sys.modules[_DEFERRED]
