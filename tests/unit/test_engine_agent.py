"""Agent feedback in the engine (issue 13 §2): override, agent, ramp and reasons, drain vs failure,
no answer = no opinion. Scenario tables on a fake clock (no I/O)."""

from __future__ import annotations

from dataclasses import replace

from ipvswm.checks.agentline import parse_agent_line
from ipvswm.config.model import AgentTarget
from ipvswm.config.model import Config
from ipvswm.engine.state import Phase
from ipvswm.events import AgentResult
from ipvswm.events import CheckStatus
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

AGENT_PORT = 9777


def agent_config(**options: object) -> Config:
    """VS `web` (agent on 9777) with web1 (100) and web2 (50); VS `api` shares web1's agent."""
    return config(
        [
            replace(vs("web"), agent_port=AGENT_PORT),
            replace(vs("api", port=81), agent_port=AGENT_PORT),
        ],
        [
            host("web1", "198.51.100.1", ("web", 100), ("api", 10)),
            host("web2", "198.51.100.2", ("web", 50)),
        ],
        **options,
    )


def say(d: Driver, address: str, line: str | None, cause: str = "connect refused") -> None:
    """An agent poll that ends now: an answer line, or (None) no answer."""
    reply = None if line is None else parse_agent_line(line)
    target = AgentTarget(address, AGENT_PORT)
    d.feed(AgentResult(target, reply, d.now - 0.01, d.now, "" if reply else cause))


def wp(d: Driver, vs_tag: str, host_tag: str) -> tuple[int, Phase]:
    return d.weight(vs_tag, host_tag), d.phase(vs_tag, host_tag)


WEB1 = "198.51.100.1"
WEB2 = "198.51.100.2"


def test_a_percentage_scales_t_on_every_vs_the_agent_feeds() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "75%")
    assert wp(d, "web", "web1") == (75, Phase.ENABLED)
    assert wp(d, "api", "web1") == (8, Phase.ENABLED)  # ceil(10 x 0.75): one poll, both VSs
    assert wp(d, "web", "web2") == (50, Phase.ENABLED)  # its own agent has not spoken
    say(d.at(T0 + 3), WEB1, "1%")
    assert wp(d, "api", "web1") == (1, Phase.ENABLED)  # at least 1 while p > 0
    say(d.at(T0 + 4), WEB1, "up")
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)


def test_the_override_sets_t_and_the_agent_scales_it() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "50%")
    d.at(T0 + 3).feed(SetOverride("web1", 40, ("web",)))
    assert d.weight("web", "web1") == 20
    d.at(T0 + 4).feed(SetOverride("web1", None, ("web",)))
    assert d.weight("web", "web1") == 50


def test_drain_is_zero_without_a_failure_and_comes_back_at_once() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "drain # deploy")
    st = d.state("web", "web1")
    assert (st.weight, st.phase, st.check_status, st.failed_at) == (
        0,
        Phase.DRAINING,
        CheckStatus.PASS,
        None,
    )
    assert wp(d, "api", "web1") == (0, Phase.DRAINING)
    decision = d.steps[-1].decisions[0]
    assert decision.cause == "agent: drain (deploy)"
    # Checks keep passing: still drained. `maint` and `0%` drain too.
    d.at(T0 + 3).check("web", "web1", True)
    assert wp(d, "web", "web1") == (0, Phase.DRAINING)
    for line in ("maint", "0%"):
        say(d.at(d.now + 1), WEB1, line)
        assert wp(d, "web", "web1") == (0, Phase.DRAINING)
    say(d.at(T0 + 200), WEB1, "ready")  # long after: no ramp, a drain is not an outage
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)


def test_down_is_a_failure_and_a_fresh_pass_is_needed_afterwards() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "down#overloaded")
    st = d.state("web", "web1")
    assert (st.weight, st.phase) == (0, Phase.AWAIT_PASS)
    assert (st.check_status, st.check_cause) == (CheckStatus.FAIL, "agent: down (overloaded)")
    d.at(T0 + 3).check("web", "web1", True, started=T0 + 1.5)  # began before the failure
    assert wp(d, "web", "web1") == (0, Phase.AWAIT_PASS)  # the check alone cannot bring it back
    say(d.at(T0 + 4), WEB1, "up")
    assert wp(d, "web", "web1") == (0, Phase.AWAIT_PASS)  # its last pass began before the failure
    d.at(T0 + 5).check("web", "web1", True)
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)
    assert d.state("web", "web1").check_status is CheckStatus.PASS


def test_no_answer_is_no_opinion_never_a_failure() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, None)  # unreachable from the start: the check decides
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)
    say(d.at(T0 + 3), WEB1, "drain")
    say(d.at(T0 + 4), WEB1, None, cause="connect timeout")  # the agent died: back to the check
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)
    assert d.steps[-1].decisions[0].cause == (
        "agent: no answer (connect timeout): the check alone decides"
    )
    say(d.at(T0 + 5), WEB1, "sleepy")  # only unknown words: no opinion
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)
    d.at(T0 + 6).check("web", "web1", False)  # and a failing check still takes it out
    assert wp(d, "web", "web1") == (0, Phase.AWAIT_PASS)


def test_reasons_act_on_the_result_whatever_the_agent_says() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "50%")
    d.at(T0 + 3).feed(SetHostOff("web1"))
    assert wp(d, "web", "web1") == (0, Phase.DISABLED)
    say(d.at(T0 + 4), WEB1, "drain")
    assert wp(d, "web", "web1") == (0, Phase.DISABLED)
    say(d.at(T0 + 5), WEB1, "60%")
    d.at(T0 + 6).feed(SetHostOn("web1"))
    assert wp(d, "web", "web1") == (0, Phase.AWAIT_PASS)  # a pass after the enable, as ever
    d.at(T0 + 7).check("web", "web1", True)
    assert wp(d, "web", "web1") == (60, Phase.ENABLED)


