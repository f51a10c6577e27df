"""/metrics and /status of the real daemon during a failure, a recovery and reloads (issue 7).

Addresses: real servers on 127.0.0.150-127.0.0.152; metrics on 127.0.0.1 (a free port); virtual
services in 192.0.2.0/24 (never contacted).
"""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Scraper:
    """Fetches /metrics and /status of one daemon over loopback HTTP."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str) -> tuple[str, bytes]:
        with urllib.request.urlopen(self.base + path, timeout=5) as response:
            return response.headers.get("Content-Type", ""), response.read()

    def metrics(self) -> Samples:
        _, body = self.get("/metrics")
        out: Samples = {}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                out[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return out

    def status(self) -> dict[str, Any]:
        content_type, body = self.get("/status")
        assert content_type.startswith("application/json")
        document: dict[str, Any] = json.loads(body)
        return document


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The one sample `name` with exactly these labels, or None."""
    return samples.get((name, frozenset(labels.items())))


def total(samples: Samples, name: str, match: Callable[[dict[str, str]], bool]) -> float:
    """The sum of the samples `name` whose labels `match`."""
    return sum(v for (n, labels), v in samples.items() if n == name and match(dict(labels)))


def pair(status: dict[str, Any], vs: str, host: str) -> dict[str, Any]:
    """A pair's entry in the /status document."""
    service = next(s for s in status["services"] if s["vs"] == vs)
    found: dict[str, Any] = next(p for p in service["pairs"] if p["host"] == host)
    return found


def sorry_on(status: dict[str, Any], vs: str) -> bool:
    return bool(next(s for s in status["services"] if s["vs"] == vs)["sorry"]["on"])


def rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


def test_metrics_and_status_follow_a_failure_a_recovery_and_reloads(
    farm: ThreadedRealServers, tmp_path: Path
) -> None:
    emu = Emulator(tmp_path / "emu")
    web1, web2 = farm.start("127.0.0.150"), farm.start("127.0.0.151")
    sorry = farm.start("127.0.0.152")

    def body(web2_weight: int = 10) -> str:
        return (
            "! www 192.0.2.20:80 /health sorry_server=sorry\n"
            f"web1 {rs(web1)} www=10\n"
            f"web2 {rs(web2)} www={web2_weight}\n"
            f"sorry {rs(sorry)}\n"
        )

    port = free_port("127.0.0.1")
    daemon = DaemonProcess(
        tmp_path,
        body(),
        env=emu.env,
        options={
            "IPVSADM": str(emu.binary),
            "Metrics.Listen": f"127.0.0.1:{port}",
            "Config.AutoCheck": "0",  # only the SIGHUPs below reload
        },
    )
    daemon.start()
    scrape = Scraper(port)
    web = {"vs": "www", "host": "web1"}

    def weights_are(desired: int, kernel: int) -> Callable[[], bool]:
        def check() -> bool:
            m = scrape.metrics()
            return (
                value(m, "ipvswm_pair_desired_weight", **web) == desired
                and value(m, "ipvswm_pair_kernel_weight", **web) == kernel
            )

        return check

    def web1_checks(m: Samples, result: str) -> float:
        return total(
            m,
            "ipvswm_check_results_total",
            lambda lb: lb["target"].startswith(rs(web1)) and lb["result"] == result,
        )

    def kernel_ops(m: Samples) -> float:
        return value(m, "ipvswm_kernel_operations_total") or 0.0

    try:
        wait_until(weights_are(10, 10), 10, "web1 at weight 10 in /metrics", step=0.05)
        m = scrape.metrics()
        assert value(m, "ipvswm_pair_configured_weight", **web) == 10
        assert value(m, "ipvswm_pair_phase", **web, phase="ENABLED") == 1
        assert value(m, "ipvswm_vs_sorry_server", vs="www") == 0
        assert value(m, "ipvswm_vs_in_kernel", vs="www") == 1
        passes, ops = web1_checks(m, "pass"), kernel_ops(m)
        assert passes >= 1 and ops >= 1  # start-up added the service and its destinations
        assert pair(scrape.status(), "www", "web1")["phase"] == "ENABLED"

        # failure of both real servers: weights 0, the sorry server goes in
        web1.set_mode("failing")
        web2.set_mode("failing")
        wait_until(weights_are(0, 0), 10, "web1 at weight 0 in /metrics", step=0.05)
        wait_until(lambda: sorry_on(scrape.status(), "www"), 10, "the sorry server in /status")
        status = scrape.status()
        down = pair(status, "www", "web1")
        assert (down["phase"], down["desired"], down["kernel"]) == ("AWAIT_PASS", 0, 0)
        assert (down["check"], down["cause"]) == ("fail", "status 500")
        # /metrics shows the state after the step's kernel apply: it may lag /status a little
        wait_until(
            lambda: value(scrape.metrics(), "ipvswm_vs_sorry_server", vs="www") == 1,
            10,
            "the sorry server in /metrics",
        )
        m = scrape.metrics()
        assert value(m, "ipvswm_pair_phase", **web, phase="AWAIT_PASS") == 1
        assert web1_checks(m, "fail") >= 1
        assert (
            total(
                m,
                "ipvswm_check_failures_total",
                lambda lb: lb["target"].startswith(rs(web1)) and lb["cause"] == "status 500",
            )
            >= 1
        )
        assert kernel_ops(m) > ops
        failed_ops = kernel_ops(m)

        # recovery
        web1.set_mode("healthy")
        web2.set_mode("healthy")
        wait_until(weights_are(10, 10), 10, "web1 back at weight 10 in /metrics", step=0.05)
        wait_until(lambda: not sorry_on(scrape.status(), "www"), 10, "the sorry server out")
        m = scrape.metrics()
        assert value(m, "ipvswm_pair_phase", **web, phase="ENABLED") == 1
        assert web1_checks(m, "pass") > passes
        assert kernel_ops(m) > failed_ops
        assert value(m, "ipvswm_kernel_applies_total") is not None
        assert pair(scrape.status(), "www", "web1")["phase"] == "ENABLED"
        assert value(m, "ipvswm_config_reloads_total", result="ok") == 0

        # a valid reload by SIGHUP: counted, and the new weight shows
        assert daemon.proc is not None
        daemon.write_config(body(web2_weight=20))
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: value(scrape.metrics(), "ipvswm_config_reloads_total", result="ok") == 1,
            10,
            "the reload counted",
        )
        host2 = {"vs": "www", "host": "web2"}
        wait_until(
            lambda: value(scrape.metrics(), "ipvswm_pair_kernel_weight", **host2) == 20,
            10,
            "web2 at weight 20 in the kernel",
        )
        m = scrape.metrics()
        assert value(m, "ipvswm_pair_configured_weight", **host2) == 20
        assert pair(scrape.status(), "www", "web2")["configured"] == 20

        # an invalid one: counted as rejected, nothing else changes
        daemon.write_config(body() + "web3 127.0.0.153 nosuchvs=5\n")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: value(scrape.metrics(), "ipvswm_config_reloads_total", result="rejected") == 1,
            10,
            "the rejected reload counted",
        )
        m = scrape.metrics()
        assert value(m, "ipvswm_config_reloads_total", result="ok") == 1
        assert value(m, "ipvswm_pair_configured_weight", **host2) == 20
        assert value(m, "ipvswm_kernel_operation_failures_total") == 0
        content_type, _ = scrape.get("/metrics")
        assert content_type.startswith("text/plain")
    finally:
        assert daemon.stop() == 0
