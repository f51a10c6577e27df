"""Scenario tests of the depool threshold (SPEC §4, §11; issue 13 §1)."""

from __future__ import annotations

from dataclasses import replace

from ipvswm.config.model import Config
from ipvswm.engine.state import Phase
from ipvswm.events import ConfigLoaded
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

ENABLED, AWAIT, KEPT, DISABLED = Phase.ENABLED, Phase.AWAIT_PASS, Phase.FAILING_KEPT, Phase.DISABLED
RAMPING = Phase.RAMPING
HOSTS = ("w1", "w2", "w3", "w4")


def four(threshold: float = 0.5, **options: object) -> Config:
    """VS web (sorry server `sorry`) with four hosts of weight 100 and a depool threshold."""
    web = replace(vs("web", sorry_server="sorry"), depool_threshold=threshold)
    hosts = [host(tag, f"198.51.100.{i}", ("web", 100)) for i, tag in enumerate(HOSTS, 1)]
    return config([web], [*hosts, host("sorry", "198.51.100.99")], **options)


def phases(d: Driver) -> dict[str, tuple[int, Phase]]:
    return {tag: (d.weight("web", tag), d.phase("web", tag)) for tag in HOSTS}


def fail(d: Driver, when: float, *tags: str) -> None:
    for tag in tags:
        d.at(when).check("web", tag, False, cause="status 503")


def test_without_threshold_every_failing_pair_goes_and_the_sorry_server_comes() -> None:
    d = healthy(four(0.0))
    fail(d, T0 + 10, *HOSTS)
    assert set(phases(d).values()) == {(0, AWAIT)}
    assert d.engine.snapshot().vss["web"].sorry_on
    assert all(not s.kept for s in d.steps)


def test_failing_pairs_beyond_the_threshold_stay_in_the_last_failures_first() -> None:
    d = healthy(four(0.5))
    fail(d, T0 + 10, "w1")
    fail(d, T0 + 11, "w2")  # 200 of 400 left: still allowed
    assert phases(d)["w2"] == (0, AWAIT)
    step = d.at(T0 + 12).check("web", "w3", False, cause="status 503")
    assert phases(d)["w3"] == (100, KEPT)
    # Logged once, from where it was to where it ends (no passing trip through AWAIT_PASS).
    assert [str(x) for x in step.decisions] == [
        "vs web host w3: weight 100 -> 100, ENABLED -> FAILING_KEPT "
        "(check failed: status 503; kept in by the depool threshold (0.5))"
    ]
    assert [(k.vs, k.on, k.kept) for k in step.kept] == [("web", True, ("w3",))]
    assert step.kept[0].subject() == "VS 'web' FAILING KEPT (depool threshold 0.5)"
    step = d.at(T0 + 13).check("web", "w4", False, cause="status 503")
    # 0 of 400 left: the two latest failures stay in, to carry 200.
    assert phases(d) == {"w1": (0, AWAIT), "w2": (0, AWAIT), "w3": (100, KEPT), "w4": (100, KEPT)}
    assert step.kept == ()  # already announced


def test_everything_failing_keeps_the_latest_failures_and_no_sorry_server() -> None:
    d = healthy(four(0.5))
    for i, tag in enumerate(HOSTS):
        fail(d, T0 + 10 + i, tag)
    assert phases(d) == {"w1": (0, AWAIT), "w2": (0, AWAIT), "w3": (100, KEPT), "w4": (100, KEPT)}
    assert not d.engine.snapshot().vss["web"].sorry_on
    assert d.engine.snapshot().vss["web"].kept_since == T0 + 12


def test_kept_pairs_leave_in_order_of_failure_as_others_recover() -> None:
    d = healthy(four(0.5))
    for i, tag in enumerate(HOSTS):
        fail(d, T0 + 10 + i, tag)
    d.at(T0 + 20).check("web", "w1", True)
    # 100 back in service: one kept pair is enough, and it is the one that failed last.
    assert phases(d) == {
        "w1": (100, ENABLED),
        "w2": (0, AWAIT),
        "w3": (0, AWAIT),
        "w4": (100, KEPT),
    }
    step = d.at(T0 + 21).check("web", "w2", True)
    assert phases(d)["w4"] == (0, AWAIT)
    assert [str(x) for x in step.decisions][-1] == (
        "vs web host w4: weight 100 -> 0, FAILING_KEPT -> AWAIT_PASS "
        "(check failed: status 503; the others carry the depool threshold (0.5))"
    )
    assert [(k.on, k.after) for k in step.kept] == [(False, 9.0)]
    assert step.kept[0].subject() == "VS 'web' FAILING KEPT over (after 9.0s)"
    assert d.engine.snapshot().vss["web"].kept_since is None
    # w4 left service only now: a pass that started before that does not count.
    d.at(T0 + 22).check("web", "w4", True, started=T0 + 20.9)
    assert phases(d)["w4"] == (0, AWAIT)
    d.at(T0 + 23).check("web", "w4", True)
    assert phases(d)["w4"] == (100, ENABLED)


