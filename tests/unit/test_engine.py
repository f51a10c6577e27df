"""Scenario tests of the decision engine rules (SPEC §4): events in, weights and phases out."""

from __future__ import annotations

import pytest

from ipvswm.answers import Refused
from ipvswm.engine.rules import MIN_RAMP_STEP
from ipvswm.engine.state import Phase
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

ENABLED, AWAIT, RAMPING, DISABLED = Phase.ENABLED, Phase.AWAIT_PASS, Phase.RAMPING, Phase.DISABLED


def test_first_start_without_kernel_waits_for_first_check() -> None:
    d = Driver.start(basic())
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, AWAIT)
    d.at(T0 + 1)
    step = d.check("web", "web1", True)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (100, ENABLED)
    assert [str(x) for x in step.decisions] == [
        "vs web host web1: weight 0 -> 100, AWAIT_PASS -> ENABLED (check passed)"
    ]
    assert step.touched == {d.engine.service_key("web")}


def test_failure_gives_zero_and_short_outage_recovers_without_ramp() -> None:
    d = healthy(basic())
    step = d.at(T0 + 10).check("web", "web1", False, cause="status 503")
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, AWAIT)
    assert step.decisions[0].cause == "check failed: status 503"
    assert d.state("web", "web1").down_since == T0 + 10
    # A pass that started before the outage was noticed does not count.
    d.at(T0 + 11).check("web", "web1", True, started=T0 + 9.5)
    assert d.weight("web", "web1") == 0
    d.at(T0 + 20).check("web", "web1", True)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (100, ENABLED)
    assert d.state("web", "web1").down_since is None


def test_on_waits_for_a_check_that_started_after_the_command() -> None:
    d = healthy(basic())
    d.at(T0 + 10).feed(SetHostOff("web1"))
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, DISABLED)
    step = d.at(T0 + 20).feed(SetHostOn("web1"))
    assert step.decisions[0].new_phase is AWAIT
    assert d.state("web", "web1").enabled_at == T0 + 20
    # Started before the `on`, ended after it: does not count.
    d.at(T0 + 21).check("web", "web1", True, started=T0 + 19.9)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, AWAIT)
    d.at(T0 + 22).check("web", "web1", True, started=T0 + 21.5)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (100, ENABLED)


def test_two_reasons_need_two_ons() -> None:
    d = healthy(basic())
    step = d.at(T0 + 5).feed(SetPairsOff("web1", ("web",), frozenset({"maintenance", "deploy"})))
    assert step.decisions[0].cause == "admin off (deploy,maintenance)"
    d.at(T0 + 6).feed(SetPairsOn("web1", ("web",), frozenset({"deploy"})))
    assert d.phase("web", "web1") is DISABLED
    assert d.state("web", "web1").reasons == {"maintenance"}
    assert d.state("web", "web1").enabled_at is None
    d.at(T0 + 7).feed(SetPairsOn("web1", ("web",), frozenset({"maintenance"})))
    assert d.phase("web", "web1") is AWAIT
    assert d.state("web", "web1").enabled_at == T0 + 7
    d.at(T0 + 8).check("web", "web1", True)
    assert d.weight("web", "web1") == 100


def test_on_star_removes_every_reason() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetPairsOff("web1", ("web",), frozenset({"a", "b", "c"})))
    d.at(T0 + 6).feed(SetPairsOn("web1", ("web",), None))
    assert d.state("web", "web1").reasons == frozenset()
    assert d.phase("web", "web1") is AWAIT


def test_host_and_pair_reasons_together() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetHostOff("web1", frozenset({"rack"})))
    d.feed(SetPairsOff("web1", ("web",)))
    step = d.at(T0 + 6).feed(SetHostOn("web1", frozenset({"rack"})))
    assert d.phase("web", "web1") is DISABLED  # the pair still has its own reason
    assert step.note == "still off (vs web: default)" and step.error is None
    d.at(T0 + 7).feed(SetPairsOn("web1", ("web",)))
    assert d.phase("web", "web1") is AWAIT
    assert d.state("web", "web1").enabled_at == T0 + 7


