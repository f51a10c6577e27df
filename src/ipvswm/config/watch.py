"""Notices when the config file changes, for automatic reload (SPEC §2.4).

Two ways, one object: the kernel's file events (inotify, `events=True`, what the daemon uses), so
a rename into place or a writer's close is handed over at once; and polling the file's signature
(mtime, size, inode) every `period`, which is the fallback where inotify cannot be used and, next
to the events, a net for changes they miss (a remote edit on a network file system).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from collections.abc import Callable

from ipvswm.config.inotify import IN_CLOSE_WRITE
from ipvswm.config.inotify import IN_IGNORED
from ipvswm.config.inotify import IN_MOVED_TO
from ipvswm.config.inotify import IN_Q_OVERFLOW
from ipvswm.config.inotify import Inotify
from ipvswm.config.inotify import InotifyError
from ipvswm.config.inotify import writers_present
from ipvswm.config.model import GlobalOptions
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


_EVENTS = IN_CLOSE_WRITE | IN_MOVED_TO
"""A writer closed the file, or a file was renamed into place (`mv new conf`)."""


def _state(path: str) -> tuple[Signature, bool | None]:
    """The file's signature and whether it is open for writing (None: cannot be told)."""
    return file_signature(path), writers_present(path)


class ConfigWatcher:
    """Calls `on_change` once a change of the file has settled (polls; events with `events`).

    Polling: a change is handed over only when the file's signature is the same on two
    consecutive polls, i.e. the file has been quiet for a whole period: `cat new > conf`
    truncates before it writes, and an empty or cut-off file is often valid (it would delete
    virtual services). With `events`, a close after writing (`IN_CLOSE_WRITE`) or a rename onto
    the file's name (`IN_MOVED_TO`, watched on the directory, so a replaced file is followed) is
    a settled change at once. Either way a file still open for writing is not handed over (a read
    lease tells, `writers_present`): its writer's close is the next event. The signature of the
    version last handed over is remembered, so a file that stays invalid is reported once and a
    new version is tried as soon as it has settled.
    """

    def __init__(
        self,
        path: str,
        period: float,
        on_change: Callable[[], Awaitable[None]],
        *,
        seen: Signature | bool = True,
        events: bool = False,
    ) -> None:
        """`seen`: the signature of the version already in force (True: the file as it is now);
        a daemon passes what it had before its start-up, so an edit made meanwhile is noticed.
        `events`: follow inotify events too (polling alone where it cannot be used)."""
        self.path = path
        self.period = period
        self._on_change = on_change
        self._seen: Signature = file_signature(path) if seen is True else seen or None
        self._candidate: Signature = self._seen  # what the previous poll saw
        self._task: asyncio.Task[None] | None = None
        self._events = events
        self._inotify: Inotify | None = None
        self._names: dict[int, set[str]] = {}  # watch descriptor -> the names it follows
        self._event_task: asyncio.Task[None] | None = None
        self._again = False  # an event came while one was being handled
        self._lock = asyncio.Lock()  # one look at the file at a time (events, polls)
        self.on = True  # hand changes over (False: Config.AutoCheck is off, see `follow`)

    @property
    def following_events(self) -> bool:
        """Whether inotify events are being followed (False: polling alone)."""
        return self._inotify is not None

    def mark_current(self) -> None:
        """The file as it is now has been handled (e.g. by a manual reload)."""
        self.mark_seen(file_signature(self.path))

    def mark_seen(self, signature: Signature) -> None:
        """The version of the file with this signature has been handled."""
        self._seen = self._candidate = signature

    def follow(self, options: GlobalOptions) -> None:
        """Follow `Config.AutoCheck` (at start and after every reload): on, watch the file (the
        watcher starts); off, notice changes but hand none over. Turned off, the watcher is not
        closed: that could cancel the very reload that turned it off, when that reload was its
        own. A caller whose hand-over waits (a reload queued behind another) asks `on` again
        once its turn comes."""
        self.on = options.config_auto_check
        if self.on:
            self.start()

    def start(self) -> None:
        if self._task is None:
            if self._events:
                self._start_events()
            self._task = asyncio.create_task(self._run(), name="config-watcher")

    async def close(self) -> None:
        self._stop_events()
        for task in (self._task, self._event_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._event_task = None

    def _start_events(self) -> None:
        """Watch the file's directory (and its symlink target's); log and poll if impossible."""
        paths = [os.path.abspath(self.path)]
        real = os.path.realpath(self.path)
        if real != paths[0]:
            paths.append(real)  # an edit of the target of a symlinked config
        try:
            inotify = Inotify()
        except InotifyError as exc:
            self._no_events(exc)
            return
        try:
            for path in paths:
                directory, name = os.path.split(path)
                wd = inotify.watch(directory, _EVENTS)
                self._names.setdefault(wd, set()).add(name)
            asyncio.get_running_loop().add_reader(inotify.fd, self._readable)
        except (InotifyError, OSError) as exc:
            inotify.close()
            self._names.clear()
            self._no_events(exc)
            return
        self._inotify = inotify
        log.debug("config %s: following file events", self.path)

    def _no_events(self, exc: OSError) -> None:
        log.info("config %s: no file events (%s); polling every %gs", self.path, exc, self.period)

    def _stop_events(self) -> None:
        if self._inotify is not None:
            asyncio.get_running_loop().remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
            self._names.clear()

    def _readable(self) -> None:
        """Loop callback: the inotify descriptor has events."""
        assert self._inotify is not None
        relevant = False
        for wd, mask, name in self._inotify.read():
            if mask & IN_Q_OVERFLOW:
                relevant = True  # some events were lost: look anyway
            elif mask & IN_IGNORED:
                self._names.pop(wd, None)  # its directory is gone: the polls remain
            elif name in self._names.get(wd, ()):
                relevant = True
        if not relevant:
            return
        if self._event_task is not None and not self._event_task.done():
            self._again = True  # looked at again once the running look ends
            return
        self._event_task = asyncio.create_task(self._on_events(), name="config-event")

    async def _on_events(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await self.look()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self.poll()

    async def poll(self) -> bool:
        """Look at the file once; returns whether a settled change was handled."""
        async with self._lock:
            current, writing = await self._read_state()
            previous, self._candidate = self._candidate, current
            if current == self._seen or current != previous:
                return False  # unchanged, or still changing: wait until it is quiet for a period
            if writing:
                return False  # quiet but still open for writing: its close is the next event
            return await self._hand_over(current)

    async def look(self) -> bool:
        """After a close or rename event: hand a changed file over at once, unless still open
        for writing; returns whether a change was handled."""
        async with self._lock:
            current, writing = await self._read_state()
            self._candidate = current
            if current == self._seen or writing:
                return False
            return await self._hand_over(current)

    async def _read_state(self) -> tuple[Signature, bool | None]:
        # A stat can hang on a hung mount: never on the event loop (one such thread at most,
        # as looks follow each other).
        path = self.path
        return await run_detached(lambda: _state(path), "config-stat")

    async def _hand_over(self, current: Signature) -> bool:
        self._seen = current
        if current is None:
            log.warning("config %s: cannot be read now; keeping the last good config", self.path)
            return True
        if not self.on:
            return True  # Config.AutoCheck is off: this version is seen, not reloaded
        try:
            await self._on_change()
        except Exception:
            log.exception("config %s: reload failed unexpectedly", self.path)
        return True
