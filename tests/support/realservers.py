"""Real servers for tests: asyncio HTTP/HTTPS/TCP servers on loopback, switchable at run time.

Use `RealServer` inside an asyncio test::

    async with RealServer("127.0.0.10") as server:      # port 0 -> server.port after start
        ...check http://127.0.0.10:{server.port}/...
        await server.set_mode("failing")               # next connections answer 500
        await server.wait_requests(3, timeout=5)        # readiness by waiting, never sleeping

Use `ThreadedRealServers` from synchronous code (e.g. a test driving a daemon process)::

    with ThreadedRealServers() as farm:
        web = farm.start("127.0.0.11", mode="healthy")
        web.set_mode("refusing")
        web.wait_requests(1, timeout=5)

Modes (`RealServer.MODES`; a mode applies to connections accepted after it is set):
  healthy       200 with a short body
  failing       500
  status:N      status N (e.g. `status:301` adds a Location header)
  refusing      the listening socket is closed, so connects are refused; any other mode reopens
                it on the same port
  hanging       reads the request, never answers (until the client goes away)
  stall         sends the status line, then never the rest of the headers
  slow:S        waits S seconds, then answers 200
  drip:S        answers 200 one byte every S seconds (defeats per-read timeouts)
  reset         sends part of the status line, then resets the connection (RST)
  eof           reads the request and closes without answering
  garbage       answers bytes that are not HTTP, then closes
  bigbody:N     200 with an N-byte body (written as the client reads; stops when it goes)
  tcp           accepts and closes at once (no TLS/HTTP spoken)

Every connection is counted (`connections`); every request read is recorded as a `Request` with
its time, Host header, path, the TLS SNI name the client sent, and the peer address.
TLS: pass an `ssl.SSLContext` (see `server_context`); the SNI is recorded through the context's
`sni_callback`, which `RealServer` sets (harmless to share one context between servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import ssl
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from typing import Self
from typing import TypeVar

import trustme

T = TypeVar("T")

_SNI_ATTR = "ipvswm_test_sni"


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the real server saw it."""

    time: float  # time.time() when the request head was read
    method: str
    path: str
    host: str | None  # the Host header
    sni: str | None  # the TLS server name the client sent (None: plain or no SNI)
    peer: tuple[str, int]
    mode: str  # the server's mode when it answered
    headers: tuple[tuple[str, str], ...] = ()  # every header line, in order


def _parse_mode(mode: str) -> tuple[str, float]:
    name, _, arg = mode.partition(":")
    if name not in RealServer.MODES:
        raise ValueError(f"unknown mode {mode!r}")
    needs_arg = name in {"status", "slow", "drip", "bigbody"}
    if needs_arg != bool(arg):
        raise ValueError(
            f"mode {mode!r}: {'an argument is needed' if needs_arg else 'no argument'}"
        )
    return name, float(arg) if arg else 0.0


def _record_sni(ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
    """sni_callback: remember the name on the connection's SSL object."""
    setattr(ssl_object, _SNI_ATTR, server_name)


def _response(status: int, body: bytes = b"", extra: str = "", length: int | None = None) -> bytes:
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    size = len(body) if length is None else length
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n"
        f"{extra}Connection: close\r\n\r\n"
    )
    return head.encode() + body