def test_on_that_removes_nothing_is_a_noop_with_a_note() -> None:
    d = healthy(basic())
    step = d.at(T0 + 5).feed(SetHostOn("web1"))
    assert step.error is None and step.note == "nothing to do"
    assert not step.decisions and not step.changes
    assert d.state("web", "web1").enabled_at is None
    assert d.feed(SetPairsOn("web1", ("web",), None)).note == "nothing to do"


RAMP_100_OVER_10 = [10, 10, 12, 13, 15, 17, 20, 25, 34, 50, 100]


def test_on_in_ramp_follows_the_original_curve() -> None:
    d = healthy(basic())
    d.at(T0 + 10).feed(SetHostOff("web1"))
    d.at(T0 + 20).feed(SetHostOn("web1", ramp=10))
    assert d.state("web", "web1").ramp_duration == 10
    step = d.at(T0 + 21).check("web", "web1", True)
    assert step.decisions[0].cause == "check passed, ramp 10s"
    assert d.state("web", "web1").ramp_deadline == T0 + 31
    weights = [d.weight("web", "web1")]
    for second in range(1, 11):
        d.tick(T0 + 21 + second)
        weights.append(d.weight("web", "web1"))
    assert weights == RAMP_100_OVER_10
    assert d.phase("web", "web1") is ENABLED
    assert d.state("web", "web1").ramp_duration is None
    assert d.engine.next_wakeup() is None


def test_ramp_in_20_weights_at_several_times() -> None:
    d = healthy(basic())
    d.at(T0 + 10).feed(SetHostOff("web1"))
    d.at(T0 + 20).feed(SetHostOn("web1", ramp=20))
    d.at(T0 + 21).check("web", "web1", True)
    seen = {}
    for offset in (0.5, 5, 10, 15, 19, 19.5, 20):
        d.tick(T0 + 21 + offset)
        seen[offset] = (d.weight("web", "web1"), d.phase("web", "web1"))
    assert seen == {
        0.5: (5, RAMPING),  # ceil(100 / 20.5)
        5: (7, RAMPING),  # ceil(100 / 16)
        10: (10, RAMPING),  # ceil(100 / 11)
        15: (17, RAMPING),  # ceil(100 / 6)
        19: (50, RAMPING),
        19.5: (67, RAMPING),  # ceil(100 / 1.5)
        20: (100, ENABLED),
    }


def test_next_wakeup_is_the_exact_next_change() -> None:
    d = healthy(basic())
    d.at(T0 + 10).feed(SetHostOff("web1"))
    d.at(T0 + 20).feed(SetHostOn("web1", ramp=10))
    step = d.at(T0 + 21).check("web", "web1", True)
    # weight 10 until ceil(100 / (D - t + 1)) > 10, i.e. just after D - 9 = T0 + 22.
    assert step.next_wakeup == pytest.approx(T0 + 22, abs=1e-3)
    assert step.next_wakeup is not None and step.next_wakeup > T0 + 22
    wakes, weights = 0, [d.weight("web", "web1")]
    while (wake := d.engine.next_wakeup()) is not None:
        wakes += 1
        d.tick(wake)
        weights.append(d.weight("web", "web1"))
    # Every wake-up changed the weight; the last second is sampled every MIN_RAMP_STEP.
    assert weights == sorted(set(weights))
    assert len(weights) == wakes + 1
    assert weights[-1] == 100 and d.now == T0 + 31
    assert wakes < 10 / MIN_RAMP_STEP


def test_long_outage_ramps_automatically() -> None:
    d = healthy(basic())
    d.at(T0 + 10).check("web", "web1", False)
    d.at(T0 + 10 + 120).check("web", "web1", True)
    st = d.state("web", "web1")
    assert (st.phase, st.weight, st.ramp_duration) == (RAMPING, 10, 10.0)
    assert st.ramp_deadline == T0 + 140


