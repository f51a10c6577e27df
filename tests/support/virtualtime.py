"""An event loop on virtual time: timers fire in order, at once, and `loop.time()` jumps to them.

For tests of schedules (start to start, offsets, overruns): a wait the loop would spend idle in
`select` advances the virtual clock instead, so `asyncio.sleep(0.03)` in a fake probe takes no
real time and every start lands exactly where the checker decided. Real sockets still work (they
are polled without blocking) but a test of real servers should keep real time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any
from typing import TypeVar

T = TypeVar("T")


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector loop whose clock starts at `start` and only moves when the loop would wait."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self.now = start
        selector = self._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            events: list[tuple[selectors.SelectorKey, int]] = real_select(0)
            if events or not timeout:  # ready now, or no timer to jump to (None: would block)
                return events if events or timeout is not None else real_select(None)
            self.now += timeout
            return []

        selector.select = select

    def time(self) -> float:
        return self.now


def run_virtual(main: Coroutine[Any, Any, T], start: float = 1000.0) -> T:
    """Run `main` to its end on a fresh virtual-time loop."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
