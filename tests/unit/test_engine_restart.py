"""Engine tests of adoption on restart, config reload diffs and persistence (SPEC §2.4, §6)."""

from __future__ import annotations

from dataclasses import replace

from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.engine import Engine
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import CheckStatus
from ipvswm.events import ConfigLoaded
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import Tick
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

WEB = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
WEB1, WEB2 = DestKey("198.51.100.1", 80), DestKey("198.51.100.2", 80)


def _restart(d: Driver, later: float) -> Driver:
    """A new engine from the old one's state and the table the kernel holds."""
    kernel = d.engine.desired_table()
    return Driver.start(d.engine.config(), later, d.engine.snapshot(), kernel)


def test_restart_with_healthy_servers_changes_nothing_in_the_kernel() -> None:
    d = healthy(basic())
    kernel = d.engine.desired_table()
    r = _restart(d, T0 + 500)
    assert r.engine.desired_table() == kernel
    assert r.steps[0].decisions == ()
    r.at(T0 + 501)
    for host_tag in ("web1", "web2"):
        step = r.check("web", host_tag, True)
        assert step.decisions == () and step.touched == frozenset()
    assert r.engine.desired_table() == kernel


def test_restart_keeps_failing_disabled_ramping_and_sorry_states() -> None:
    cfg = config(
        [vs("web", sorry_server="sorry"), vs("api", address="192.0.2.2")],
        [
            host("web1", "198.51.100.1", ("web", 100)),
            host("api1", "198.51.100.3", ("api", 100)),
            host("api2", "198.51.100.4", ("api", 100)),
            host("sorry", "198.51.100.99"),
        ],
    )
    d = healthy(cfg)
    d.at(T0 + 5).check("web", "web1", False)  # web in sorry state
    d.feed(SetHostOff("api1"))
    d.feed(SetHostOn("api2", ramp=30))  # nothing to do: api2 has no reason
    d.feed(SetHostOff("api2"))
    d.at(T0 + 6).feed(SetHostOn("api2", ramp=30))
    d.at(T0 + 7).check("api", "api2", True)
    assert d.phase("api", "api2") is Phase.RAMPING
    kernel = d.engine.desired_table()
    r = _restart(d, T0 + 10)
    assert r.engine.desired_table() == kernel
    assert r.steps[0].alerts == ()
    # The first checks after the restart: still no change but the ramp's own progress.
    r.at(T0 + 10.5)
    assert r.check("web", "web1", False).touched == frozenset()
    assert r.engine.desired_table() == kernel
    r.check("api", "api2", True)
    assert r.phase("api", "api2") is Phase.RAMPING
    assert r.weight("api", "api2") == 4  # ceil(100 / (37 - 10.5 + 1)): the same ramp goes on


def test_first_start_keeps_kernel_weights_until_the_first_check() -> None:
    kernel = Table(
        {
            WEB: ServiceEntry(
                Service(WEB, scheduler="wrr"), {WEB1: Destination(WEB1, Forward.MASQ, 37)}
            )
        }
    )
    d = Driver.start(basic(), T0, None, kernel)
    assert d.kernel_weights("web") == {WEB1: 37, WEB2: 0}
    assert d.steps[0].decisions[0].cause == "adopted from kernel"
    assert d.phase("web", "web1") is Phase.ENABLED
    assert d.engine.snapshot().managed == {WEB}  # `dump vs`: managed = 1
    d.at(T0 + 1).check("web", "web2", True)
    assert d.kernel_weights("web") == {WEB1: 37, WEB2: 50}
    d.check("web", "web1", True)
    assert d.kernel_weights("web") == {WEB1: 100, WEB2: 50}


def test_adopted_pair_failing_its_first_check_goes_to_zero() -> None:
    kernel = Table({WEB: ServiceEntry(Service(WEB), {WEB1: Destination(WEB1, weight=100)})})
    d = Driver.start(basic(), T0, None, kernel)
    d.at(T0 + 1).check("web", "web1", False)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, Phase.AWAIT_PASS)


def test_an_unknown_status_does_not_end_adoption() -> None:
    kernel = Table({WEB: ServiceEntry(Service(WEB), {WEB1: Destination(WEB1, weight=80)})})
    d = Driver.start(basic(), T0, None, kernel)
    d.at(T0 + 1).check("web", "web1", True, status=CheckStatus.UNKNOWN)
    assert d.weight("web", "web1") == 80


