"""Engine tests of sorry-server alerts: every switch is emitted, and which are mailed (SPEC §4)."""

from __future__ import annotations

from dataclasses import replace

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
from tests.unit.test_engine_fixtures import HTTP
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

WEB = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
WEB1, WEB2 = DestKey("198.51.100.1", 80), DestKey("198.51.100.2", 80)
SORRY = DestKey("198.51.100.99", 80)


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


def _sorry_in(d: Driver) -> bool:
    return SORRY in d.kernel_weights("web")


def test_a_cold_start_whose_checks_pass_never_adds_the_sorry_server() -> None:
    d = Driver.start(_two())
    assert d.steps[0].alerts == () and not _sorry_in(d)  # decided after the first round
    assert d.at(T0 + 1).check("web", "web1", True).alerts == ()
    assert not _sorry_in(d)
    assert d.at(T0 + 2).check("web", "web2", True).alerts == ()
    assert not _sorry_in(d) and d.engine.next_wakeup() is None
    assert not any(s.alerts for s in d.steps)
    assert all(s.changes.vss.get("web") is None for s in d.steps)  # nothing to persist


def test_a_cold_start_with_some_checks_failing_never_adds_the_sorry_server() -> None:
    d = Driver.start(_two())
    assert d.at(T0 + 1).check("web", "web1", False).alerts == ()  # web2 not heard of yet
    assert d.at(T0 + 2).check("web", "web2", True).alerts == ()
    assert not _sorry_in(d)
    step = d.at(T0 + 3).check("web", "web2", False)
    assert _seen(step.alerts) == [("web", True, True)]  # a real outage later is mailed


def test_a_cold_start_all_down_switches_on_once_the_round_reported_and_mails_it() -> None:
    d = Driver.start(_two())
    assert d.steps[0].alerts == () and not _sorry_in(d)
    assert d.at(T0 + 1).check("web", "web1", False).alerts == ()  # web2 has not reported yet
    assert not _sorry_in(d)
    step = d.at(T0 + 2).check("web", "web2", False)
    assert _seen(step.alerts) == [("web", True, True)]
    assert step.alerts[0].at == T0 + 2  # when the sorry server went in
    assert step.alerts[0].subject() == "VS 'web' FAIL"
    assert _sorry_in(d) and step.touched == {WEB}
    assert d.at(T0 + 3).check("web", "web1", False).alerts == ()  # once
    assert d.at(T0 + 4).check("web", "web2", False).alerts == ()
    step = d.at(T0 + 5).check("web", "web1", True)
    assert [(a.on, a.after, a.mail) for a in step.alerts] == [(False, 3.0, True)]


def test_a_check_that_never_reports_decides_at_the_deadline() -> None:
    d = Driver.start(_two())  # HTTP checks: interval 5 s + timeouts 1 s and 3 s
    assert d.engine.next_wakeup() == T0 + 9
    d.at(T0 + 1).check("web", "web1", False)  # web2's checker stays silent
    assert d.engine.next_wakeup() == T0 + 9
    assert d.tick(T0 + 8.9).alerts == () and not _sorry_in(d)
    step = d.tick(T0 + 9)
    assert _seen(step.alerts) == [("web", True, False)]  # in, but not checked: no mail yet
    assert _sorry_in(d) and step.touched == {WEB} and d.engine.next_wakeup() is None
    step = d.at(T0 + 10).check("web", "web2", False)
    assert _seen(step.alerts) == [("web", True, True)]  # checked and still down: announced
    assert step.alerts[0].at == T0 + 9


def test_the_deadline_is_the_longest_check_interval_plus_its_timeouts() -> None:
    slow = replace(HTTP, interval=20.0, connect_timeout=2.0, response_timeout=5.0)
    cfg = config(
        [vs("web", sorry_server="sorry"), vs("api", address="192.0.2.2", check=slow)],
        [
            host("web1", "198.51.100.1", ("web", 100), ("api", 10)),
            host("sorry", "198.51.100.99"),
        ],
    )
    d = Driver.start(cfg)
    assert d.engine.next_wakeup() == T0 + 9  # web's
    assert _seen(d.tick(T0 + 9).alerts) == [("web", True, False)]
    assert d.engine.next_wakeup() == T0 + 27  # api's
    assert _seen(d.tick(T0 + 27).alerts) == [("api", True, False)]


def test_an_admin_switch_while_cold_waits_for_the_first_round() -> None:
    d = Driver.start(_two())
    d.feed(SetHostOff("web1"))
    assert d.feed(SetHostOff("web2")).alerts == ()
    d.at(T0 + 1).check("web", "web1", True)
    step = d.at(T0 + 2).check("web", "web2", True)
    assert _seen(step.alerts) == [("web", True, True)]  # checked and off: announced at once


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


def _with_api() -> Config:
    return config(
        [vs("web"), vs("api", address="192.0.2.2")],
        [host("web1", "198.51.100.1", ("web", 10), ("api", 5))],
    )


def test_a_vs_added_by_a_reload_waits_for_its_checkers_and_comes_up_quietly() -> None:
    d = healthy(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    step = d.at(T0 + 5).feed(ConfigLoaded(_with_api()))
    assert step.alerts == ()  # not in the kernel: decided after its first round
    assert d.engine.next_wakeup() == T0 + 14
    step = d.at(T0 + 6).check("api", "web1", True)
    assert step.alerts == () and d.engine.next_wakeup() is None
    assert not d.engine.snapshot().vss["api"].sorry_on


def test_a_vs_added_by_a_reload_whose_host_fails_is_announced() -> None:
    d = healthy(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    d.at(T0 + 5).feed(ConfigLoaded(_with_api()))
    step = d.at(T0 + 6).check("api", "web1", False)
    assert _seen(step.alerts) == [("api", True, True), ("web", True, True)]
    assert step.alerts[0].at == T0 + 6


def test_a_vs_added_by_a_reload_whose_checker_is_silent_decides_at_its_deadline() -> None:
    d = healthy(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    d.at(T0 + 5).feed(ConfigLoaded(_with_api()))
    assert d.tick(T0 + 13.9).alerts == ()
    assert _seen(d.tick(T0 + 14).alerts) == [("api", True, False)]


def test_a_vs_a_reload_removes_while_cold_stops_waiting() -> None:
    d = Driver.start(_with_api())
    d.at(T0 + 1).feed(
        ConfigLoaded(config([vs("web")], [host("web1", "198.51.100.1", ("web", 10))]))
    )
    assert d.engine.next_wakeup() == T0 + 9  # web's deadline, nothing for api
    assert _seen(d.tick(T0 + 9).alerts) == [("web", True, False)]
    assert d.engine.next_wakeup() is None
