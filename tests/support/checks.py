"""A check-result sink for checker tests."""

from __future__ import annotations

import asyncio

from ipvswm.events import CheckResult


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
