"""dns:// checks against a real DNS responder on loopback UDP (SPEC §3)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import dns.rdatatype
import pytest

from ipvswm.checks.checker import Checker
from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckTarget
from ipvswm.config.parser import parse_text
from ipvswm.events import CheckStatus
from tests.support.checks import Results
from tests.support.dnsserver import DnsResponder

pytestmark = pytest.mark.integration


def target(responder: DnsResponder, check: str) -> CheckTarget:
    """The check target of a udp VS with this CHECK column on the responder's address."""
    vs = "[2001:db8::1]" if ":" in responder.address else "192.0.2.1"
    host = f"[{responder.address}]" if ":" in responder.address else responder.address
    text = f"! ns {vs}:53 {check} proto=udp\nh {host}:{responder.port} ns=1\n"
    result = parse_text(text, "dns.conf", lambda _: [])
    assert result.errors == (), result.errors
    assert result.config is not None
    [found] = result.config.check_targets()
    return found


@pytest.fixture
async def ns() -> AsyncIterator[DnsResponder]:
    async with DnsResponder("127.0.0.40") as responder:
        yield responder


@pytest.mark.parametrize(
    ("mode", "passed", "cause"),
    [
        ("answer", True, ""),
        ("nxdomain", False, "rcode NXDOMAIN"),
        ("servfail", False, "rcode SERVFAIL"),
        ("nodata", False, "no answer"),
        ("garbage", False, "bad response"),
        ("wrong-id", False, "bad response"),
    ],
)
async def test_outcomes(ns: DnsResponder, mode: str, passed: bool, cause: str) -> None:
    await ns.set_mode(mode)
    outcome = await probe(target(ns, "dns://www.example.test"))
    assert (outcome.passed, outcome.cause, outcome.local_error) == (passed, cause, False)


async def test_silent_server_is_a_response_timeout(ns: DnsResponder) -> None:
    await ns.set_mode("silent")
    outcome = await probe(target(ns, "dns://www.example.test timeout=0.3"))
    assert (outcome.passed, outcome.cause) == (False, "response timeout")
    await ns.wait_queries(1)


async def test_closed_port_is_port_unreachable(ns: DnsResponder) -> None:
    await ns.set_mode("closed")
    outcome = await probe(target(ns, "dns://www.example.test timeout=2"))
    assert (outcome.passed, outcome.cause) == (False, "port unreachable")


async def test_query_name_type_and_expect_nxdomain(ns: DnsResponder) -> None:
    outcome = await probe(target(ns, "dns://Probe.Example.Test?type=AAAA"))
    assert outcome.passed
    [query] = await ns.wait_queries(1)
    question = query.question[0]
    assert (question.name.to_text(), question.rdtype) == ("probe.example.test.", dns.rdatatype.AAAA)
    await ns.set_mode("nxdomain")
    assert (await probe(target(ns, "dns://gone.example.test expect=NXDOMAIN"))).passed
    await ns.set_mode("answer")
    missed = await probe(target(ns, "dns://gone.example.test expect=NXDOMAIN"))
    assert missed.cause == "rcode NOERROR"


async def test_url_port_is_where_the_query_goes(ns: DnsResponder) -> None:
    check = f"dns://www.example.test:{ns.port}"
    text = f"! ns 192.0.2.1:53 {check} proto=udp\nh {ns.address} ns=1\n"
    result = parse_text(text, "dns.conf", lambda _: [])
    assert result.config is not None
    [found] = result.config.check_targets()
    assert found.port == ns.port
    assert (await probe(found)).passed


async def test_ipv6_loopback() -> None:
    async with DnsResponder("::1") as responder:
        assert (await probe(target(responder, "dns://www.example.test"))).passed


async def test_a_checker_follows_the_responder(ns: DnsResponder) -> None:
    """A checker runs dns checks on the callback path and its status follows the server."""
    results = Results()
    checker = Checker(
        target(ns, "dns://www.example.test interval=0.05"), results, rng=random.Random(1)
    )
    checker.start()
    try:
        assert checker.task is None  # loop callbacks, no task
        [first] = await results.wait(1)
        assert first.status is CheckStatus.PASS
        await ns.set_mode("nxdomain")
        while checker.status is not CheckStatus.FAIL:
            await results.wait(len(results.items) + 1)
        assert results.items[-1].cause == "rcode NXDOMAIN"
    finally:
        await checker.stop()
