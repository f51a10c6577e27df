"""The HTTPS check on an asyncio transport (TLS through `loop.start_tls`) (SPEC §3).

A minimal HTTP/1.1 client on an asyncio protocol: a fresh connection, a connect timeout, then ONE
deadline for the whole response (TLS handshake, status line, headers and the capped body drain),
never a per-read timeout. Plain HTTP and TCP checks take the cheaper socket path (`plain.py`); this
one also speaks plain HTTP, which bench/checks.py uses to compare the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Callable

from ipvswm.checks.wire import BODY_CAP
from ipvswm.checks.wire import HEAD_END
from ipvswm.checks.wire import HEAD_LIMIT
from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import body_length
from ipvswm.checks.wire import body_want
from ipvswm.checks.wire import connect_failure
from ipvswm.checks.wire import io_failure
from ipvswm.checks.wire import parse_status
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckTarget


async def check_transport(
    target: CheckTarget, request: bytes, verify_context: ssl.SSLContext | None
) -> int | None:
    """Connect, and for HTTP(S) request and judge; the status read, or None for TCP."""
    spec = target.spec
    loop = asyncio.get_running_loop()
    transport, exchange = await _connect(target, loop)
    exchange.keep_body = spec.body is not None
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
                transport.write(request)
                await exchange.wait(exchange.head_done)
        except TimeoutError:
            raise CheckFailed("response timeout") from None
        if exchange.head is None:
            raise io_failure(exchange.error)
        status = parse_status(exchange.head)
        if not spec.passes_status(status):
            raise CheckFailed(f"status {status}", status)
        length = body_length(exchange.head)
        # The verdict is in: the body is drained up to the cap until the deadline, no more.
        head_only = spec.http_method == "HEAD"  # no body, whatever the headers say
        exchange.body_want = 0 if head_only else body_want(status, length)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await exchange.wait(exchange.body_done)
        if spec.body is not None and spec.body.encode() not in exchange.body[:BODY_CAP]:
            raise CheckFailed("body mismatch", status)
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
        self.keep_body = False  # with a body match: the body is kept (up to the cap)
        self.body = b""
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
            if self.keep_body and len(self.body) < BODY_CAP:
                self.body += data
            self.body_seen += len(data)
            if self.body_seen >= self.body_want:
                self._wake()
            return
        self._buffer += data
        end = self._buffer.find(HEAD_END)
        if end >= 0:
            self.head = self._buffer[: end + 4]
            if self.keep_body:
                self.body = self._buffer[end + 4 :]
            self.body_seen = len(self._buffer) - end - 4
            self._buffer = b""
            self._wake()
        elif len(self._buffer) > HEAD_LIMIT:
            self.connection_lost(CheckFailed("bad response"))

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


async def _connect(
    target: CheckTarget, loop: asyncio.AbstractEventLoop
) -> tuple[asyncio.Transport, _Exchange]:
    """Open a fresh TCP connection within the connect timeout."""
    try:
        async with asyncio.timeout(target.spec.connect_timeout):
            return await loop.create_connection(_Exchange, target.address, target.port)
    except TimeoutError:
        raise CheckFailed("connect timeout") from None
    except OSError as exc:
        raise connect_failure(exc) from None


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
        raise CheckFailed("tls error") from None
    if tls is None:  # the connection was closed during the handshake
        raise CheckFailed("tls error")
    return tls


@functools.cache
def _client_context(verify: bool) -> ssl.SSLContext:
    """The shared client TLS context: system CAs and hostname check with verify, else none."""
    if verify:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