def test_the_ramp_acts_on_the_scaled_target() -> None:
    d = healthy(agent_config(ramping_trigger_time=0.0, ramping_duration=10.0))
    say(d.at(T0 + 2), WEB1, "50%")
    d.at(T0 + 3).check("web", "web1", False)
    d.at(T0 + 4).check("web", "web1", True)  # back after an outage: a 10 s ramp of T' = 50
    assert wp(d, "web", "web1") == (5, Phase.RAMPING)  # ceil(50 / 11)
    d.tick(T0 + 13)
    assert wp(d, "web", "web1") == (25, Phase.RAMPING)  # ceil(50 / 2)
    say(d.at(T0 + 13.5), WEB1, "drain")  # drained mid-ramp: 0, the ramp starts again after
    assert wp(d, "web", "web1") == (0, Phase.DRAINING)
    say(d.at(T0 + 20), WEB1, "100%")
    assert wp(d, "web", "web1") == (10, Phase.RAMPING)  # ceil(100 / 11): from the beginning
    d.tick(T0 + 30)
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)


def test_an_agent_on_a_pair_without_check() -> None:
    cfg = config(
        [replace(vs("udp", check=NO_CHECK), agent_port=AGENT_PORT)],
        [host("dns1", WEB1, ("udp", 10))],
    )
    d = Driver.start(cfg)
    assert wp(d, "udp", "dns1") == (10, Phase.ENABLED)
    say(d.at(T0 + 1), WEB1, "stopped")
    assert wp(d, "udp", "dns1") == (0, Phase.AWAIT_PASS)
    say(d.at(T0 + 2), WEB1, "30%")
    assert wp(d, "udp", "dns1") == (3, Phase.ENABLED)
    assert d.state("udp", "dns1").check_status is CheckStatus.UNKNOWN


def test_every_pair_drained_brings_the_sorry_server_in() -> None:
    cfg = config(
        [replace(vs("web", sorry_server="sorry"), agent_port=AGENT_PORT)],
        [host("web1", WEB1, ("web", 100)), host("sorry", "198.51.100.9")],
    )
    d = healthy(cfg)
    say(d.at(T0 + 2), WEB1, "drain")
    assert d.engine.snapshot().vss["web"].sorry_on
    say(d.at(T0 + 3), WEB1, "up")
    assert not d.engine.snapshot().vss["web"].sorry_on


def test_agents_failing_everywhere_are_limited_by_the_depool_threshold() -> None:
    cfg = agent_config(check_depool_threshold=0.0)
    cfg = replace(cfg, services=tuple(replace(s, depool_threshold=0.5) for s in cfg.services))
    d = healthy(cfg)
    say(d.at(T0 + 2), WEB2, "down")
    assert wp(d, "web", "web2") == (0, Phase.AWAIT_PASS)  # 100 of 150 left: enough
    say(d.at(T0 + 3), WEB1, "down")
    assert wp(d, "web", "web1") == (100, Phase.FAILING_KEPT)
    say(d.at(T0 + 4), WEB1, "up")
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)


def test_a_drain_survives_a_restart_until_the_agent_answers() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "drain")
    kernel = d.engine.desired_table()
    again = Driver.start(agent_config(), T0 + 10, d.engine.snapshot(), kernel)
    again.at(T0 + 11).check("web", "web1", True)  # the first check after the restart passes
    assert wp(again, "web", "web1") == (0, Phase.DRAINING)
    say(again.at(T0 + 12), WEB1, "up")
    assert wp(again, "web", "web1") == (100, Phase.ENABLED)


def test_the_kernel_weight_is_kept_until_the_first_check_after_start() -> None:
    d = healthy(agent_config())
    kernel = d.engine.desired_table()
    again = Driver.start(agent_config(), T0 + 10, d.engine.snapshot(), kernel)
    say(again.at(T0 + 11), WEB1, "drain")
    assert wp(again, "web", "web1") == (100, Phase.ENABLED)  # adopted: not fresh yet
    again.at(T0 + 12).check("web", "web1", True)
    assert wp(again, "web", "web1") == (0, Phase.DRAINING)


def test_a_reload_keeps_what_the_agents_said() -> None:
    from ipvswm.events import ConfigLoaded

    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "50%")
    cfg = agent_config(check_interval=2.0)
    d.at(T0 + 3).feed(ConfigLoaded(replace(cfg, path="other.conf")))
    assert d.weight("web", "web1") == 50


def test_a_steady_agent_costs_no_re_evaluation() -> None:
    d = healthy(agent_config())
    say(d.at(T0 + 2), WEB1, "50%")
    say(d.at(T0 + 3), WEB1, "50% # same, new words")
    step = d.steps[-1]
    assert step.decisions == () and not step.changes and not step.touched


def test_a_pair_whose_check_becomes_none_on_a_reload_is_not_held_by_its_old_failure() -> None:
    from ipvswm.events import ConfigLoaded

    cfg = config([vs("web")], [host("web1", WEB1, ("web", 100))])
    d = healthy(cfg)
    d.at(T0 + 2).check("web", "web1", False)
    assert wp(d, "web", "web1") == (0, Phase.AWAIT_PASS)
    unchecked = config([vs("web", check=NO_CHECK)], [host("web1", WEB1, ("web", 100))])
    d.at(T0 + 3).feed(ConfigLoaded(unchecked))
    assert wp(d, "web", "web1") == (100, Phase.ENABLED)
