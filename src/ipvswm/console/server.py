"""Console servers: TCP and Unix socket sessions, and the command FIFO (SPEC §1, §7).

Every client is handled by its own task with hard limits (line length, idle time, pending output,
number of sessions), so a bad or hostile client can only lose its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import stat
from dataclasses import dataclass

from ipvswm.console.commands import Reply
from ipvswm.console.control import Control
from ipvswm.console.session import Session

log = logging.getLogger(__name__)
fifo_log = logging.getLogger("ipvswm.console")

CTRL_D = "\x04"


class ConsoleError(Exception):
    """A console server cannot start (e.g. another daemon holds the socket)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits."""

    max_line: int = 4096  # bytes per input line, newline excluded
    idle_timeout: float = 600.0  # seconds without input before the session is closed
    max_pending: int = 1 << 20  # bytes of unsent output before the client is dropped
    write_timeout: float = 30.0  # seconds a client may leave output unread past the buffer
    max_sessions: int = 32  # concurrent TCP + Unix sessions


class LineSplitter:
    """Cuts a byte stream into lines; a line longer than `max_line` becomes one None."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False  # inside a too-long line: drop bytes up to its newline

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if not self._discarding:
                self._buf += chunk
                if len(self._buf.rstrip(b"\r")) > self.max_line:
                    out.append(None)
                    self._buf.clear()
                    self._discarding = nl < 0
                elif nl >= 0:
                    out.append(bytes(self._buf).rstrip(b"\r"))
                    self._buf.clear()
            elif nl >= 0:
                self._discarding = False
            if nl < 0:
                return out
            start = nl + 1

    def rest(self) -> bytes | None:
        """The unterminated last line at end of input (None if there is none)."""
        if self._discarding or not self._buf:
            return None
        line = bytes(self._buf).rstrip(b"\r")
        self._buf.clear()
        return line


def decode_line(session: Session, raw: bytes | None, max_line: int) -> tuple[str | None, Reply]:
    """The decoded line (None if unusable) and, when unusable, the reply for it."""
    if raw is None:
        return None, session.bad_input(f"line too long (max {max_line} bytes)")
    try:
        return raw.decode("utf-8"), Reply()
    except UnicodeDecodeError:
        return None, session.bad_input("input is not UTF-8 text")


async def run_line(session: Session, text: str) -> Reply:
    """One command, with a bug in any command turned into an error reply, not a dead session."""
    try:
        return await session.handle(text)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("console %s: command %r failed", session.name, text)
        return Reply(ok=False, status=1, lines=["# internal error (logged)"])