def test_short_outage_does_not_ramp() -> None:
    d = healthy(basic())
    d.at(T0 + 10).check("web", "web1", False)
    d.at(T0 + 10 + 119).check("web", "web1", True)
    assert (d.phase("web", "web1"), d.weight("web", "web1")) == (ENABLED, 100)


def test_trigger_time_and_duration_come_from_options() -> None:
    d = healthy(basic(ramping_trigger_time=5.0, ramping_duration=4.0))
    d.at(T0 + 10).check("web", "web1", False)
    d.at(T0 + 16).check("web", "web1", True)
    assert d.state("web", "web1").ramp_deadline == T0 + 20
    assert d.weight("web", "web1") == 20  # ceil(100 / 5)


def test_failure_during_ramp_restarts_it_from_the_beginning() -> None:
    d = healthy(basic())
    d.at(T0 + 10).feed(SetHostOff("web1"))
    d.at(T0 + 20).feed(SetHostOn("web1", ramp=10))
    d.at(T0 + 21).check("web", "web1", True)
    d.tick(T0 + 26)
    assert d.weight("web", "web1") == 17
    d.at(T0 + 27).check("web", "web1", False)
    st = d.state("web", "web1")
    assert (st.weight, st.phase, st.ramp_deadline, st.ramp_duration) == (0, AWAIT, None, 10)
    assert d.engine.next_wakeup() is None
    d.at(T0 + 30).check("web", "web1", True)
    st = d.state("web", "web1")
    assert (st.weight, st.phase, st.ramp_deadline) == (10, RAMPING, T0 + 40)


def test_off_during_ramp_cancels_it() -> None:
    d = healthy(basic())
    d.at(T0 + 10).feed(SetHostOff("web1"))
    d.at(T0 + 20).feed(SetHostOn("web1", ramp=10))
    d.at(T0 + 21).check("web", "web1", True)
    d.at(T0 + 22).feed(SetHostOff("web1"))
    st = d.state("web", "web1")
    assert (st.phase, st.ramp_duration, st.ramp_deadline) == (DISABLED, None, None)
    d.at(T0 + 23).feed(SetHostOn("web1"))
    d.at(T0 + 24).check("web", "web1", True)
    assert (d.phase("web", "web1"), d.weight("web", "web1")) == (ENABLED, 100)


def test_override_set_and_cleared() -> None:
    d = healthy(basic())
    step = d.at(T0 + 5).feed(SetOverride("web1", 30))
    assert step.decisions[0].cause == "override 30"
    assert (d.weight("web", "web1"), d.state("web", "web1").override) == (30, 30)
    step = d.at(T0 + 6).feed(SetOverride("web1", None, ("web",)))
    assert step.decisions[0].cause == "override cleared"
    assert (d.weight("web", "web1"), d.state("web", "web1").override) == (100, None)


def test_override_applies_while_disabled_only_after_enable() -> None:
    d = healthy(basic())
    d.at(T0 + 5).feed(SetHostOff("web1"))
    d.feed(SetOverride("web1", 7))
    assert d.weight("web", "web1") == 0
    d.at(T0 + 6).feed(SetHostOn("web1"))
    d.at(T0 + 7).check("web", "web1", True)
    assert d.weight("web", "web1") == 7


def test_configured_weight_zero_is_enabled_at_zero() -> None:
    cfg = config([vs("web")], [host("web1", "198.51.100.1", ("web", 0))])
    d = healthy(cfg)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, ENABLED)


def test_pair_without_check_is_always_passing() -> None:
    cfg = config([vs("web", check=NO_CHECK)], [host("web1", "198.51.100.1", ("web", 40))])
    d = Driver.start(cfg)
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (40, ENABLED)
    d.at(T0 + 1).feed(SetHostOff("web1"))
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (0, DISABLED)
    d.at(T0 + 2).feed(SetHostOn("web1"))
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (40, ENABLED)
    d.at(T0 + 3).feed(SetHostOff("web1"))
    d.at(T0 + 200).feed(SetHostOn("web1"))  # a long outage ramps here too
    assert (d.weight("web", "web1"), d.phase("web", "web1")) == (4, RAMPING)


