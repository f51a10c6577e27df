"""Engine tests of sorry-server alerts: every switch is emitted, and which are mailed (SPEC §4)."""

from __future__ import annotations

from ipvswm.config.model import Config
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import VsState
from ipvswm.events import CheckStatus
from ipvswm.events import ConfigLoaded
from ipvswm.events import SetHostOff
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

WEB = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
WEB1, WEB2 = DestKey("198.51.100.1", 80), DestKey("198.51.100.2", 80)


def _two() -> Config:
    """VS web (sorry server `sorry`) with web1 (100) and web2 (50)."""
    return config(
        [vs("web", sorry_server="sorry")],
        [
            host("web1", "198.51.100.1", ("web", 100)),
            host("web2", "198.51.100.2", ("web", 50)),
            host("sorry", "198.51.100.99"),
        ],
    )


def _seen(alerts: tuple[SorryChange, ...]) -> list[tuple[str, bool, bool]]:
    return [(a.vs, a.on, a.mail) for a in alerts]


def test_all_down_at_first_start_is_logged_then_mailed_once_checked() -> None:
    d = Driver.start(_two())
    assert _seen(d.steps[0].alerts) == [("web", True, False)]  # logged, not mailed
    assert d.at(T0 + 1).check("web", "web1", False).alerts == ()  # web2 has not reported yet
    step = d.at(T0 + 2).check("web", "web2", False)
    assert _seen(step.alerts) == [("web", True, True)]
    assert step.alerts[0].at == T0  # when the sorry server went in
    assert step.alerts[0].subject() == "VS 'web' FAIL"
    assert d.at(T0 + 3).check("web", "web1", False).alerts == ()  # once
    assert d.at(T0 + 4).check("web", "web2", False).alerts == ()
    step = d.at(T0 + 5).check("web", "web1", True)
    assert [(a.on, a.after, a.mail) for a in step.alerts] == [(False, 5.0, True)]


def test_a_first_start_that_comes_up_is_never_mailed() -> None:
    d = Driver.start(_two())
    d.at(T0 + 1).check("web", "web1", False)  # one host down, the other not heard of yet
    step = d.at(T0 + 2).check("web", "web2", True)
    assert _seen(step.alerts) == [("web", False, False)]  # logged, no "OK" mail for a quiet ON
    assert not any(a.mail for s in d.steps for a in s.alerts)
    step = d.at(T0 + 3).check("web", "web2", False)
    assert _seen(step.alerts) == [("web", True, True)]  # a real outage later is mailed


def test_an_unknown_status_does_not_count_as_checked() -> None:
    d = Driver.start(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    assert d.at(T0 + 1).check("web", "web1", False, status=CheckStatus.UNKNOWN).alerts == ()
    step = d.at(T0 + 2).check("web", "web1", False)
    assert _seen(step.alerts) == [("web", True, True)]


def test_an_adopted_vs_whose_first_check_fails_is_mailed_at_the_switch() -> None:
    kernel = Table({WEB: ServiceEntry(Service(WEB, "wrr"), {WEB1: Destination(WEB1, weight=100)})})
    cfg = config([vs("web")], [host("web1", "198.51.100.1", ("web", 100))])
    d = Driver.start(cfg, T0, None, kernel)
    assert d.steps[0].alerts == ()
    step = d.at(T0 + 1).check("web", "web1", False)
    assert _seen(step.alerts) == [("web", True, True)]  # the switch and the first status at once


def test_a_restored_sorry_state_counts_as_mailed() -> None:
    snap = StateSnapshot(vss={"web": VsState(True, T0 - 100)})
    d = Driver.start(_two(), T0, snap, Table())
    assert d.steps[0].alerts == ()
    assert d.at(T0 + 1).check("web", "web1", False).alerts == ()
    assert d.at(T0 + 2).check("web", "web2", False).alerts == ()  # announced by the last run
    step = d.at(T0 + 3).check("web", "web1", True)
    assert [(a.on, a.after, a.mail) for a in step.alerts] == [(False, 103.0, True)]


def test_admin_switches_while_unchecked_are_quiet_until_checked() -> None:
    kernel = Table(
        {
            WEB: ServiceEntry(
                Service(WEB, "wrr"),
                {WEB1: Destination(WEB1, weight=100), WEB2: Destination(WEB2, weight=50)},
            )
        }
    )
    d = Driver.start(_two(), T0, None, kernel)
    d.feed(SetHostOff("web1"))
    step = d.feed(SetHostOff("web2"))
    assert _seen(step.alerts) == [("web", True, False)]  # nothing has reported yet
    d.at(T0 + 1).check("web", "web1", True)
    step = d.at(T0 + 2).check("web", "web2", True)
    assert _seen(step.alerts) == [("web", True, True)]  # checked and still off: announced


def test_a_vs_with_nothing_to_check_is_mailed_at_once() -> None:
    cfg = config(
        [vs("empty", sorry_server="sorry"), vs("drained", address="192.0.2.2", check=NO_CHECK)],
        [host("h", "198.51.100.1", ("drained", 0)), host("sorry", "198.51.100.99")],
    )
    d = Driver.start(cfg)
    assert _seen(d.steps[0].alerts) == [("drained", True, True), ("empty", True, True)]


def test_a_vs_added_by_a_reload_is_quiet_until_its_checkers_report() -> None:
    d = healthy(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    cfg = config(
        [vs("web"), vs("api", address="192.0.2.2")],
        [host("web1", "198.51.100.1", ("web", 10), ("api", 5))],
    )
    step = d.at(T0 + 5).feed(ConfigLoaded(cfg))
    assert _seen(step.alerts) == [("api", True, False)]  # waits for a pass after the reload
    step = d.at(T0 + 6).check("api", "web1", True)
    assert _seen(step.alerts) == [("api", False, False)]


def test_a_vs_added_by_a_reload_whose_host_fails_is_announced() -> None:
    d = healthy(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    cfg = config(
        [vs("web"), vs("api", address="192.0.2.2")],
        [host("web1", "198.51.100.1", ("web", 10), ("api", 5))],
    )
    d.at(T0 + 5).feed(ConfigLoaded(cfg))
    step = d.at(T0 + 6).check("api", "web1", False)
    assert _seen(step.alerts) == [("api", True, True), ("web", True, True)]
    assert step.alerts[0].at == T0 + 5
