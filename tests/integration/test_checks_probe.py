"""probe() against real loopback servers (127.0.0.10-29): every outcome and cause of SPEC §3."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import trustme

from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckKind, CheckSpec, CheckTarget, check_target
from tests.support.realservers import RealServer, client_context, make_ca, server_context

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
    assert 0.5 <= outcome.ended - outcome.started <= 0.55


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