def test_rise_counts_the_status_not_single_passes() -> None:
    d = healthy(basic())
    d.at(T0 + 10).check("web", "web1", False)
    d.at(T0 + 15).check("web", "web1", True, status=CheckStatus.FAIL)  # rise=2, first pass
    assert d.weight("web", "web1") == 0
    d.at(T0 + 20).check("web", "web1", True, status=CheckStatus.PASS)
    assert d.weight("web", "web1") == 100


@pytest.mark.parametrize(
    ("event", "error"),
    [
        (SetHostOff("web9"), "# no such host 'web9'"),
        (SetHostOn("web9"), "# no such host 'web9'"),
        (SetPairsOff("web1", ("api",)), "# no such vs 'api'"),
        (SetPairsOn("web1", ("web", "nope")), "# no such vs 'nope'"),
        (SetPairsOff("lonely", ("web",)), "# host 'lonely' is not on vs 'web'"),
        (SetOverride("web1", 70000), "# bad weight 70000 (0..65535)"),
        (SetOverride("web1", 5, ("api",)), "# no such vs 'api'"),
    ],
)
def test_admin_errors_change_nothing(event: object, error: str) -> None:
    cfg = config(
        [vs("web")],
        [host("web1", "198.51.100.1", ("web", 100)), host("lonely", "198.51.100.9")],
    )
    d = healthy(cfg)
    before = d.engine.snapshot()
    step = d.at(T0 + 5).feed(event)  # type: ignore[arg-type]
    assert step.error == Refused(error)  # Refused drops the leading "# "
    assert not step.decisions and not step.changes and not step.touched
    assert d.engine.snapshot() == before


def test_steady_checks_persist_nothing_and_transitions_persist_times() -> None:
    d = healthy(basic())
    for i in range(2, 20):
        step = d.at(T0 + i).check("web", "web1", True)
        assert not step.changes and not step.decisions and not step.touched
    step = d.at(T0 + 30).check("web", "web1", False)
    saved = step.changes.pairs[("web", "web1")]
    assert saved is not None
    assert (saved.check_status, saved.down_since) == (CheckStatus.FAIL, T0 + 30)
    assert saved.last_pass_started == T0 + 19 - 0.1
    step = d.at(T0 + 35).check("web", "web1", False, cause="connect timeout")
    assert not step.changes  # same status, other cause: not a transition


def test_check_result_of_unknown_target_is_ignored() -> None:
    d = healthy(basic())
    other = Driver.start(config([vs("x")], [host("h", "198.51.100.77", ("x", 1))]))
    stray = CheckResult(other.target("x", "h"), False, CheckStatus.FAIL, T0, T0 + 1, "refused")
    assert d.engine.pairs_for_target(stray.target) == ()
    before = d.engine.snapshot()
    step = d.at(T0 + 5).feed(stray)
    assert not step.decisions and not step.changes
    assert d.engine.snapshot() == before
    assert d.engine.pairs_for_target(d.target("web", "web1")) == (("web", "web1"),)


def test_one_checker_feeds_every_pair_of_its_target() -> None:
    cfg = config(
        [vs("a", port=80), vs("b", address="192.0.2.2", port=80)],
        [host("web1", "198.51.100.1", ("a", 10), ("b", 20))],
    )
    d = healthy(cfg)
    assert d.engine.pairs_for_target(d.target("a", "web1")) == (("a", "web1"), ("b", "web1"))
    step = d.at(T0 + 5).check("a", "web1", False)
    assert [(x.vs, x.new_weight) for x in step.decisions] == [("a", 0), ("b", 0)]
    assert step.touched == {d.engine.service_key("a"), d.engine.service_key("b")}