def test_a_kept_pair_that_recovers_goes_on_at_full_weight_without_a_ramp() -> None:
    d = healthy(four(0.5, ramping_trigger_time=30.0))
    for i, tag in enumerate(HOSTS):
        fail(d, T0 + 10 + i, tag)
    step = d.at(T0 + 500).check("web", "w4", True)
    assert phases(d)["w4"] == (100, ENABLED)  # it never left service: no ramp after 500 s
    assert str(step.decisions[0]) == (
        "vs web host w4: weight 100 -> 100, FAILING_KEPT -> ENABLED (check passed)"
    )
    # w4 carries 100 now: w3 is no longer needed and leaves.
    assert phases(d)["w3"] == (100, KEPT)  # 100 + 100 = 200: still needed
    d.at(T0 + 501).check("web", "w1", True)
    assert phases(d)["w1"] == (10, RAMPING)  # w1 was out for 491 s: it ramps
    assert phases(d)["w3"] == (100, KEPT)  # w1 carries only its first ramp step
    d.tick(T0 + 501 + 10)
    assert phases(d)["w1"] == (100, ENABLED)
    assert phases(d)["w3"] == (0, AWAIT)  # a tick (the ramp's end) re-applies the threshold


def test_operator_reasons_are_never_limited() -> None:
    d = healthy(four(1.0))
    for tag in HOSTS:
        d.at(T0 + 10).feed(SetHostOff(tag))
    assert set(phases(d).values()) == {(0, DISABLED)}
    assert d.engine.snapshot().vss["web"].sorry_on  # the sorry-server rule acts on what is left


def test_operator_disabling_a_kept_pair_works_and_another_failed_pair_comes_in() -> None:
    d = healthy(four(0.5))
    for i, tag in enumerate(HOSTS):
        fail(d, T0 + 10 + i, tag)
    step = d.at(T0 + 20).feed(SetPairsOff("w4", ("web",), frozenset({"maint"})))
    # w4 is no longer eligible: 300 eligible, 150 needed; w3 alone carries 100, so w2 (the
    # next latest failure) comes back in.
    assert phases(d) == {
        "w1": (0, AWAIT),
        "w2": (100, KEPT),
        "w3": (100, KEPT),
        "w4": (0, DISABLED),
    }
    assert step.error is None
    assert d.state("web", "w4").failed_at is None


def test_operator_disabling_a_healthy_pair_brings_back_the_last_failure() -> None:
    d = healthy(four(0.5))
    fail(d, T0 + 10, "w1")
    fail(d, T0 + 11, "w2")
    d.at(T0 + 20).feed(SetHostOff("w3"))
    # Eligible: w1, w2, w4 (300); w4 alone carries 100 < 150: w2, the latest failure, returns.
    assert phases(d) == {
        "w1": (0, AWAIT),
        "w2": (100, KEPT),
        "w3": (0, DISABLED),
        "w4": (100, ENABLED),
    }
    # Once enabled again, w3 waits for a pass (it is not eligible until it carries weight).
    d.at(T0 + 30).feed(SetHostOn("w3"))
    assert phases(d)["w3"] == (0, AWAIT) and phases(d)["w2"] == (100, KEPT)
    d.at(T0 + 31).check("web", "w3", True)
    assert phases(d)["w2"] == (0, AWAIT)


def test_pairs_that_never_served_are_not_kept() -> None:
    """At a first start nothing is in service yet: no check took anything out."""
    d = Driver.start(four(1.0))
    fail(d, T0 + 1, *HOSTS)
    assert set(phases(d).values()) == {(0, AWAIT)}
    assert d.engine.snapshot().vss["web"].sorry_on


