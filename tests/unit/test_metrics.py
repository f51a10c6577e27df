"""Metrics, /status and the metrics HTTP server, on a state built from the shared models."""

from __future__ import annotations

import json
import platform
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ipvswm import __version__
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import Proto
from ipvswm.config.model import VirtualService
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import VsState
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from ipvswm.metrics import Metrics
from ipvswm.metrics import MetricsServer
from ipvswm.metrics import parse_listen
from ipvswm.metrics import status_document

HTTP = CheckSpec(kind=CheckKind.HTTP, url_host="www.example.org", path="/health")
WWW_KEY = ServiceKey(Protocol.TCP, "192.0.2.10", 80)
API_KEY = ServiceKey(Protocol.UDP, "2001:db8::10", 53)


def build_state() -> tuple[Config, StateSnapshot, Table]:
    """Two VSs: www (two pairs, one failing) and api (one drained pair; sorry server on)."""
    config = Config(
        path="/etc/ipvs-weightman.conf",
        services=(
            VirtualService(tag="www", address="192.0.2.10", port=80, rs_port=80, check=HTTP),
            VirtualService(
                tag="api",
                address="2001:db8::10",
                port=53,
                rs_port=5353,
                check=CheckSpec(kind=CheckKind.NONE),
                proto=Proto.UDP,
                email=True,
                sorry_server="sorry",
            ),
        ),
        hosts=(
            Host(tag="web1", address="127.0.0.2", weights=(("www", 100), ("api", 0))),
            Host(tag="web2", address="127.0.0.3", port=8080, weights=(("www", 50),)),
            Host(tag="sorry", address="127.0.0.9"),
        ),
    )
    snapshot = StateSnapshot(
        hosts={"web2": HostState(reasons=frozenset({"maintenance"}))},
        pairs={
            ("www", "web1"): PairState(
                weight=34,
                phase=Phase.RAMPING,
                ramp_deadline=1000.0,
                check_status=CheckStatus.PASS,
                override=None,
            ),
            ("www", "web2"): PairState(
                weight=0,
                phase=Phase.DISABLED,
                reasons=frozenset({"default", "deploy"}),
                check_status=CheckStatus.FAIL,
                check_cause="connect refused",
            ),
            ("api", "web1"): PairState(weight=0, phase=Phase.ENABLED, override=0),
        },
        vss={"api": VsState(sorry_on=True, sorry_since=500.0), "www": VsState()},
    )
    kernel = Table(
        services={
            WWW_KEY: ServiceEntry(
                Service(WWW_KEY, scheduler="wrr"),
                {
                    DestKey("127.0.0.2", 80): Destination(DestKey("127.0.0.2", 80), weight=17),
                    DestKey("127.0.0.3", 8080): Destination(DestKey("127.0.0.3", 8080), weight=0),
                },
            )
        }
    )
    return config, snapshot, kernel


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and label set."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return parsed[(name, frozenset(labels.items()))]


def check_result(passed: bool, duration: float, cause: str = "") -> CheckResult:
    target = CheckTarget("127.0.0.2", 80, HTTP)
    return CheckResult(
        target=target,
        passed=passed,
        status=CheckStatus.PASS if passed else CheckStatus.FAIL,
        started=100.0,
        ended=100.0 + duration,
        cause=cause,
    )


def fed_metrics() -> Metrics:
    metrics = Metrics()
    metrics.update_state(*build_state())
    metrics.check_result(check_result(True, 0.003))
    metrics.check_result(check_result(True, 0.2))
    metrics.check_result(check_result(False, 1.5, "connect timeout"))
    metrics.kernel_apply(3, 1)
    metrics.kernel_apply(2, 0)
    metrics.backend_error(FailureKind.TIMEOUT)
    metrics.reload(True)
    metrics.reload(False)
    metrics.reload(False)
    return metrics


