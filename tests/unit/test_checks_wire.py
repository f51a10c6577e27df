"""Check wire helpers: status line, the headers that matter, body budget, causes, socket plans."""

from __future__ import annotations

import errno
import socket

import pytest

from ipvswm.checks.plain import SocketPlan
from ipvswm.checks.wire import BODY_CAP
from ipvswm.checks.wire import LOCAL_ERRNOS
from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import LocalError
from ipvswm.checks.wire import body_length
from ipvswm.checks.wire import body_want
from ipvswm.checks.wire import connect_failure
from ipvswm.checks.wire import io_failure
from ipvswm.checks.wire import parse_status
from ipvswm.checks.wire import request_bytes
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("line", "status"),
    [("HTTP/1.1 200 OK", 200), ("HTTP/1.0 503 Busy", 503), ("HTTP/1.1  301", 301)],
)
def test_status_line(line: str, status: int) -> None:
    assert parse_status(head(line, "Server: x")) == status


@pytest.mark.parametrize("line", ["HTTP/2 200 OK", "ICY 200 OK", "HTTP/1.1 2000 OK", "HTTP/1.1"])
def test_bad_status_line(line: str) -> None:
    with pytest.raises(CheckFailed, match="bad response"):
        parse_status(head(line))


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        (["Content-Length: 12"], 12),
        (["content-length:0"], 0),
        (["X: y", "CONTENT-LENGTH : 7 ", "Z: w"], 7),
        (["Content-Length: 12", "Transfer-Encoding: chunked"], None),
        (["Content-Length: -1"], None),
        (["Content-Lengthy: 5"], None),
        (["X-Content-Length: 5"], None),
        ([], None),
    ],
)
def test_body_length(headers: list[str], length: int | None) -> None:
    assert body_length(head("HTTP/1.1 200 OK", *headers)) == length


def test_body_want_is_the_length_capped_and_nothing_for_204_and_304() -> None:
    assert body_want(200, 3) == 3
    assert body_want(200, 0) == 0  # Content-Length: 0 needs no wait for the end of the stream
    assert body_want(200, None) == BODY_CAP
    assert body_want(200, 10 * BODY_CAP) == BODY_CAP
    assert body_want(204, None) == body_want(304, 5) == 0


def test_request_bytes() -> None:
    spec = CheckSpec(CheckKind.HTTP, url_host="www.example.test", url_port=8080, path="/hc?a=1")
    request = request_bytes(CheckTarget("192.0.2.1", 8080, spec))
    assert request.startswith(b"GET /hc?a=1 HTTP/1.1\r\nHost: www.example.test:8080\r\n")
    assert request.endswith(b"Connection: close\r\n\r\n")


def test_causes() -> None:
    refused = OSError(errno.ECONNREFUSED, "refused")  # OSError picks the subclass by errno
    assert connect_failure(refused).cause == "connect refused"
    assert connect_failure(OSError(errno.ENETUNREACH, "x")).cause == "connect error: ENETUNREACH"
    assert io_failure(None).cause == "bad response"
    assert io_failure(OSError(errno.ECONNRESET, "x")).cause == "connection reset"
    assert io_failure(OSError(errno.EIO, "x")).cause == "io error: EIO"


@pytest.mark.parametrize("err", sorted(LOCAL_ERRNOS))
def test_director_local_errors_give_no_verdict(err: int) -> None:
    name = errno.errorcode[err]
    for failure in (connect_failure(OSError(err, "x")), io_failure(OSError(err, "x"))):
        assert isinstance(failure, LocalError)
        assert failure.errno_name == name
        assert failure.cause == f"{name} ({LOCAL_ERRNOS[err]})"
    emfile = connect_failure(OSError(errno.EMFILE, "Too many open files"))
    assert emfile.cause == "EMFILE (the director is out of file descriptors)"


@pytest.mark.parametrize(
    "err", [errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH]
)
def test_errors_of_the_path_to_the_server_are_failures(err: int) -> None:
    assert not isinstance(connect_failure(OSError(err, "x")), LocalError)
    assert not isinstance(io_failure(OSError(err, "x")), LocalError)


def test_socket_plan_for_ip_literals_only() -> None:
    http = CheckSpec(CheckKind.HTTP)
    v4 = SocketPlan.for_target(CheckTarget("192.0.2.1", 80, http), b"GET")
    assert v4 is not None and (v4.family, v4.sockaddr, v4.request) == (
        socket.AF_INET,
        ("192.0.2.1", 80),
        b"GET",
    )
    v6 = SocketPlan.for_target(CheckTarget("2001:db8::1", 81, CheckSpec(CheckKind.TCP)), b"GET")
    assert v6 is not None and (v6.family, v6.sockaddr[:2], v6.request) == (
        socket.AF_INET6,
        ("2001:db8::1", 81),
        None,  # a TCP check sends nothing
    )
    # A name is never looked up (AI_NUMERICHOST): such a target takes the transport path.
    assert SocketPlan.for_target(CheckTarget("www.example.test", 80, http), b"GET") is None
