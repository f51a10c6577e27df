"""The command FIFO (SPEC §7).

One command per line, from any number of writers in turn (`echo "set host web1 off" > fifo`);
replies go to the log. The FIFO is ours and 0600, checked at every (re)open; it never blocks the
loop, and no line of a writer that has written and closed is lost (issue 10 item 13): a line read
while the daemon starts is held until the state is loaded and the kernel read, and beyond
MAX_QUEUED waiting lines the FIFO is simply not read (writers wait) instead of lines dropped.
Blank lines are skipped. Once a stop begins the FIFO is closed, so later writers wait for the next
daemon; a line already read then is logged as not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat

from ipvswm.console.lines import LineSplitter
from ipvswm.console.lines import decode_line
from ipvswm.console.lines import run_line
from ipvswm.console.render import printable
from ipvswm.console.session import Session
from ipvswm.vocabulary import STARTING

log = logging.getLogger(__name__)
fifo_log = logging.getLogger("ipvswm.console")


class FifoRefused(Exception):
    """The FIFO cannot be used safely; the message says why and how to fix it."""


def open_fifo(path: str) -> int:
    """Open a FIFO for reading: ours, not a symbolic link, not writable by group or others."""
    # A /tmp/fifo made first by another user (mkfifo -m 666) would let anyone disable hosts.
    recreate = f"remove it (rm {path}) and restart ipvswm, which creates it with mode 0600"
    not_fifo = "it is not a FIFO; remove it or set Management.Fifo.Path to another path"
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            raise FifoRefused(f"it is a symbolic link; {recreate}")
        if not stat.S_ISFIFO(mode):  # never open a device or a file we are not meant to read
            raise FifoRefused(not_fifo)
        # O_NONBLOCK: opening for reading never waits for a writer; Linux reports no hang-up
        # on a fresh reader until a writer has come and gone, so the loop does not spin.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link between lstat and open
            raise FifoRefused(f"it is a symbolic link; {recreate}") from None
        raise FifoRefused(f"cannot open it: {exc.strerror}; {recreate}") from None
    try:
        st = os.fstat(fd)  # of what was opened: no race with a rename
        if not stat.S_ISFIFO(st.st_mode):
            raise FifoRefused(not_fifo)
        euid = os.geteuid()
        if st.st_uid != euid:
            raise FifoRefused(
                f"it is owned by uid {st.st_uid}, not by uid {euid} that ipvswm runs as; "
                + recreate
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o022:
            raise FifoRefused(
                f"it is writable by group or others (mode {mode:04o}), so any local user could "
                f"send commands; chmod 600 {path} (or {recreate})"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


class FifoReader:
    """Commands from a FIFO, one per line; output goes to the log. Never blocks the loop.

    When the last writer has closed (end of input), the reader is replaced by a new one, opened
    and checked again BEFORE the old one is closed: the pipe never loses its last reader, so a
    writer that comes meanwhile neither gets EPIPE nor has its lines thrown away with the pipe.
    """

    MAX_QUEUED = 1000  # lines waiting to run; beyond, the FIFO is not read until they drain
    READS_PER_WAKEUP = 16  # 1 MiB at most per loop wake-up; the rest on the next one
    READY_WAIT = 60.0  # seconds per wait for the daemon to be ready (repeated until it is)

    def __init__(self, path: str, session: Session, max_line: int) -> None:
        self.path = path
        self.session = session
        self.max_line = max_line
        self._fd: int | None = None
        self._splitter = LineSplitter(max_line)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()  # bounded by pausing reads
        self._worker: asyncio.Task[None] | None = None
        self._paused = False  # not reading: MAX_QUEUED lines wait

    async def start(self) -> bool:
        """Create (mode 0600) or check the FIFO and read it; False (logged, with the fix) if not."""
        try:
            try:
                os.mkfifo(self.path, 0o600)  # the umask can only take bits away
                log.info("console FIFO %s created (mode 0600)", self.path)
            except FileExistsError:
                pass  # someone's: open_fifo decides whether it is safe
            except OSError as exc:
                raise FifoRefused(f"cannot create it: {exc.strerror}") from None
            self._watch(open_fifo(self.path))
        except FifoRefused as exc:
            self._refused(exc)
            return False
        self._worker = asyncio.create_task(self._work(), name="console-fifo")
        log.info("console reading commands from FIFO %s", self.path)
        return True

    def _refused(self, exc: FifoRefused) -> None:
        log.error("console FIFO %s not used: %s; carrying on without the FIFO", self.path, exc)

    def _watch(self, fd: int) -> None:
        self._fd = fd
        self._paused = False
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _close_fd(self) -> None:
        if self._fd is not None:
            if not self._paused:
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _pause(self) -> None:
        """Stop reading: the pipe fills and its writers wait (backpressure, nothing dropped)."""
        if self._fd is not None and not self._paused:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._paused = True

    def _resume(self) -> None:
        if self._fd is not None and self._paused:
            self._paused = False
            asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        """Read what is there; at end of input (no writer left, nothing unread) start over."""
        # Read until the pipe is empty: a writer that came and went while the reader was being
        # replaced raises no hang-up on the new reader, only this read of 0 bytes tells its end.
        for _ in range(self.READS_PER_WAKEUP):
            if self._queue.qsize() >= self.MAX_QUEUED:
                self._pause()  # the worker resumes reading once the backlog is down
                return
            assert self._fd is not None
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return  # a writer is connected and has sent nothing more yet
            except OSError as exc:
                log.warning("console FIFO %s: read failed: %s", self.path, exc)
                data = b""
            if not data:
                last = self._splitter.rest()  # the last writer's unterminated line, if any
                self._queue_lines([] if last is None else [last])
                self._reopen()
                return
            self._queue_lines(self._splitter.feed(data))

    def _queue_lines(self, items: list[bytes | None]) -> None:
        for item in items:
            if item is None or item.strip():  # a blank line is no command: not queued
                self._queue.put_nowait(item)

    def _reopen(self) -> None:
        """A new reader, checked again, in place of the old one, which is closed only after."""
        try:
            fd = open_fifo(self.path)
        except FifoRefused as exc:
            self._close_fd()
            self._refused(exc)
            return
        self._close_fd()
        self._watch(fd)

    async def _work(self) -> None:
        while True:
            raw = await self._queue.get()
            if self._paused and self._queue.qsize() <= self.MAX_QUEUED // 2:
                self._resume()
            if not await self._until_ready():
                self._stopped(raw)
                continue
            text, reply = decode_line(self.session, raw, self.max_line)
            if text is not None:
                if not text.strip():
                    continue
                fifo_log.info("fifo> %s", printable(text))
                reply = await run_line(self.session, text)
            else:
                fifo_log.info("fifo> (unreadable line)")
            for line in reply.lines:
                fifo_log.info("fifo: %s", printable(line))

    async def _until_ready(self) -> bool:
        """Hold a line while the daemon starts; False once it stops."""
        while True:
            refusal = await self.session.control.wait_ready(self.READY_WAIT)
            if refusal is None:
                return True
            if refusal.reason != STARTING:
                return False

    def _stopped(self, raw: bytes | None) -> None:
        """The daemon stops: read no more (later writers wait for the next one); say what is
        not run, so no line is lost without a word."""
        if self._fd is not None:
            self._queue_lines(self._splitter.feed(self._drain()))
            self._close_fd()
        shown = "(unreadable line)" if raw is None else printable(raw.decode("utf-8", "replace"))
        fifo_log.warning("fifo: not run, the daemon is stopping: %s", shown)

    def _drain(self) -> bytes:
        """What the pipe holds now (it is closed next)."""
        assert self._fd is not None
        data = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(self._fd, 65536):
                data += chunk
        return data

    async def close(self) -> None:
        self._close_fd()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
