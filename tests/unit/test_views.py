"""views.pair_views: one pair as every reader shows it (config, engine state, kernel values)."""

from __future__ import annotations

import dataclasses

import pytest

from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import VirtualService
from ipvswm.engine.layout import Layout
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import CheckStatus
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import Table
from ipvswm.views import PairView
from ipvswm.views import pair_views
from ipvswm.views import service_key

TCP = CheckSpec(CheckKind.TCP)
NONE = CheckSpec(CheckKind.NONE)


def director(method: Method) -> Config:
    """www (port 80, real servers on 8080) with `method`, api (NAT, no check); three hosts."""
    return Config(
        services=(
            VirtualService("www", "192.0.2.30", 80, 8080, TCP, method=method),
            VirtualService("api", "2001:db8::30", 443, 443, NONE),
        ),
        hosts=(
            Host("web1", "127.0.0.2", weights=(("www", 100), ("api", 5))),
            Host("web2", "127.0.0.3", port=9000, weights=(("www", 50),)),
            Host("web3", "127.0.0.4", weights=(("www", 10),)),
        ),
    )


def kernel_as_desired(config: Config, snapshot: StateSnapshot, active: int = 0) -> Table:
    """The table the engine would ask for: every pair at its desired weight."""
    layout = Layout(config)
    states = {pid: snapshot.pairs.get(pid, PairState()) for pid in layout.pairs}
    services = {}
    for tag, key in layout.keys.items():
        entry = layout.entry(tag, states, sorry_on=False)
        dests = {k: dataclasses.replace(d, active=active) for k, d in entry.destinations.items()}
        services[key] = ServiceEntry(entry.service, dests)
    return Table(services)


def enabled(config: Config) -> StateSnapshot:
    return StateSnapshot(
        pairs={
            (p.vs, p.host): PairState(weight=p.weight, phase=Phase.ENABLED) for p in config.pairs()
        }
    )


@pytest.mark.parametrize("method", [Method.DR, Method.TUN])
def test_dr_and_tun_pairs_are_found_on_the_vs_port(method: Method) -> None:
    config = director(method)
    snapshot = enabled(config)
    views = {
        (v.vs, v.host): v
        for v in pair_views(config, snapshot, kernel_as_desired(config, snapshot, 3))
    }
    web2 = views[("www", "web2")]
    assert (web2.port, web2.dest) == (9000, DestKey("127.0.0.3", 80))  # shown port: the config's
    assert (web2.kernel_weight, web2.active) == (50, 3)
    assert views[("www", "web1")].kernel_weight == 100
    assert views[("www", "web1")].pending() is None
    # api is NAT: its destination keeps the real-server port
    assert views[("api", "web1")].dest == DestKey("127.0.0.2", 443)
    assert views[("api", "web1")].kernel_weight == 5


def test_nat_pairs_are_found_on_the_real_server_port() -> None:
    config = director(Method.NAT)
    snapshot = enabled(config)
    kernel = kernel_as_desired(config, snapshot)
    views = {(v.vs, v.host): v for v in pair_views(config, snapshot, kernel)}
    assert views[("www", "web2")].dest == DestKey("127.0.0.3", 9000)
    assert views[("www", "web2")].kernel_weight == 50
    # a destination on the VS port is not the NAT pair's
    key = service_key(config.services[0])
    only_vs_port = Table(
        {
            key: ServiceEntry(
                Service(key),
                {DestKey("127.0.0.3", 80): Destination(DestKey("127.0.0.3", 80), weight=7)},
            )
        }
    )
    web2 = next(v for v in pair_views(config, snapshot, only_vs_port) if v.host == "web2")
    assert (web2.kernel_weight, web2.kernel_or_zero, web2.pending()) == (None, 0, "SYNC")


def test_fields_from_config_state_and_kernel() -> None:
    config = director(Method.DR)
    snapshot = StateSnapshot(
        hosts={"web1": HostState(reasons=frozenset({"deploy"}))},
        pairs={
            ("www", "web1"): PairState(
                reasons=frozenset({"kernel"}),
                override=70,
                weight=0,
                phase=Phase.DISABLED,
                check_status=CheckStatus.FAIL,
                check_cause="connect refused",
            ),
            ("www", "web3"): PairState(
                weight=4, phase=Phase.RAMPING, ramp_duration=20.0, ramp_deadline=1e9
            ),
        },
    )
    views = {(v.vs, v.host): v for v in pair_views(config, snapshot, Table())}
    web1 = views[("www", "web1")]
    assert web1 == PairView(
        vs="www",
        host="web1",
        address="127.0.0.2",
        port=8080,
        dest=DestKey("127.0.0.2", 80),
        configured=100,
        override=70,
        desired=0,
        phase=Phase.DISABLED,
        pair_reasons=frozenset({"kernel"}),
        host_reasons=frozenset({"deploy"}),
        check="fail",
        cause="connect refused",
        ramp_duration=None,
        ramp_deadline=None,
        kernel_weight=None,
        active=0,
        inactive=0,
    )
    assert web1.reasons == {"kernel", "deploy"}
    assert web1.target == 70
    assert web1.pending() is None  # DISABLED at 0, absent from the kernel: settled
    assert views[("www", "web3")].pending() == "RAMPING"
    # no state yet: the engine's defaults; a pair without a check says so
    assert views[("www", "web2")].phase is Phase.AWAIT_PASS
    assert views[("www", "web2")].check == "unknown"
    assert views[("api", "web1")].check == "none"
    assert views[("api", "web1")].host_reasons == {"deploy"}


def test_filters_keep_file_order() -> None:
    config = director(Method.NAT)
    snapshot, kernel = StateSnapshot(), Table()
    everything = pair_views(config, snapshot, kernel)
    assert [(v.vs, v.host) for v in everything] == [
        ("www", "web1"),
        ("api", "web1"),
        ("www", "web2"),
        ("www", "web3"),
    ]
    assert [v.host for v in pair_views(config, snapshot, kernel, vss=["www"])] == [
        "web1",
        "web2",
        "web3",
    ]
    only = pair_views(config, snapshot, kernel, hosts=["web3", "web1"], vss=["www"])
    assert [(v.vs, v.host) for v in only] == [("www", "web1"), ("www", "web3")]
    assert pair_views(config, snapshot, kernel, hosts=["web2"], vss=["api"]) == []
    precomputed = tuple(config.pairs())[1:2]
    assert [(v.vs, v.host) for v in pair_views(config, snapshot, kernel, pairs=precomputed)] == [
        ("api", "web1")
    ]