def assert_exposition(text: str) -> None:
    parsed = samples(text)
    target = "127.0.0.2:80 http://www.example.org/health"
    build = value(
        parsed, "ipvswm_build_info", version=__version__, python=platform.python_version()
    )
    assert build == 1
    assert value(parsed, "ipvswm_pair_desired_weight", vs="www", host="web1") == 34
    assert value(parsed, "ipvswm_pair_kernel_weight", vs="www", host="web1") == 17
    assert value(parsed, "ipvswm_pair_configured_weight", vs="www", host="web2") == 50
    assert value(parsed, "ipvswm_pair_desired_weight", vs="www", host="web2") == 0
    assert ("ipvswm_pair_kernel_weight", frozenset({("vs", "api"), ("host", "web1")})) not in parsed
    assert value(parsed, "ipvswm_pair_phase", vs="www", host="web1", phase="RAMPING") == 1
    assert value(parsed, "ipvswm_pair_phase", vs="www", host="web1", phase="ENABLED") == 0
    assert value(parsed, "ipvswm_pair_phase", vs="www", host="web2", phase="DISABLED") == 1
    # Two pair-level reasons plus one host-level reason.
    assert value(parsed, "ipvswm_pair_reasons", vs="www", host="web2") == 3
    assert value(parsed, "ipvswm_pair_reasons", vs="www", host="web1") == 0
    assert value(parsed, "ipvswm_vs_sorry_server", vs="api") == 1
    assert value(parsed, "ipvswm_vs_sorry_server", vs="www") == 0
    assert value(parsed, "ipvswm_vs_in_kernel", vs="www") == 1
    assert value(parsed, "ipvswm_vs_in_kernel", vs="api") == 0
    assert value(parsed, "ipvswm_check_results_total", target=target, result="pass") == 2
    assert value(parsed, "ipvswm_check_results_total", target=target, result="fail") == 1
    assert value(parsed, "ipvswm_check_failures_total", target=target, cause="connect timeout") == 1
    assert value(parsed, "ipvswm_check_duration_seconds_count", target=target) == 3
    assert value(parsed, "ipvswm_check_duration_seconds_sum", target=target) == pytest.approx(1.703)
    assert value(parsed, "ipvswm_check_duration_seconds_bucket", target=target, le="0.005") == 1
    assert value(parsed, "ipvswm_check_duration_seconds_bucket", target=target, le="0.25") == 2
    assert value(parsed, "ipvswm_check_duration_seconds_bucket", target=target, le="+Inf") == 3
    assert value(parsed, "ipvswm_kernel_applies_total") == 2
    assert value(parsed, "ipvswm_kernel_operations_total") == 5
    assert value(parsed, "ipvswm_kernel_operation_failures_total") == 1
    assert value(parsed, "ipvswm_kernel_backend_errors_total", kind="timeout") == 1
    assert value(parsed, "ipvswm_kernel_backend_errors_total", kind="missing") == 0
    assert value(parsed, "ipvswm_config_reloads_total", result="ok") == 1
    assert value(parsed, "ipvswm_config_reloads_total", result="rejected") == 2


def test_render_values() -> None:
    assert_exposition(fed_metrics().render().decode())


def test_registries_are_separate() -> None:
    first, second = Metrics(), Metrics()
    first.reload(True)
    assert value(samples(second.render().decode()), "ipvswm_config_reloads_total", result="ok") == 0


def test_state_follows_the_config() -> None:
    metrics = Metrics()
    assert not any(name.startswith("ipvswm_pair") for name, _ in samples(metrics.render().decode()))
    config, snapshot, kernel = build_state()
    metrics.update_state(config, snapshot, kernel)
    smaller = Config(services=config.services[:1], hosts=config.hosts[1:2])
    metrics.update_state(smaller, snapshot, kernel)
    parsed = samples(metrics.render().decode())
    pairs = {
        dict(labels)["host"] for name, labels in parsed if name == "ipvswm_pair_desired_weight"
    }
    assert pairs == {"web2"}
    assert ("ipvswm_vs_sorry_server", frozenset({("vs", "api")})) not in parsed


def test_retain_checks_drops_gone_checkers() -> None:
    metrics = fed_metrics()
    other = CheckTarget("127.0.0.3", 8080, HTTP)
    metrics.check_result(
        CheckResult(other, passed=False, status=CheckStatus.FAIL, started=1, ended=2, cause="x")
    )
    metrics.retain_checks([other])
    parsed = samples(metrics.render().decode())
    targets = {
        dict(labels).get("target") for name, labels in parsed if name.startswith("ipvswm_check")
    }
    assert targets == {str(other)}


