"""probe() against real loopback servers (127.0.0.10-29): every outcome and cause of SPEC §3."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterator

import pytest
import trustme

from ipvswm.checks import plain
from ipvswm.checks.probe import HEAD_LIMIT
from ipvswm.checks.probe import PreparedCheck
from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import check_target
from tests.support.realservers import RealServer
from tests.support.realservers import client_context
from tests.support.realservers import make_ca
from tests.support.realservers import server_context

pytestmark = pytest.mark.integration

NAME = "www.example.test"


def http(server: RealServer, **kw: object) -> CheckTarget:
    spec = CheckSpec(CheckKind.HTTP, url_host=NAME, path="/health", **kw)  # type: ignore[arg-type]
    return CheckTarget(server.address, server.port, spec)


@pytest.fixture
async def web() -> AsyncIterator[RealServer]:
    async with RealServer("127.0.0.10") as server:
        yield server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return make_ca()


@pytest.fixture
async def tls(ca: trustme.CA) -> AsyncIterator[RealServer]:
    async with RealServer("127.0.0.11", ssl=server_context(ca, NAME)) as server:
        yield server


async def test_healthy_passes_with_host_header_and_path(web: RealServer) -> None:
    outcome = await probe(http(web))
    assert (outcome.passed, outcome.cause, outcome.status) == (True, "", 200)
    assert outcome.started <= outcome.ended
    [request] = await web.wait_requests(1)
    assert (request.method, request.path, request.host) == ("GET", "/health", NAME)


async def test_path_form_sends_the_address_as_host(web: RealServer) -> None:
    spec = CheckSpec(CheckKind.HTTP, path="/ping")
    assert (await probe(CheckTarget(web.address, web.port, spec))).passed
    [request] = await web.wait_requests(1)
    assert (request.host, request.path) == ("127.0.0.10", "/ping")


async def test_url_port_is_used_and_named_in_host() -> None:
    async with RealServer("127.0.0.12") as url_port, RealServer("127.0.0.12") as pair_port:
        spec = CheckSpec(CheckKind.HTTP, url_host=NAME, url_port=url_port.port)
        target = check_target(spec, "127.0.0.12", pair_port.port)
        assert target is not None and target.port == url_port.port
        assert (await probe(target)).passed
        [request] = await url_port.wait_requests(1)
        assert request.host == f"{NAME}:{url_port.port}"
        assert pair_port.requests == []
        # Without a URL port the pair's real-server port is checked.
        plain = CheckSpec(CheckKind.HTTP, url_host=NAME)
        target = check_target(plain, "127.0.0.12", pair_port.port)
        assert target is not None and (await probe(target)).passed
        assert len(await pair_port.wait_requests(1)) == 1


async def test_500_fails_with_status_cause(web: RealServer) -> None:
    await web.set_mode("failing")
    outcome = await probe(http(web))
    assert (outcome.passed, outcome.cause, outcome.status) == (False, "status 500", 500)


async def test_301_fails_by_default_and_passes_with_expect_range(web: RealServer) -> None:
    await web.set_mode("status:301")
    assert (await probe(http(web))).cause == "status 301"
    assert (await probe(http(web, expect=((200, 399),)))).passed


@pytest.mark.parametrize("mode", ["stall", "hanging", "drip:0.05"])
async def test_response_deadline_is_one_deadline_for_the_whole_response(
    web: RealServer, mode: str
) -> None:
    await web.set_mode(mode)
    outcome = await probe(http(web, response_timeout=0.5))
    assert (outcome.passed, outcome.cause) == (False, "response timeout")
    # Never before the deadline; the upper bound is generous (a loaded machine wakes late) and
    # still far below what a per-read timeout would give for the dripping answer.
    assert 0.5 <= outcome.ended - outcome.started < 2.0


async def test_slow_but_in_time_passes(web: RealServer) -> None:
    await web.set_mode("slow:0.1")
    assert (await probe(http(web, response_timeout=1.0))).passed


async def test_refused_then_reopened_on_the_same_port(web: RealServer) -> None:
    port = web.port
    await web.set_mode("refusing")
    assert (await probe(http(web))).cause == "connect refused"
    await web.set_mode("healthy")
    assert web.port == port
    assert (await probe(http(web))).passed


@pytest.fixture
def full_listener() -> Iterator[tuple[str, int]]:
    """A listener whose accept queue is full, so further SYNs are dropped: connects hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.13", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    yield address
    for sock in [*fillers, listener]:
        sock.close()


async def test_connect_timeout(full_listener: tuple[str, int]) -> None:
    address, port = full_listener
    target = CheckTarget(address, port, CheckSpec(CheckKind.TCP, connect_timeout=0.2))
    outcome = await probe(target)
    assert (outcome.passed, outcome.cause) == (False, "connect timeout")
    assert 0.2 <= outcome.ended - outcome.started < 0.3


@pytest.mark.parametrize(
    ("mode", "cause"),
    [("reset", "connection reset"), ("garbage", "bad response"), ("eof", "bad response")],
)
async def test_broken_responses(web: RealServer, mode: str, cause: str) -> None:
    await web.set_mode(mode)
    outcome = await probe(http(web))
    assert (outcome.passed, outcome.cause) == (False, cause)


async def test_big_body_is_capped_and_passes_fast(web: RealServer) -> None:
    await web.set_mode(f"bigbody:{50 * 1024 * 1024}")
    outcome = await probe(http(web))
    assert (outcome.passed, outcome.status) == (True, 200)
    assert outcome.ended - outcome.started < 0.5


