"""One check of one real server: an HTTP(S) GET or a TCP connect, and its outcome (SPEC §3).

A minimal HTTP/1.1 client on asyncio streams: one fresh connection per check (`Connection: close`),
a connect timeout, then ONE deadline for the whole response (TLS handshake, status line, headers and
the capped body drain), never a per-read timeout. It was chosen over aiohttp on speed and memory
(see bench/checks.py).
"""

from __future__ import annotations

import asyncio
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
    reader, writer = await _connect(target)
    if spec.kind is CheckKind.TCP:
        writer.close()
        return None
    deadline = asyncio.get_running_loop().time() + spec.response_timeout
    graceful = False
    try:
        async with asyncio.timeout_at(deadline):
            if spec.kind is CheckKind.HTTPS:
                await _start_tls(writer, target, verify_context)
            writer.write(_request(target))
            head = await reader.readuntil(b"\r\n\r\n")
        status, length = _parse_head(head)
        if not spec.passes_status(status):
            raise _Failed(f"status {status}", status)
        graceful = await _drain(reader, 0 if status in _NO_BODY else length, deadline)
        return status
    except TimeoutError:
        raise _Failed("response timeout") from None
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise _Failed("bad response") from None
    except ssl.SSLError:
        raise _Failed("tls error") from None
    except ConnectionError:
        raise _Failed("connection reset") from None
    except OSError as exc:
        raise _Failed(f"io error: {_errno_name(exc)}") from None
    finally:
        # Once judged, a clean close; otherwise drop the connection without waiting on the peer.
        if graceful:
            writer.close()
        else:
            writer.transport.abort()


async def _connect(target: CheckTarget) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a fresh TCP connection within the connect timeout."""
    try:
        async with asyncio.timeout(target.spec.connect_timeout):
            return await asyncio.open_connection(target.address, target.port, limit=HEAD_LIMIT)
    except TimeoutError:
        raise _Failed("connect timeout") from None
    except ConnectionRefusedError:
        raise _Failed("connect refused") from None
    except OSError as exc:
        raise _Failed(f"connect error: {_errno_name(exc)}") from None


async def _start_tls(
    writer: asyncio.StreamWriter, target: CheckTarget, verify_context: ssl.SSLContext | None
) -> None:
    """TLS handshake with SNI = the URL's name (no SNI when that is an IP address)."""
    spec = target.spec
    context = _client_context(spec.verify)
    if spec.verify and verify_context is not None:
        context = verify_context
    # ssl sends no SNI for an IP literal but still matches it against the certificate's IP SANs.
    name = (spec.url_host or target.address).strip("[]")
    try:
        await writer.start_tls(context, server_hostname=name)
    except TimeoutError:
        raise
    except OSError:  # ssl.SSLError, certificate errors, and the peer dropping mid-handshake
        raise _Failed("tls error") from None


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


async def _drain(reader: asyncio.StreamReader, length: int | None, deadline: float) -> bool:
    """Read and discard the body up to the cap; True if it ended cleanly (EOF or full length).

    The verdict is already in: a timeout or error here only ends the drain.
    """
    remaining = BODY_CAP if length is None else min(length, BODY_CAP)
    try:
        async with asyncio.timeout_at(deadline):
            while remaining > 0:
                chunk = await reader.read(min(remaining, BODY_CAP))
                if not chunk:
                    return True
                remaining -= len(chunk)
    except (TimeoutError, OSError):
        return False
    return length is not None and length <= BODY_CAP


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