def test_status_document() -> None:
    document = status_document(*build_state())
    assert document["version"] == __version__
    assert document["config"] == "/etc/ipvs-weightman.conf"
    services = document["services"]
    assert isinstance(services, list)
    www, api = services
    assert www["vs"] == "www" and www["service"] == "tcp:192.0.2.10:80" and www["in_kernel"]
    assert www["sorry"] == {"on": False, "since": None}
    web1, web2 = www["pairs"]
    assert web1 == {
        "host": "web1",
        "address": "127.0.0.2",
        "port": 80,
        "configured": 100,
        "override": None,
        "desired": 34,
        "kernel": 17,
        "phase": "RAMPING",
        "reasons": [],
        "pair_reasons": [],
        "host_reasons": [],
        "check": "pass",
        "cause": "",
        "ramp_deadline": 1000.0,
        "ramp_duration": None,
        "active": 0,
        "inactive": 0,
        "check_latency": None,
    }
    assert web2["port"] == 8080 and web2["phase"] == "DISABLED"
    assert web2["reasons"] == ["default", "deploy", "maintenance"]
    assert web2["host_reasons"] == ["maintenance"] and web2["cause"] == "connect refused"
    assert api["service"] == "udp:[2001:db8::10]:53" and not api["in_kernel"] and api["email"]
    assert api["sorry"] == {"on": True, "since": 500.0}
    assert www["sorry_server"] is None and api["sorry_server"] == "sorry"
    (api_web1,) = api["pairs"]
    assert api_web1["port"] == 5353 and api_web1["kernel"] is None and api_web1["check"] == "none"
    assert api_web1["override"] == 0
    json.dumps(document)  # JSON-ready as it is


def test_dr_pair_kernel_weight_is_read_on_the_vs_port() -> None:
    """method=dr: the kernel holds a real server on 8080 as a destination on the VS's port 80."""
    www = VirtualService("www", "192.0.2.10", 80, 8080, HTTP, method=Method.DR)
    config = Config(services=(www,), hosts=(Host("web1", "127.0.0.2", weights=(("www", 9),)),))
    snapshot = StateSnapshot(pairs={("www", "web1"): PairState(weight=9, phase=Phase.ENABLED)})
    dest = DestKey("127.0.0.2", 80)
    kernel = Table({WWW_KEY: ServiceEntry(Service(WWW_KEY), {dest: Destination(dest, weight=9)})})
    metrics = Metrics()
    metrics.update_state(config, snapshot, kernel)
    parsed = samples(metrics.render().decode())
    assert value(parsed, "ipvswm_pair_kernel_weight", vs="www", host="web1") == 9
    services = status_document(config, snapshot, kernel)["services"]
    assert isinstance(services, list)
    (pair,) = services[0]["pairs"]
    assert (pair["port"], pair["kernel"]) == (8080, 9)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9119", ("127.0.0.1", 9119)),
        ("[::1]:9119", ("::1", 9119)),
        (":9119", ("", 9119)),
        ("127.0.0.60:0", ("127.0.0.60", 0)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["127.0.0.1", "::1:9119", "host:port", "127.0.0.1:70000", ""])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match="bad listen address"):
        parse_listen(listen)


@pytest.fixture
async def server() -> AsyncIterator[MetricsServer]:
    metrics = fed_metrics()
    state = build_state()
    srv = MetricsServer(metrics, lambda: status_document(*state))
    await srv.start("127.0.0.60:0")
    yield srv
    await srv.close()


@pytest.mark.integration
async def test_server_scrape(server: MetricsServer) -> None:
    assert server.port > 0
    base = f"http://127.0.0.60:{server.port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            assert_exposition(await response.text())
        async with session.get(f"{base}/status") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            document = await response.json()
        assert document == json.loads(json.dumps(status_document(*build_state())))
        async with session.get(f"{base}/") as response:
            assert "/metrics" in await response.text()
        async with session.get(f"{base}/nothing") as response:
            assert response.status == 404


@pytest.mark.integration
async def test_server_status_failure_is_500(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    srv = MetricsServer(Metrics(), broken)
    await srv.start("127.0.0.61:0")
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.61:{srv.port}/status") as response,
        ):
            assert response.status == 500
    finally:
        await srv.close()
    assert "/status failed" in caplog.text


@pytest.mark.integration
async def test_server_port_in_use() -> None:
    first = MetricsServer(Metrics(), dict)
    await first.start("127.0.0.62:0")
    try:
        second = MetricsServer(Metrics(), dict)
        with pytest.raises(OSError):
            await second.start(f"127.0.0.62:{first.port}")
        await second.close()
    finally:
        await first.close()