def test_a_broken_health_url_after_a_restart_keeps_the_kernel_weights() -> None:
    d = healthy(four(0.5))
    kernel = d.engine.desired_table()
    r = Driver.start(d.engine.config(), T0 + 100, d.engine.snapshot(), kernel)
    for i, tag in enumerate(HOSTS):
        fail(r, T0 + 101 + i * 0.1, tag)
    assert phases(r) == {"w1": (0, AWAIT), "w2": (0, AWAIT), "w3": (100, KEPT), "w4": (100, KEPT)}
    # And after another restart, the kept pairs keep their weight until their checks report.
    again = Driver.start(r.engine.config(), T0 + 200, r.engine.snapshot(), r.engine.desired_table())
    assert phases(again) == phases(r)
    assert again.steps[0].kept == ()  # still the same episode: not announced again
    fail(again, T0 + 201, "w3")
    assert phases(again)["w3"] == (100, KEPT)


def test_the_ramp_weight_counts_as_carried_not_the_target() -> None:
    cfg = four(0.5, ramping_trigger_time=30.0, ramping_duration=10.0)
    d = healthy(cfg)
    fail(d, T0 + 10, "w1", "w2")
    d.at(T0 + 100).check("web", "w1", True)  # down 90 s: ramps from 10
    assert phases(d)["w1"] == (10, RAMPING)
    fail(d, T0 + 101, "w3")
    # Left: w4 (100) + w1's ramp (17 at T0+101): short of 200, so w3 stays.
    assert phases(d)["w3"] == (100, KEPT)
    d.tick(T0 + 110)
    assert phases(d)["w1"] == (100, ENABLED)
    assert phases(d)["w3"] == (0, AWAIT)


def test_an_override_is_the_target_the_threshold_counts() -> None:
    d = healthy(four(0.5))
    fail(d, T0 + 10, "w1", "w2")
    d.at(T0 + 11).feed(SetOverride("w3", 300))  # eligible 600: w3 + w4 = 400 carry enough
    fail(d, T0 + 12, "w4")  # 300 of 600 left: allowed
    assert phases(d)["w4"] == (0, AWAIT)
    d.at(T0 + 13).feed(SetOverride("w1", 200))  # w1 is eligible (out by its check): 700
    # 300 < 350: the latest failure (w4) comes back, at its target.
    assert phases(d)["w4"] == (100, KEPT)


def test_a_reload_can_turn_the_threshold_on_during_an_outage_and_off_again() -> None:
    d = healthy(four(0.0))
    for i, tag in enumerate(HOSTS):
        fail(d, T0 + 10 + i, tag)
    assert d.engine.snapshot().vss["web"].sorry_on
    step = d.at(T0 + 20).feed(ConfigLoaded(four(0.5)))
    assert phases(d) == {"w1": (0, AWAIT), "w2": (0, AWAIT), "w3": (100, KEPT), "w4": (100, KEPT)}
    assert not d.engine.snapshot().vss["web"].sorry_on
    assert [k.on for k in step.kept] == [True]
    step = d.at(T0 + 30).feed(ConfigLoaded(four(0.0)))
    assert set(phases(d).values()) == {(0, AWAIT)}
    assert [k.on for k in step.kept] == [False]
    assert d.engine.snapshot().vss["web"].sorry_on


def test_the_global_default_applies_to_a_vs_without_the_option() -> None:
    from ipvswm.config.parser import parse_text

    text = (
        "Check.DepoolThreshold=0.75\n"
        "! a 192.0.2.1:80 tcp://\n"
        "! b 192.0.2.2:80 tcp:// depool_threshold=0\n"
        "! c 192.0.2.3:80 tcp:// depool_threshold=.25\n"
    )
    result = parse_text(text, "t.conf", lambda name: [])
    assert result.config is not None, result.errors
    assert [s.depool_threshold for s in result.config.services] == [0.75, 0.0, 0.25]


def test_bad_thresholds_are_config_errors() -> None:
    from ipvswm.config.parser import parse_text

    for bad in ("1.5", "-0.1", "half", "50%", "1e-1", ""):
        result = parse_text(f"! a 192.0.2.1:80 tcp:// depool_threshold={bad}\n", "t.conf")
        assert [str(e) for e in result.errors] == [
            f"t.conf:1: virtual service 'a': option depool_threshold: bad value '{bad}': "
            "expected a decimal number from 0 to 1 (e.g. 0.5)"
        ], bad
    result = parse_text("Check.DepoolThreshold=2\n", "t.conf")
    assert [str(e) for e in result.errors] == [
        "t.conf:1: Check.DepoolThreshold: bad value '2': expected a decimal number from 0 to 1"
        " (e.g. 0.5)"
    ]