def test_reasons_apply_at_once_while_adopted() -> None:
    snap = StateSnapshot(hosts={"web1": HostState(frozenset({"maint"}))})
    kernel = Table({WEB: ServiceEntry(Service(WEB), {WEB1: Destination(WEB1, weight=100)})})
    d = Driver.start(basic(), T0, snap, kernel)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, Phase.DISABLED)
    d.at(T0 + 1).feed(SetHostOn("web1", frozenset({"maint"})))
    assert d.weight("web", "web1") == 0  # not the stale kernel weight: it was disabled since
    d.at(T0 + 2).check("web", "web1", True)
    assert d.weight("web", "web1") == 100


def test_long_outage_before_restart_still_ramps() -> None:
    d = healthy(basic())
    d.at(T0 + 10).check("web", "web1", False)
    r = _restart(d, T0 + 300)
    r.at(T0 + 301).check("web", "web1", True)
    assert (r.phase("web", "web1"), r.weight("web", "web1")) == (Phase.RAMPING, 10)


def test_snapshot_entries_gone_from_config_are_deleted() -> None:
    snap = StateSnapshot(
        hosts={"old": HostState(frozenset({"x"}))},
        pairs={("gone", "old"): PairState(weight=3)},
        managed=frozenset({ServiceKey(Protocol.TCP, "192.0.2.77", 80)}),
    )
    d = Driver.start(basic(), T0, snap)
    changes = d.steps[0].changes
    assert changes.hosts == {"old": None}
    assert changes.pairs[("gone", "old")] is None
    # The removed VS is the kernel sync's to delete (tests/unit/test_kernel_sync_managed.py).
    assert d.engine.service_keys() == {WEB}


def test_restart_adopts_what_the_kernel_holds_not_what_was_last_decided() -> None:
    """A weight decided but never applied (the daemon stopped first): after a restart the kernel
    keeps what it holds until the pair's first check, then follows it."""
    d = healthy(basic())
    kernel = d.engine.desired_table()  # what was applied
    d.at(T0 + 5).check("web", "web1", False)  # decided 0, never applied
    r = Driver.start(d.engine.config(), T0 + 10, d.engine.snapshot(), kernel)
    assert r.engine.desired_table() == kernel  # the restart changes nothing in the kernel
    r.at(T0 + 11).check("web", "web1", False)
    assert r.kernel_weights("web") == {WEB1: 0, WEB2: 50}


def test_reload_keeps_state_of_unchanged_pairs() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetOverride("web1", 30))
    d.feed(SetHostOff("web2", frozenset({"deploy"})))
    before = d.engine.snapshot()
    step = d.at(T0 + 6).feed(ConfigLoaded(basic()))
    assert not step.decisions and not step.changes and not step.touched
    assert d.engine.snapshot() == before


def test_reload_adds_and_removes_pairs_hosts_and_vss() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetHostOff("web2"))
    new = config(
        [vs("web"), vs("plain", address="192.0.2.3", check=NO_CHECK)],
        [
            host("web1", "198.51.100.1", ("web", 100), ("plain", 9)),
            host("web3", "198.51.100.3", ("web", 20)),
        ],
    )
    step = d.at(T0 + 6).feed(ConfigLoaded(new))
    assert step.changes.pairs[("web", "web2")] is None
    assert step.changes.hosts == {"web2": None}
    assert (d.weight("web", "web3"), d.phase("web", "web3")) == (0, Phase.AWAIT_PASS)
    assert (d.weight("plain", "web1"), d.phase("plain", "web1")) == (9, Phase.ENABLED)
    assert d.weight("web", "web1") == 100
    plain = d.engine.service_key("plain")
    assert step.touched == {WEB, plain}
    assert d.engine.service_keys() == {WEB, plain}
    assert ("web", "web2") not in d.engine.snapshot().pairs
    d.at(T0 + 7).check("web", "web3", True)
    assert d.weight("web", "web3") == 20


