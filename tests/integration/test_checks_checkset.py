"""Checkers and the check set against real loopback servers (127.0.0.30-39)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import VirtualService
from ipvswm.config.model import check_target
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from tests.support.realservers import RealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration


class Sink:
    def __init__(self) -> None:
        self.results: list[CheckResult] = []
        self._event = asyncio.Event()

    def __call__(self, result: CheckResult) -> None:
        self.results.append(result)
        self._event.set()

    async def wait_for(self, status: CheckStatus) -> CheckResult:
        async with asyncio.timeout(5):
            while not self.results or self.results[-1].status is not status:
                self._event.clear()
                await self._event.wait()
        return self.results[-1]


async def test_two_virtual_services_sharing_a_check_probe_once_per_interval() -> None:
    async with RealServer("127.0.0.30") as web:
        spec = CheckSpec(CheckKind.HTTP, url_host="www.example.test", path="/hc", interval=0.1)
        config = Config(
            services=(
                VirtualService("a", "192.0.2.1", 80, web.port, spec),
                VirtualService("b", "192.0.2.2", 80, web.port, spec),
            ),
            hosts=(Host("web", web.address, weights=(("a", 1), ("b", 1))),),
        )
        sink = Sink()
        checks = CheckSet(sink)
        checks.update(config.check_targets())
        try:
            requests = await web.wait_requests(6)
        finally:
            await checks.close()
        times = [r.time for r in requests[:6]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        # One checker: requests come one per interval, not two.
        assert min(gaps) > 0.07
        assert all(r.path == "/hc" and r.host == "www.example.test" for r in requests)
        assert {r.target for r in sink.results} == set(config.check_targets())


async def test_status_follows_the_server_with_rise_and_fall() -> None:
    async with RealServer("127.0.0.31") as web:
        spec = CheckSpec(CheckKind.HTTP, interval=0.02, rise=2, fall=2, response_timeout=0.5)
        sink = Sink()
        checks = CheckSet(sink)
        target = check_target(spec, web.address, web.port)
        assert target is not None
        checks.update([target])
        try:
            up = await sink.wait_for(CheckStatus.PASS)
            await web.set_mode("failing")
            down = await sink.wait_for(CheckStatus.FAIL)
            await web.set_mode("refusing")
            await web.set_mode("healthy")
            again = await sink.wait_for(CheckStatus.PASS)
        finally:
            await checks.close()
        assert up.changed and down.changed and again.changed
        assert down.cause == "status 500"
        assert sink.results[0].status is CheckStatus.UNKNOWN  # rise=2: one pass is not enough
        checker_view = [r for r in sink.results if r.changed]
        assert [r.status for r in checker_view] == [
            CheckStatus.PASS,
            CheckStatus.FAIL,
            CheckStatus.PASS,
        ]


def test_threaded_real_servers_from_synchronous_code() -> None:
    with ThreadedRealServers() as farm:
        web = farm.start("127.0.0.32")
        target = CheckTarget(web.address, web.port, CheckSpec(CheckKind.HTTP, path="/sync"))
        assert asyncio.run(probe(target)).passed
        assert [r.path for r in web.wait_requests(1)] == ["/sync"]
        web.set_mode("refusing")
        assert asyncio.run(probe(target)).cause == "connect refused"
        web.set_mode("failing")
        assert asyncio.run(probe(target)).cause == "status 500"
        assert len(web.requests) == 2