async def test_https_sends_sni_and_host(tls: RealServer) -> None:
    spec = CheckSpec(CheckKind.HTTPS, url_host=NAME, path="/tls")
    assert (await probe(CheckTarget(tls.address, tls.port, spec))).passed
    [request] = await tls.wait_requests(1)
    assert (request.sni, request.host, request.path) == (NAME, NAME, "/tls")


async def test_https_to_an_ip_sends_no_sni(tls: RealServer) -> None:
    spec = CheckSpec(CheckKind.HTTPS, url_host="127.0.0.11")
    assert (await probe(CheckTarget(tls.address, tls.port, spec))).passed
    [request] = await tls.wait_requests(1)
    assert (request.sni, request.host) == (None, "127.0.0.11")


async def test_verify_rejects_an_untrusted_certificate(tls: RealServer) -> None:
    spec = CheckSpec(CheckKind.HTTPS, url_host=NAME, verify=True)
    outcome = await probe(CheckTarget(tls.address, tls.port, spec))
    assert (outcome.passed, outcome.cause) == (False, "tls error")
    assert tls.requests == []


async def test_verify_with_a_trusted_ca_checks_the_name(tls: RealServer, ca: trustme.CA) -> None:
    trusting = client_context(ca)
    good = CheckSpec(CheckKind.HTTPS, url_host=NAME, verify=True)
    assert (await probe(CheckTarget(tls.address, tls.port, good), verify_context=trusting)).passed
    wrong = CheckSpec(CheckKind.HTTPS, url_host="other.example.test", verify=True)
    outcome = await probe(CheckTarget(tls.address, tls.port, wrong), verify_context=trusting)
    assert outcome.cause == "tls error"


async def test_https_against_plain_http_is_a_tls_error(web: RealServer) -> None:
    spec = CheckSpec(CheckKind.HTTPS, url_host=NAME)
    assert (await probe(CheckTarget(web.address, web.port, spec))).cause == "tls error"


async def test_tcp_up_and_down(web: RealServer) -> None:
    target = CheckTarget(web.address, web.port, CheckSpec(CheckKind.TCP))
    await web.set_mode("tcp")
    outcome = await probe(target)
    assert (outcome.passed, outcome.status) == (True, None)
    await web.wait_connections(1)
    await web.set_mode("refusing")
    assert (await probe(target)).cause == "connect refused"


async def test_ipv6_loopback_host_header() -> None:
    async with RealServer("::1") as server:
        target = CheckTarget("::1", server.port, CheckSpec(CheckKind.HTTP))
        assert (await probe(target)).passed
        [request] = await server.wait_requests(1)
        assert request.host == "[::1]"


# --- the socket path's edge cases, against scripted servers ----------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[CheckTarget, asyncio.Event]]:
    """A server on 127.0.0.14 running `script` per connection; yields (HTTP target, closed).

    `closed` is set when the client has closed its end (the script's read saw EOF).
    """
    closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await script(reader, writer)
            await reader.read()  # until the client closes
        except OSError:
            pass
        finally:
            closed.set()
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.14", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield (
            CheckTarget("127.0.0.14", port, CheckSpec(CheckKind.HTTP, response_timeout=10.0)),
            closed,
        )
    finally:
        server.close()
        await server.wait_closed()


async def test_content_length_zero_passes_without_waiting_for_the_close() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # and keeps it open

    async with scripted(answer) as (target, closed):
        outcome = await probe(target)
        assert (outcome.passed, outcome.status) == (True, 200)
        assert outcome.ended - outcome.started < 5.0  # not the 10 s deadline
        await asyncio.wait_for(closed.wait(), 5)


async def test_a_head_in_pieces_split_inside_the_blank_line() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for piece in [b"HTTP/1.1 20", b"4 No Content\r\nX: y\r\n\r", b"\n"]:
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)  # pacing, so that the client reads the pieces one by one

    async with scripted(answer) as (target, _):
        spec = CheckSpec(CheckKind.HTTP, expect=((204, 204),), response_timeout=2.0)
        outcome = await probe(CheckTarget(target.address, target.port, spec))
        assert (outcome.passed, outcome.status) == (True, 204)


async def test_chunked_body_is_drained_until_the_close() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nOK\n\r\n0\r\n\r\n")
        writer.close()

    async with scripted(answer) as (target, _):
        outcome = await probe(target)
        assert (outcome.passed, outcome.status) == (True, 200)
        assert outcome.ended - outcome.started < 1.0


async def test_an_endless_head_is_a_bad_response() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"x" * (2 * HEAD_LIMIT))
        await writer.drain()

    async with scripted(answer) as (target, closed):
        assert (await probe(target)).cause == "bad response"
        await asyncio.wait_for(closed.wait(), 5)


async def test_a_cancelled_check_closes_its_connection() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started.set()  # and never answers

    started = asyncio.Event()
    async with scripted(answer) as (target, closed):
        task = asyncio.create_task(probe(target))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 5)


async def test_a_bug_while_judging_is_an_internal_error(
    web: RealServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(head: bytes) -> int:
        raise RuntimeError("bug")

    monkeypatch.setattr(plain, "parse_status", broken)
    outcome = await probe(http(web))
    assert (outcome.passed, outcome.cause) == (False, "internal error")


async def test_a_checker_reuses_its_prepared_check() -> None:
    spec = CheckSpec(CheckKind.HTTP, url_host=NAME, path="/again")
    async with RealServer("127.0.0.15") as web:
        target = CheckTarget(web.address, web.port, spec)
        prepared = PreparedCheck(target)
        outcomes = [await prepared.run() for _ in range(3)]
        assert [o.passed for o in outcomes] == [True, True, True]
        assert [r.path for r in await web.wait_requests(3)] == ["/again"] * 3
        assert web.connections == 3  # a fresh connection per check