def test_reload_weight_change_of_disabled_pair_stays_zero() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetHostOff("web1"))
    heavier = config(
        [vs("web")],
        [host("web1", "198.51.100.1", ("web", 300)), host("web2", "198.51.100.2", ("web", 60))],
    )
    step = d.at(T0 + 6).feed(ConfigLoaded(heavier))
    assert d.weight("web", "web1") == 0
    assert d.weight("web", "web2") == 60
    assert [(x.host, x.cause) for x in step.decisions] == [("web2", "config reload")]
    d.at(T0 + 7).feed(SetHostOn("web1"))
    d.at(T0 + 8).check("web", "web1", True)
    assert d.weight("web", "web1") == 300


def test_reload_with_changed_check_keeps_weight_until_the_new_checker_reports() -> None:
    d = healthy(basic())
    old_target = d.target("web", "web1")
    other = CheckSpec(CheckKind.TCP)
    cfg = basic()
    cfg = replace(cfg, services=(replace(cfg.services[0], check=other),))
    step = d.at(T0 + 6).feed(ConfigLoaded(cfg))
    assert not step.decisions
    assert d.kernel_weights("web") == {WEB1: 100, WEB2: 50}
    assert d.engine.pairs_for_target(old_target) == ()
    d.at(T0 + 7).check("web", "web1", False)
    assert d.kernel_weights("web") == {WEB1: 0, WEB2: 50}


def test_reload_vs_address_change_is_a_removed_plus_a_new_vs() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetOverride("web1", 5))
    cfg = basic()
    cfg = replace(cfg, services=(replace(cfg.services[0], address="192.0.2.50"),))
    step = d.at(T0 + 6).feed(ConfigLoaded(cfg))
    moved = ServiceKey(Protocol.TCP, "192.0.2.50", 80)
    assert step.touched == {WEB, moved}
    # The old VS's state is dropped; the new one is cold: its sorry server waits for its checks.
    assert step.changes.vss["web"] is None
    assert not d.engine.snapshot().vss["web"].sorry_on
    # a new pair whose admin state comes back with its tags (issue 10 item 2)
    assert d.state("web", "web1").override == 5
    assert d.engine.service_keys() == {moved}  # WEB is the sync's to delete (still managed)
    assert set(d.engine.desired_table().services) == {moved}


def test_new_pair_on_a_running_checker_waits_for_its_next_pass() -> None:
    d = healthy(basic())
    cfg = config(
        [vs("web"), vs("api", address="192.0.2.2")],
        [host("web1", "198.51.100.1", ("web", 100), ("api", 10)), host("web2", "198.51.100.2")],
    )
    d.at(T0 + 6).feed(ConfigLoaded(cfg))
    assert d.target("api", "web1") == d.target("web", "web1")
    assert (d.weight("api", "web1"), d.phase("api", "web1")) == (0, Phase.AWAIT_PASS)
    d.at(T0 + 7).check("web", "web1", True, started=T0 + 5.9)  # began before the reload
    assert d.weight("api", "web1") == 0
    d.at(T0 + 12).check("web", "web1", True)
    assert d.weight("api", "web1") == 10


def test_reload_of_service_settings_touches_only_that_service() -> None:
    two = config(
        [vs("web"), vs("api", address="192.0.2.2")],
        [host("web1", "198.51.100.1", ("web", 100), ("api", 10))],
    )
    d = healthy(two)
    changed = replace(two, services=(two.services[0], replace(two.services[1], scheduler="sh")))
    step = d.at(T0 + 6).feed(ConfigLoaded(changed))
    api = d.engine.service_key("api")
    assert step.touched == {api}
    assert d.engine.desired_table().services[api].service.scheduler == "sh"
    assert not step.decisions and not step.changes


def test_startup_step_is_delivered_once() -> None:
    kernel = Table({WEB: ServiceEntry(Service(WEB), {WEB1: Destination(WEB1, weight=100)})})
    engine = Driver(Engine(basic(), T0, None, kernel)).engine
    step = engine.startup_step()
    assert set(step.changes.pairs) == {("web", "web1")}  # web2 is as a new pair starts
    assert step.touched == {WEB}
    assert [(x.host, x.new_weight, x.cause) for x in step.decisions] == [
        ("web1", 100, "adopted from kernel")
    ]
    assert not engine.startup_step().changes
    assert not engine.handle(Tick(), T0 + 1).changes
