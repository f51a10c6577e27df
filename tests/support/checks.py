"""A check-result sink for checker tests."""

from __future__ import annotations

import asyncio

from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus


class Results:
    """A sink that lets a test await the n-th result."""

    def __init__(self) -> None:
        self.items: list[CheckResult] = []
        self._event = asyncio.Event()

    def __call__(self, result: CheckResult) -> None:
        self.items.append(result)
        self._event.set()

    async def wait(self, n: int) -> list[CheckResult]:
        async with asyncio.timeout(5):
            while len(self.items) < n:
                self._event.clear()
                await self._event.wait()
        return self.items[:n]


class FailingSink:
    """A sink that raises on every result (a bug in the engine's side); `done` at the `n`-th."""

    def __init__(self, n: int = 3) -> None:
        self.seen: list[CheckResult] = []
        self.done = asyncio.Event()
        self._n = n

    def __call__(self, result: CheckResult) -> None:
        self.seen.append(result)
        if len(self.seen) == self._n:
            self.done.set()
        raise RuntimeError("sink bug")


P, F, U = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.UNKNOWN

RISE_FALL = [
    # (the checks' verdicts, rise, fall, the status after each)
    ([True, False, True], 1, 1, [P, F, P]),
    ([False, True], 1, 1, [F, P]),
    ([True, True, True, False, True], 3, 1, [U, U, P, F, F]),
    ([False, False, True, False, False, False], 1, 3, [U, U, P, P, P, F]),
    ([True, False, True, True, False, False], 2, 2, [U, U, U, P, P, F]),
]
"""Rise/fall cases: counted by `decide.count` and, end to end, by a Checker."""
