"""Notices when the config file changes (mtime, size, inode), for automatic reload (SPEC §2.4)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from ipvswm.offload import run_detached

log = logging.getLogger(__name__)

Signature = tuple[int, int, int, int] | None
"""(inode, device, size, mtime_ns) of the file, or None when it cannot be stat'ed."""


def file_signature(path: str) -> Signature:
    """What identifies a version of the file without reading it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class ConfigWatcher:
    """Polls the file every `period` seconds and calls `on_change` once a change has settled.

    A change is handed over only when the file's signature is the same on two consecutive polls,
    i.e. the file has been quiet for a whole period: `cat new > conf` truncates before it writes,
    and an empty or cut-off file is often valid (it would delete virtual services). The signature
    of the version last handed over is remembered, so a file that stays invalid is reported once
    and a new version is tried as soon as it has settled.
    """

    def __init__(
        self,
        path: str,
        period: float,
        on_change: Callable[[], Awaitable[None]],
        *,
        seen: Signature | bool = True,
    ) -> None:
        """`seen`: the signature of the version already in force (True: the file as it is now);
        a daemon passes what it had before its start-up, so an edit made meanwhile is noticed."""
        self.path = path
        self.period = period
        self._on_change = on_change
        self._seen: Signature = file_signature(path) if seen is True else seen or None
        self._candidate: Signature = self._seen  # what the previous poll saw
        self._task: asyncio.Task[None] | None = None

    def mark_current(self) -> None:
        """The file as it is now has been handled (e.g. by a manual reload)."""
        self.mark_seen(file_signature(self.path))

    def mark_seen(self, signature: Signature) -> None:
        """The version of the file with this signature has been handled."""
        self._seen = self._candidate = signature

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="config-watcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self.poll()

    async def poll(self) -> bool:
        """Look at the file once; returns whether a settled change was handled."""
        # A stat can hang on a hung mount: never on the event loop (one such thread at most,
        # as polls follow each other).
        path = self.path
        current = await run_detached(lambda: file_signature(path), "config-stat")
        previous, self._candidate = self._candidate, current
        if current == self._seen or current != previous:
            return False  # unchanged, or still changing: wait until it is quiet for a period
        self._seen = current
        if current is None:
            log.warning("config %s: cannot be read now; keeping the last good config", self.path)
            return True
        try:
            await self._on_change()
        except Exception:
            log.exception("config %s: reload failed unexpectedly", self.path)
        return True