class RealServer:
    """An asyncio HTTP(S)/TCP real server on one loopback address, with a switchable mode."""

    MODES = frozenset(
        {"healthy", "failing", "status", "refusing", "hanging", "stall", "slow", "drip", "reset"}
        | {"eof", "garbage", "bigbody", "tcp"}
    )

    def __init__(
        self,
        address: str,
        port: int = 0,
        *,
        ssl: ssl.SSLContext | None = None,
        mode: str = "healthy",
    ) -> None:
        _parse_mode(mode)
        self.address = address
        self.port = port
        self.ssl = ssl
        self.requests: list[Request] = []
        self.connections = 0
        self._mode = mode
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Event()
        if ssl is not None:
            ssl.sni_callback = _record_sni

    @property
    def mode(self) -> str:
        """The current mode."""
        return self._mode

    @property
    def scheme(self) -> str:
        return "http" if self.ssl is None else "https"

    async def start(self) -> None:
        """Listen (port 0 picks a free port, then `port` is the real one)."""
        if self._mode != "refusing":
            await self._listen()
        elif self.port == 0:
            # Refusing from the start still needs a port of its own: bind it once, then close.
            await self._listen()
            await self._unlisten()

    async def stop(self) -> None:
        """Stop listening and drop every open connection."""
        await self._unlisten()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def set_mode(self, mode: str) -> None:
        """Switch mode; `refusing` closes the listener, leaving it reopens it on the same port."""
        _parse_mode(mode)
        self._mode = mode
        if mode == "refusing":
            await self._unlisten()
        elif self._server is None:
            await self._listen()

    async def wait_requests(self, n: int, timeout: float = 5.0) -> list[Request]:  # noqa: ASYNC109
        """Wait until at least `n` requests were recorded; a copy of them."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < n:
                self._changed.clear()
                await self._changed.wait()
        return list(self.requests)

    async def wait_connections(self, n: int, timeout: float = 5.0) -> int:  # noqa: ASYNC109
        """Wait until at least `n` connections were accepted."""
        async with asyncio.timeout(timeout):
            while self.connections < n:
                self._changed.clear()
                await self._changed.wait()
        return self.connections

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _listen(self) -> None:
        tls: dict[str, Any] = (
            {} if self.ssl is None else {"ssl": self.ssl, "ssl_handshake_timeout": 5}
        )
        self._server = await asyncio.start_server(self._handle, self.address, self.port, **tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _unlisten(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        self._changed.set()
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or spoke nonsense: nothing to answer
        except asyncio.CancelledError:
            # stop(): end normally, as Python 3.11's stream callback chokes on a cancelled handler.
            pass
        finally:
            self._handlers.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self._mode
        name, arg = _parse_mode(mode)
        if name == "tcp":
            return
        first = await reader.readexactly(1)
        if first == b"\x16":  # a TLS ClientHello on a plain port: answer 400 like nginx does
            writer.write(_response(400, b"plain HTTP port\n"))
            await writer.drain()
            return
        head = first + await reader.readuntil(b"\r\n\r\n")
        self._record(head, writer, mode)
        if name == "healthy" and head.startswith(b"HEAD "):
            response = _response(200, b"OK\n")  # the head alone, as a HEAD is answered
            writer.write(response[: response.index(b"\r\n\r\n") + 4])
        elif name == "healthy":
            writer.write(_response(200, b"OK\n"))
        elif name == "failing":
            writer.write(_response(500, b"failing\n"))
        elif name == "status":
            extra = "Location: /elsewhere\r\n" if 300 <= arg < 400 else ""
            writer.write(_response(int(arg), b"status\n", extra))
        elif name in {"hanging", "stall"}:
            if name == "stall":
                writer.write(b"HTTP/1.1 200 OK\r\n")
            await reader.read()  # until the client closes
            return
        elif name == "slow":
            await asyncio.sleep(arg)
            writer.write(_response(200, b"slow\n"))
        elif name == "drip":
            for byte in _response(200, b"drip\n"):
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(arg)
        elif name == "reset":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return  # abort() in _handle closes with linger 0: a RST
        elif name == "eof":
            return
        elif name == "garbage":
            writer.write(b"\x16\x03\x01 this is not http \xff\xfe\r\n\r\n")
        elif name == "bigbody":
            await self._bigbody(writer, int(arg))
        await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def _bigbody(self, writer: asyncio.StreamWriter, size: int) -> None:
        writer.write(_response(200, length=size))
        chunk = b"x" * 65536
        while size > 0:
            writer.write(chunk[:size])
            size -= min(size, len(chunk))
            await writer.drain()

    def _record(self, head: bytes, writer: asyncio.StreamWriter, mode: str) -> None:
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.rpartition(" ")[0] or rest
        host = None
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            key, _, value = line.partition(":")
            if key:
                headers.append((key.strip(), value.strip()))
            if key.strip().lower() == "host":
                host = value.strip()
        ssl_object = writer.get_extra_info("ssl_object")
        sni = getattr(ssl_object, _SNI_ATTR, None) if ssl_object is not None else None
        peer = writer.get_extra_info("peername")
        self.requests.append(
            Request(time.time(), method, path, host, sni, peer[:2], mode, tuple(headers))
        )
        self._changed.set()


class ThreadedRealServer:
    """A `RealServer` on a `ThreadedRealServers` loop, with synchronous methods."""

    def __init__(self, farm: ThreadedRealServers, server: RealServer) -> None:
        self._farm = farm
        self.server = server

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def mode(self) -> str:
        return self.server.mode

    @property
    def requests(self) -> list[Request]:
        """A copy of the requests recorded so far."""
        return self._farm.call(self._copy_requests())

    def set_mode(self, mode: str) -> None:
        self._farm.call(self.server.set_mode(mode))

    def wait_requests(self, n: int, timeout: float = 5.0) -> list[Request]:
        return self._farm.call(self.server.wait_requests(n, timeout))

    def stop(self) -> None:
        self._farm.call(self.server.stop())

    async def _copy_requests(self) -> list[Request]:
        return list(self.server.requests)


class ThreadedRealServers:
    """Real servers on a background thread with its own event loop, for synchronous tests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="realservers")
        self._thread.daemon = True
        self._servers: list[RealServer] = []
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the servers' loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def start(
        self,
        address: str,
        port: int = 0,
        *,
        ssl: ssl.SSLContext | None = None,
        mode: str = "healthy",
    ) -> ThreadedRealServer:
        """Start a real server on the background loop; it listens when this returns."""

        async def make() -> RealServer:
            # Created on the loop so that its asyncio objects belong to that loop.
            server = RealServer(address, port, ssl=ssl, mode=mode)
            await server.start()
            return server

        server = self.call(make())
        self._servers.append(server)
        return ThreadedRealServer(self, server)

    def close(self) -> None:
        """Stop every server and the loop thread."""
        for server in self._servers:
            self.call(server.stop())
        self._servers.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def make_ca() -> trustme.CA:
    """A fresh test certificate authority."""
    return trustme.CA()


def server_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    """A server TLS context with a certificate from `ca` for `names` (default www.example.test)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("www.example.test",))).configure_cert(context)
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client TLS context that trusts `ca` (hostname checked)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
