"""HTTP `method=`/`header=`/`body=` and tcp `send=`/`expect=` against real loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable

import pytest
import trustme

from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.parser import parse_text
from tests.support.realservers import RealServer
from tests.support.realservers import make_ca
from tests.support.realservers import server_context

pytestmark = pytest.mark.integration

NAME = "www.example.test"


@pytest.fixture
async def web() -> AsyncIterator[RealServer]:
    async with RealServer("127.0.0.30") as server:
        yield server


def spec_of(check: str) -> CheckSpec:
    """The check spec of a one-VS config line (the options as an operator writes them)."""
    result = parse_text(f"! v 192.0.2.1:80 {check}\n", "t.conf", lambda _: [])
    assert result.errors == (), result.errors
    assert result.config is not None
    return result.config.services[0].check


async def test_head_with_extra_headers_is_sent_as_written(web: RealServer) -> None:
    spec = spec_of(
        f"http://{NAME}/h method=HEAD header=X-Check:ipvswm%2C%20director header=Host:other.test"
    )
    outcome = await probe(CheckTarget(web.address, web.port, spec))
    assert (outcome.passed, outcome.status) == (True, 200)
    [request] = await web.wait_requests(1)
    assert request.method == "HEAD"
    assert ("X-Check", "ipvswm, director") in request.headers
    # header=Host replaces the default one instead of sending two.
    assert [v for k, v in request.headers if k.lower() == "host"] == ["other.test"]


@pytest.mark.parametrize(
    ("text", "passed", "cause"), [("OK", True, ""), ("nope", False, "body mismatch")]
)
async def test_body_match_on_the_socket_path(
    web: RealServer, text: str, passed: bool, cause: str
) -> None:
    spec = spec_of(f"http://{NAME}/ body={text}")
    outcome = await probe(CheckTarget(web.address, web.port, spec))
    assert (outcome.passed, outcome.cause, outcome.status) == (passed, cause, 200)


async def test_body_match_found_past_the_first_read() -> None:
    """A body text at the end of a body that arrives in several pieces is still found."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"x" * 40000 + b"status=green"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 8192):
            writer.write(body[start : start + 8192])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.31", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        for text, passed in [("status=green", True), ("status=red", False)]:
            outcome = await probe(CheckTarget("127.0.0.31", port, spec_of(f"/ body={text}")))
            assert outcome.passed is passed


async def test_body_match_over_https() -> None:
    ca: trustme.CA = make_ca()
    async with RealServer("127.0.0.32", ssl=server_context(ca, NAME)) as tls:
        for text, passed in [("OK", True), ("nope", False)]:
            outcome = await probe(
                CheckTarget(tls.address, tls.port, spec_of(f"https://{NAME}/ body={text}"))
            )
            assert outcome.passed is passed
            assert outcome.cause == ("" if passed else "body mismatch")


async def test_head_over_https_passes_without_a_body() -> None:
    ca = make_ca()
    async with RealServer("127.0.0.33", ssl=server_context(ca, NAME)) as tls:
        outcome = await probe(
            CheckTarget(tls.address, tls.port, spec_of(f"https://{NAME}/ method=head"))
        )
        assert (outcome.passed, outcome.status) == (True, 200)
        [request] = await tls.wait_requests(1)
        assert request.method == "HEAD"


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def tcp_server(address: str, handler: Handler) -> AsyncIterator[int]:
    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            await handler(reader, writer)
        writer.close()

    server = await asyncio.start_server(guarded, address, 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def smtp_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 mx.example.test ESMTP\r\n")
    await writer.drain()
    await reader.read(100)


@pytest.mark.parametrize(
    ("expect", "passed", "cause"),
    [("220", True, ""), ("220%20mx", True, ""), ("421", False, "banner mismatch")],
)
async def test_tcp_banner_prefix(expect: str, passed: bool, cause: str) -> None:
    async with tcp_server("127.0.0.34", smtp_like) as port:
        outcome = await probe(CheckTarget("127.0.0.34", port, spec_of(f"tcp:// expect={expect}")))
        assert (outcome.passed, outcome.cause) == (passed, cause)


async def test_tcp_send_then_expect_like_redis() -> None:
    lines: list[bytes] = []

    async def redis_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        lines.append(line)
        writer.write(b"+PONG\r\n" if line == b"PING\r\n" else b"-ERR unknown\r\n")
        await writer.drain()

    async with tcp_server("127.0.0.35", redis_like) as port:
        target = CheckTarget("127.0.0.35", port, spec_of("tcp:// send=PING expect=+PONG"))
        assert (await probe(target)).passed
        wrong = CheckTarget("127.0.0.35", port, spec_of("tcp:// send=QUIT expect=+PONG"))
        assert (await probe(wrong)).cause == "banner mismatch"
    assert lines == [b"PING\r\n", b"QUIT\r\n"]


async def test_tcp_banner_silent_server_is_a_response_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with tcp_server("127.0.0.36", silent) as port:
        spec = spec_of("tcp:// expect=220 timeout=0.3")
        outcome = await probe(CheckTarget("127.0.0.36", port, spec))
        assert (outcome.passed, outcome.cause) == (False, "response timeout")


async def test_tcp_banner_cut_short_is_a_mismatch() -> None:
    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"22")
        await writer.drain()

    async with tcp_server("127.0.0.37", short) as port:
        outcome = await probe(CheckTarget("127.0.0.37", port, spec_of("tcp:// expect=220")))
        assert (outcome.passed, outcome.cause) == (False, "banner mismatch")


async def test_tcp_without_send_or_expect_still_only_connects(web: RealServer) -> None:
    spec = CheckSpec(CheckKind.TCP)
    assert (await probe(CheckTarget(web.address, web.port, spec))).passed
    await web.wait_connections(1)
    assert web.requests == []
