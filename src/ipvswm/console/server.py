"""Console servers: TCP and Unix socket sessions, and the command FIFO of `fifo.py` (SPEC §1, §7).

Every client is handled by its own task with hard limits (line length, idle time, pending output,
number of sessions), so a bad or hostile client can only lose its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from ipvswm.console.authority import Peer
from ipvswm.console.authority import tcp_peer
from ipvswm.console.authority import unix_peer
from ipvswm.console.control import Control
from ipvswm.console.fifo import FifoReader
from ipvswm.console.lines import LineSplitter
from ipvswm.console.lines import decode_line
from ipvswm.console.lines import run_line
from ipvswm.console.reply import Reply
from ipvswm.console.session import Session

log = logging.getLogger(__name__)

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
    max_sessions: int = 32  # concurrent TCP sessions
    # The Unix socket (0600: root's and the daemon user's) has slots of its own, so no number of
    # TCP clients can lock its operators out.
    max_unix_sessions: int = 16
    # A line must be complete this long after its first byte: a client that trickles bytes
    # (one every few seconds) must not hold its slot for ever by resetting the idle timeout.
    line_timeout: float = 30.0
    max_read_ahead: int = 1 << 16  # bytes read (and held) while a command runs


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
        self._by_kind: dict[str, set[asyncio.Task[None]]] = {"tcp": set(), "unix": set()}
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
                serve = partial(self._serve, "tcp")
                self._tcp_server = await asyncio.start_server(serve, host, port)
                self._servers.append(self._tcp_server)
                log.info("console listening on %s:%d", host, self.tcp_port)
            if self.fifo_path is not None:
                session = Session(self.control, "fifo")
                fifo = FifoReader(self.fifo_path, session, self.limits.max_line)
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
            server = await asyncio.start_unix_server(partial(self._serve, "unix"), path=path)
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

    async def _serve(
        self, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        mine = self._by_kind[kind]
        limit = self.limits.max_unix_sessions if kind == "unix" else self.limits.max_sessions
        if len(mine) >= limit:
            log.warning("console: too many %s sessions, refusing a client", kind)
            writer.write(b"# too many console sessions\n")
            await self._finish(writer)
            return
        self._sessions.add(task)
        mine.add(task)
        try:
            if kind == "unix":
                peer = unix_peer(writer.get_extra_info("socket"))
            else:  # reads /proc/net/tcp*: off the loop
                peername, sockname = (
                    writer.get_extra_info("peername"),
                    writer.get_extra_info("sockname"),
                )
                peer = await asyncio.to_thread(tcp_peer, peername, sockname)
        except (OSError, ValueError, TypeError):
            peer = Peer(kind, "?", False, None)
        session = Session(self.control, name=peer.address, peer=peer)
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
            mine.discard(task)
            session.gone.set()
            await self._finish(writer)

    async def _session_loop(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        input_ = _Input(reader, LineSplitter(self.limits.max_line), self.limits)
        while True:
            while input_.lines:
                raw = input_.lines.popleft()
                if raw is None and input_.eof and not input_.lines:
                    break  # nothing was left unterminated at the end of input
                text, reply = decode_line(session, raw, self.limits.max_line)
                if text is not None:
                    if text.strip() == CTRL_D:
                        return
                    reply = await input_.while_running(session, run_line(session, text))
                writer.write(session.encode(reply, text or ""))
                if not await self._flush(writer) or reply.close:
                    return
            if input_.eof:
                return  # end of input (^D)
            farewell = await input_.read()
            if farewell is not None:
                writer.write(farewell)
                return

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


class _Input:
    """A session's input: complete lines, the idle timeout and the deadline of a partial line."""

    def __init__(
        self, reader: asyncio.StreamReader, splitter: LineSplitter, limits: Limits
    ) -> None:
        self.reader = reader
        self.splitter = splitter
        self.limits = limits
        self.lines: deque[bytes | None] = deque()
        self.eof = False
        self._line_began: float | None = None  # when the first byte of a partial line came
        self._held = 0  # bytes read ahead while a command ran

    def _take(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        if data:
            self.lines.extend(self.splitter.feed(data))
            if not self.splitter.pending:
                self._line_began = None
            elif self._line_began is None:
                self._line_began = loop.time()
        else:
            self.eof = True
            self.lines.append(self.splitter.rest())

    async def read(self) -> bytes | None:
        """Read more input; the farewell to send if the client is cut off for being too slow."""
        self._held = 0
        if self._line_began is None:
            timeout, farewell = self.limits.idle_timeout, b"\n# idle timeout, bye\n"
        else:
            left = self._line_began + self.limits.line_timeout
            timeout = max(left - asyncio.get_running_loop().time(), 0.0)
            farewell = (
                f"\n# a line must be complete within {self.limits.line_timeout:g}s"
                " of its first byte, bye\n"
            ).encode()
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except TimeoutError:
            return farewell
        self._take(data)
        return None

    async def while_running(self, session: Session, work: Coroutine[Any, Any, Reply]) -> Reply:
        """Run a command while reading ahead, so that a client gone meanwhile is noticed."""
        task = asyncio.ensure_future(work)
        try:
            while not self.eof and self._held < self.limits.max_read_ahead:
                reading = asyncio.ensure_future(self.reader.read(65536))
                done, _ = await asyncio.wait({task, reading}, return_when=FIRST_COMPLETED)
                if reading not in done:
                    # Cancelling a pending read loses nothing: unread data stays buffered.
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reading
                    break
                data = reading.result()
                self._held += len(data)
                self._take(data)
                if not data:
                    session.gone.set()  # a `wait` gives up: nobody would read its answer
            return await task
        finally:
            if not task.done():
                task.cancel()


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