class ConsoleServer:
    """The TCP, Unix-socket and FIFO consoles of one daemon."""

    def __init__(
        self,
        control: Control,
        *,
        tcp: tuple[str, int] | None,
        unix_path: str | None,
        fifo_path: str | None,
        limits: Limits | None = None,
    ) -> None:
        self.control = control
        self.tcp = tcp
        self.unix_path = unix_path or None
        self.fifo_path = fifo_path or None
        self.limits = limits or Limits()
        self._servers: list[asyncio.Server] = []
        self._sessions: set[asyncio.Task[None]] = set()
        self._unix_inode: int | None = None
        self._fifo: FifoReader | None = None
        self._tcp_server: asyncio.Server | None = None

    @property
    def tcp_port(self) -> int | None:
        """The bound TCP port (useful with port 0)."""
        if self._tcp_server is None or not self._tcp_server.sockets:
            return None
        return int(self._tcp_server.sockets[0].getsockname()[1])

    @property
    def session_count(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        """Bind everything; the Unix socket first, since it is the single-instance lock."""
        try:
            if self.unix_path is not None:
                await self._start_unix(self.unix_path)
            if self.tcp is not None:
                host, port = self.tcp
                self._tcp_server = await asyncio.start_server(self._serve, host, port)
                self._servers.append(self._tcp_server)
                log.info("console listening on %s:%d", host, self.tcp_port)
            if self.fifo_path is not None:
                fifo = FifoReader(self.fifo_path, Session(self.control, "fifo"), self.limits)
                if await fifo.start():  # a refused FIFO is logged; the consoles above still work
                    self._fifo = fifo
        except BaseException:
            await self.close()
            raise

    async def _start_unix(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise ConsoleError(f"{path} exists and is not a socket: not touching it")
            if await _answers(path):
                raise ConsoleError(f"another ipvswm daemon is listening on {path}")
            log.info("removing stale console socket %s", path)
            os.unlink(path)
        old = os.umask(0o177)  # the socket is created 0600: no window where others may connect
        try:
            server = await asyncio.start_unix_server(self._serve, path=path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self._unix_inode = os.stat(path).st_ino
        self._servers.append(server)
        log.info("console listening on %s", path)

    async def close(self) -> None:
        """Stop listening, end every session, remove our socket file."""
        for server in self._servers:
            server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._tcp_server = None
        if self.unix_path is not None and self._unix_inode is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.unix_path).st_ino == self._unix_inode:
                    os.unlink(self.unix_path)
            self._unix_inode = None
        if self._fifo is not None:
            await self._fifo.close()
            self._fifo = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._sessions) >= self.limits.max_sessions:
            log.warning("console: too many sessions, refusing a client")
            writer.write(b"# too many console sessions\n")
            await self._finish(writer)
            return
        self._sessions.add(task)
        peer = writer.get_extra_info("peername") or "unix"
        session = Session(self.control, name=str(peer))
        try:
            writer.write(session.greeting().encode())
            if await self._flush(writer):
                await self._session_loop(session, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # close() ends sessions this way; finishing normally keeps asyncio's stream
            # callback from logging the cancellation as an error.
            pass
        finally:
            self._sessions.discard(task)
            await self._finish(writer)

    async def _session_loop(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        splitter = LineSplitter(self.limits.max_line)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), self.limits.idle_timeout)
            except TimeoutError:
                writer.write(b"\n# idle timeout, bye\n")
                return
            lines = splitter.feed(data) if data else [splitter.rest()]
            for raw in lines:
                if raw is None and not data:
                    continue
                text, reply = decode_line(session, raw, self.limits.max_line)
                if text is not None:
                    if text.strip() == CTRL_D:
                        return
                    reply = await run_line(session, text)
                writer.write(session.encode(reply, text or ""))
                if not await self._flush(writer) or reply.close:
                    return
            if not data:
                return  # end of input (^D)

    async def _flush(self, writer: asyncio.StreamWriter) -> bool:
        """Send what is pending; drop a client that lets too much output pile up."""
        if writer.transport.get_write_buffer_size() > self.limits.max_pending:
            log.warning("console: dropping a client that does not read its output")
            writer.transport.abort()
            return False
        try:
            await asyncio.wait_for(writer.drain(), self.limits.write_timeout)
        except TimeoutError:
            log.warning("console: dropping a client that does not read its output")
            writer.transport.abort()
            return False
        return True

    @staticmethod
    async def _finish(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _answers(path: str) -> bool:
    """Whether something accepts connections on a Unix socket."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


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
    """Commands from a FIFO, one per line; output goes to the log. Never blocks the loop."""

    MAX_QUEUED = 1000

    def __init__(self, path: str, session: Session, limits: Limits) -> None:
        self.path = path
        self.session = session
        self.limits = limits
        self._fd: int | None = None
        self._splitter = LineSplitter(limits.max_line)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(self.MAX_QUEUED)
        self._worker: asyncio.Task[None] | None = None

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
            self._open()
        except FifoRefused as exc:
            self._refused(exc)
            return False
        self._worker = asyncio.create_task(self._work(), name="console-fifo")
        log.info("console reading commands from FIFO %s", self.path)
        return True

    def _refused(self, exc: FifoRefused) -> None:
        log.error("console FIFO %s not used: %s; carrying on without the FIFO", self.path, exc)

    def _open(self) -> None:
        self._fd = open_fifo(self.path)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _close_fd(self) -> None:
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            log.warning("console FIFO %s: read failed: %s", self.path, exc)
            data = b""
        items = self._splitter.feed(data) if data else [self._splitter.rest()]
        for item in items:
            if item is None and not data:
                continue
            try:
                self._queue.put_nowait(item)
            except asyncio.QueueFull:
                fifo_log.warning("fifo: too many queued commands, dropping one")
        if not data:  # the last writer closed: start over for the next one, checked again
            self._close_fd()
            try:
                self._open()
            except FifoRefused as exc:
                self._refused(exc)

    async def _work(self) -> None:
        while True:
            raw = await self._queue.get()
            text, reply = decode_line(self.session, raw, self.limits.max_line)
            if text is not None:
                if not text.strip():
                    continue
                fifo_log.info("fifo> %s", text)
                reply = await run_line(self.session, text)
            else:
                fifo_log.info("fifo> (unreadable line)")
            for line in reply.lines:
                fifo_log.info("fifo: %s", line)

    async def close(self) -> None:
        self._close_fd()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
