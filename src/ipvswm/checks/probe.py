"""One check of one real server: an HTTP(S) GET or a TCP connect, and its outcome (SPEC §3).

A minimal HTTP/1.1 client on an asyncio protocol: one fresh connection per check
(`Connection: close`), a connect timeout, then ONE deadline for the whole response (TLS handshake,
status line, headers and the capped body drain), never a per-read timeout. Chosen over aiohttp and
over asyncio streams on CPU per check (see bench/checks.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ipvswm.config.model import CheckKind, CheckTarget

logger = logging.getLogger(__name__)

BODY_CAP = 64 * 1024
"""Bytes of body read (and discarded) at most; a longer body still passes."""

HEAD_LIMIT = 16 * 1024
"""Bytes of status line plus headers accepted at most; more is a `bad response`."""

_NO_BODY = frozenset({204, 304})
_USER_AGENT = "ipvswm-check"


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What one check found: pass or fail, a short cause, the HTTP status, wall-clock times."""

    passed: bool
    cause: str  # "" on pass
    status: int | None  # the HTTP status when one was read
    started: float  # time.time() when the check began
    ended: float


Probe = Callable[[CheckTarget], Awaitable[ProbeOutcome]]
"""A check function: what a checker runs (`probe`, or a fake in tests)."""


class _Failed(Exception):
    """A check failed with a displayable cause (internal control flow only)."""

    def __init__(self, cause: str, status: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


async def probe(
    target: CheckTarget, *, verify_context: ssl.SSLContext | None = None
) -> ProbeOutcome:
    """Run one check of `target`; never raises (except cancellation).

    `verify_context` replaces the system-CA context of `verify=true` HTTPS checks (e.g. to trust a
    private CA); checks without `verify` never verify.
    """
    started = time.time()
    try:
        status = await _check(target, verify_context)
    except _Failed as failed:
        return ProbeOutcome(False, failed.cause, failed.status, started, time.time())
    except Exception:
        logger.exception("check %s: unexpected error", target)
        return ProbeOutcome(False, "internal error", None, started, time.time())
    return ProbeOutcome(True, "", status, started, time.time())


async def _check(target: CheckTarget, verify_context: ssl.SSLContext | None) -> int | None:
    """Connect, and for HTTP(S) request and judge; the status read, or None for TCP."""
    spec = target.spec
    loop = asyncio.get_running_loop()
    transport, exchange = await _connect(target, loop)
    if spec.kind is CheckKind.TCP:
        transport.close()
        return None
    deadline = loop.time() + spec.response_timeout
    clean = False
    try:
        try:
            async with asyncio.timeout_at(deadline):
                if spec.kind is CheckKind.HTTPS:
                    transport = await _start_tls(loop, transport, exchange, target, verify_context)
                transport.write(_request(target))
                await exchange.wait(exchange.head_done)
        except TimeoutError:
            raise _Failed("response timeout") from None
        if exchange.head is None:
            raise _failure(exchange.error)
        status, length = _parse_head(exchange.head)
        if not spec.passes_status(status):
            raise _Failed(f"status {status}", status)
        # The verdict is in: the body is drained up to the cap until the deadline, no more.
        exchange.body_want = 0 if status in _NO_BODY else min(length or BODY_CAP, BODY_CAP)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await exchange.wait(exchange.body_done)
        clean = exchange.error is None and (
            exchange.ended or (length is not None and length <= BODY_CAP)
        )
        return status
    finally:
        # A clean close once the response is complete; otherwise drop the connection at once.
        if clean:
            transport.close()
        else:
            transport.abort()


class _Exchange(asyncio.Protocol):
    """One check connection: collects the response head, then counts (and drops) body bytes."""

    def __init__(self) -> None:
        self.head: bytes | None = None
        self.body_want = BODY_CAP + 1  # set once the head is judged
        self.body_seen = 0
        self.ended = False  # EOF or connection lost
        self.error: BaseException | None = None
        self._buffer = b""
        self._waiter: asyncio.Future[None] | None = None

    def head_done(self) -> bool:
        return self.head is not None

    def body_done(self) -> bool:
        return self.body_seen >= self.body_want

    async def wait(self, ready: Callable[[], bool]) -> None:
        """Wait until `ready()` or the connection ended."""
        while not ready() and not self.ended:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def data_received(self, data: bytes) -> None:
        if self.head is not None:
            self.body_seen += len(data)
            if self.body_seen >= self.body_want:
                self._wake()
            return
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end >= 0:
            self.head = self._buffer[: end + 4]
            self.body_seen = len(self._buffer) - end - 4
            self._buffer = b""
            self._wake()
        elif len(self._buffer) > HEAD_LIMIT:
            self.connection_lost(_Failed("bad response"))

    def eof_received(self) -> None:
        self.ended = True
        self._wake()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.ended = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _failure(error: BaseException | None) -> _Failed:
    """The failure for a connection that ended before a complete response head."""
    if isinstance(error, _Failed):
        return error
    if isinstance(error, ssl.SSLError):
        return _Failed("tls error")
    if isinstance(error, ConnectionError):
        return _Failed("connection reset")
    if isinstance(error, OSError):
        return _Failed(f"io error: {_errno_name(error)}")
    return _Failed("bad response")  # EOF (or an unknown error) before the head was complete


async def _connect(
    target: CheckTarget, loop: asyncio.AbstractEventLoop
) -> tuple[asyncio.Transport, _Exchange]:
    """Open a fresh TCP connection within the connect timeout."""
    try:
        async with asyncio.timeout(target.spec.connect_timeout):
            return await loop.create_connection(_Exchange, target.address, target.port)
    except TimeoutError:
        raise _Failed("connect timeout") from None
    except ConnectionRefusedError:
        raise _Failed("connect refused") from None
    except OSError as exc:
        raise _Failed(f"connect error: {_errno_name(exc)}") from None


async def _start_tls(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    exchange: _Exchange,
    target: CheckTarget,
    verify_context: ssl.SSLContext | None,
) -> asyncio.Transport:
    """TLS handshake with SNI = the URL's name (no SNI when that is an IP address)."""
    spec = target.spec
    context = _client_context(spec.verify)
    if spec.verify and verify_context is not None:
        context = verify_context
    # ssl sends no SNI for an IP literal but still matches it against the certificate's IP SANs.
    name = (spec.url_host or target.address).strip("[]")
    try:
        tls = await loop.start_tls(transport, exchange, context, server_hostname=name)
    except TimeoutError:
        raise
    except OSError:  # ssl.SSLError, certificate errors, and the peer dropping mid-handshake
        transport.abort()
        raise _Failed("tls error") from None
    if tls is None:  # the connection was closed during the handshake
        raise _Failed("tls error")
    return tls


def _request(target: CheckTarget) -> bytes:
    """The GET request of a check."""
    return (
        f"GET {target.spec.path} HTTP/1.1\r\n"
        f"Host: {target.host_header()}\r\n"
        f"User-Agent: {_USER_AGENT}\r\n"
        "Accept: */*\r\n"
        "Connection: close\r\n\r\n"
    ).encode()


def _parse_head(head: bytes) -> tuple[int, int | None]:
    """Status and Content-Length (None if absent or chunked) of a complete response head."""
    status_line, _, headers = head.partition(b"\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not _is_status(parts[1]):
        raise _Failed("bad response")
    status = int(parts[1])
    length: int | None = None
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            return status, None
    return status, length


def _is_status(token: bytes) -> bool:
    return len(token) == 3 and token.isdigit()


def _errno_name(exc: OSError) -> str:
    """`ECONNABORTED`-style name of an OSError's errno (or its message if it has none)."""
    if exc.errno is None:
        return type(exc).__name__
    return errno.errorcode.get(exc.errno, str(exc.errno))


@functools.cache
def _client_context(verify: bool) -> ssl.SSLContext:
    """The shared client TLS context: system CAs and hostname check with verify, else none."""
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
