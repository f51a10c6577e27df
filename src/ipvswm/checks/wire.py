"""HTTP/1.1 on the wire for checks: request bytes, head parsing, failure causes (SPEC §3)."""

from __future__ import annotations

import errno
import ssl

from ipvswm.config.model import CheckTarget

BODY_CAP = 64 * 1024
"""Bytes of body read (and discarded) at most; a longer body still passes."""

HEAD_LIMIT = 16 * 1024
"""Bytes of status line plus headers accepted at most; more is a `bad response`."""

NO_BODY = frozenset({204, 304})
USER_AGENT = "ipvswm-check"
HEAD_END = b"\r\n\r\n"


class CheckFailed(Exception):
    """A check failed with a displayable cause (internal control flow only)."""

    def __init__(self, cause: str, status: int | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status


class LocalError(CheckFailed):
    """The check could not be made for want of a resource on the director: no verdict.

    E.g. no file descriptor left for its socket: that says nothing of the real server, so it must
    not count as a failure of it.
    """

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name} ({why})")
        self.errno_name = name


LOCAL_ERRNOS: dict[int, str] = {
    errno.EMFILE: "the director is out of file descriptors",
    errno.ENFILE: "the director's system-wide file table is full",
    errno.ENOBUFS: "the director is out of socket buffer memory",
    errno.ENOMEM: "the director is out of memory",
    errno.EADDRNOTAVAIL: "the director has no free local port or address for it",
    errno.EADDRINUSE: "the director has no free local port for it",
    errno.EAFNOSUPPORT: "the director does not support this address family",
    errno.EPROTONOSUPPORT: "the director does not support this protocol",
}
"""Errors that come from the director's own resources, never from the real server, with why."""


def request_bytes(target: CheckTarget) -> bytes:
    """The request of an HTTP(S) check (`header=` replaces a default header of the same name)."""
    spec = target.spec
    headers = {"host": ("Host", target.host_header())}
    headers["user-agent"] = ("User-Agent", USER_AGENT)
    headers["accept"] = ("Accept", "*/*")
    for name, value in spec.headers:
        headers[name.lower()] = (name, value)
    lines = [f"{spec.http_method} {spec.path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.values()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_bytes(target: CheckTarget) -> bytes | None:
    """What a tcp check sends once connected: its `send=` line ended with CRLF, else nothing."""
    send = target.spec.send
    return None if send is None else (send + "\r\n").encode()


def parse_status(head: bytes) -> int:
    """The status of a response head's status line; `bad response` if it is not one."""
    line_end = head.find(b"\r\n")
    parts = head[:line_end].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not _is_status(parts[1]):
        raise CheckFailed("bad response")
    return int(parts[1])


def body_length(head: bytes) -> int | None:
    """Content-Length of a complete head (None if absent, invalid or the body is chunked).

    Only the two headers that matter are looked for, in a lower-cased copy: no line splitting.
    """
    lower = head.lower()
    found = lower.find(b"\r\ntransfer-encoding")
    if found >= 0 and b"chunked" in _header_value(lower, found + 19):
        return None
    found = lower.find(b"\r\ncontent-length")
    if found < 0:
        return None
    value = _header_value(lower, found + 16).strip()
    return int(value) if value.isdigit() else None


def body_want(status: int, length: int | None) -> int:
    """Body bytes to drain once a head is judged: the announced length, capped."""
    if status in NO_BODY:
        return 0
    return BODY_CAP if length is None else min(length, BODY_CAP)


def _header_value(lower: bytes, after_name: int) -> bytes:
    """The value of the header whose name ends at `after_name` (b"" if that is no header line)."""
    line_end = lower.find(b"\r\n", after_name)
    name_rest, colon, value = lower[after_name:line_end].partition(b":")
    if not colon or name_rest.strip():
        return b""  # e.g. `Content-Lengthy:`: another header
    return value


def _is_status(token: bytes) -> bool:
    return len(token) == 3 and token.isdigit()


def errno_name(exc: OSError) -> str:
    """`ECONNABORTED`-style name of an OSError's errno (or its type if it has none)."""
    if exc.errno is None:
        return type(exc).__name__
    return errno.errorcode.get(exc.errno, str(exc.errno))


def local_error(exc: OSError) -> LocalError | None:
    """The no-verdict failure for a director-local error (None if the error is not one)."""
    why = LOCAL_ERRNOS.get(exc.errno) if exc.errno is not None else None
    return None if why is None else LocalError(errno_name(exc), why)


def connect_failure(exc: OSError) -> CheckFailed:
    """The failure for a socket that could not be made or connected."""
    local = local_error(exc)
    if local is not None:
        return local
    if isinstance(exc, ConnectionRefusedError):
        return CheckFailed("connect refused")
    return CheckFailed(f"connect error: {errno_name(exc)}")


def io_failure(error: BaseException | None) -> CheckFailed:
    """The failure for a connection that ended before a complete response head."""
    if isinstance(error, CheckFailed):
        return error
    if isinstance(error, ssl.SSLError):
        return CheckFailed("tls error")
    if isinstance(error, ConnectionError):
        return CheckFailed("connection reset")
    if isinstance(error, OSError):
        local = local_error(error)  # e.g. ENOBUFS on send: the director, not the server
        if local is not None:
            return local
        return CheckFailed(f"io error: {errno_name(error)}")
    return CheckFailed("bad response")  # EOF (or an unknown error) before the head was complete
