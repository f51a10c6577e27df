"""The state database's writer thread: commits leave the event loop (issue 14 item 3).

A commit with `synchronous=FULL` waits for the disk (~6 ms here, far more on a busy one). One
thread owns the one SQLite connection: it opens, loads, saves and closes it, in the order the
calls were made. The owner task awaits each commit and acknowledges an admin command only after
it (SPEC §6), as before; meanwhile the event loop serves checks, consoles and the kernel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ipvswm.engine.state import StateChanges
from ipvswm.engine.state import StateSnapshot
from ipvswm.store.database import Store

R = TypeVar("R")


class StoreWriter:
    """A `Store` used from its own thread; every call is awaited on the event loop."""

    def __init__(self, store: Store, thread: ThreadPoolExecutor) -> None:
        """Use `open`: the store must have been opened in `thread`."""
        self.store = store
        self._thread = thread

    @classmethod
    async def open(cls, path: str) -> StoreWriter:
        """Open the database at `path` in a new writer thread (raises StoreError)."""
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        try:
            store = await asyncio.get_running_loop().run_in_executor(thread, Store, path)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(store, thread)

    async def _run(self, fn: Callable[[], R]) -> R:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def load(self) -> StateSnapshot:
        """The whole stored state."""
        return await self._run(self.store.load)

    async def save(self, changes: StateChanges) -> None:
        """Commit one transaction; returns once it is durable (raises what the store raised)."""
        if changes:
            await self._run(lambda: self.store.save(changes))

    async def close(self) -> None:
        """Close the database (after the calls made before) and end the thread."""
        try:
            await self._run(self.store.close)
        finally:
            self._thread.shutdown(wait=False)
