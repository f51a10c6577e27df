"""A config file with a watcher on it, and an `on_change` that records what each call saw."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ipvswm.config.watch import ConfigWatcher

WAIT = 30.0  # generous readiness bound for `Recorder.next`


class Recorder:
    """An `on_change` that keeps the content the file had at each call (`seen`, in order)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[str] = []
        self.called = asyncio.Event()
        self._new: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self) -> None:
        text = self.path.read_text()
        self.seen.append(text)
        self.called.set()
        self._new.put_nowait(text)

    async def next(self) -> str:
        """What the next call saw (waits for it)."""
        return await asyncio.wait_for(self._new.get(), WAIT)

    def pending(self) -> bool:
        """Whether a call happened that `next` has not returned yet."""
        return not self._new.empty()


def watched(
    tmp: Path, text: str, period: float, **options: Any
) -> tuple[Path, Recorder, ConfigWatcher]:
    """`tmp/ipvswm.conf` holding `text`, its Recorder and a watcher (not started) polling it."""
    path = tmp / "ipvswm.conf"
    path.write_text(text)
    on_change = Recorder(path)
    return path, on_change, ConfigWatcher(str(path), period, on_change, **options)
