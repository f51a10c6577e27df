"""A reload re-evaluates only the pairs whose host or VS changed (engine.reload): the outcome must
be the one of re-evaluating every pair, which an options change forces (a differential test)."""

from __future__ import annotations

from dataclasses import replace

from ipvswm.config.model import Config
from ipvswm.engine.outputs import Step
from ipvswm.events import ConfigLoaded
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs


def _config(weight: int, **options: object) -> Config:
    return config(
        [vs("web", sorry_server="sorry"), vs("api", address="192.0.2.2")],
        [
            host("a", "198.51.100.1", ("web", 100), ("api", 10)),
            host("b", "198.51.100.2", ("web", weight), ("api", 20)),
            host("c", "198.51.100.3", ("web", 30)),
            host("d", "198.51.100.4", ("api", 40)),
            host("sorry", "198.51.100.99"),
        ],
        **options,
    )


def _busy(cfg: Config) -> Driver:
    """Pairs in every phase: failing, disabled, overridden, ramping, awaiting a pass."""
    d = healthy(cfg)
    d.at(T0 + 5).check("web", "c", False)
    d.feed(SetHostOff("d"))
    d.feed(SetOverride("a", 7, ("api",)))
    d.feed(SetHostOff("b"))
    d.at(T0 + 200).feed(SetHostOn("b", ramp=60))
    d.at(T0 + 201).check("web", "b", True)
    return d


def _partial_and_full(cfg: Config, changed: Config) -> tuple[Step, Step]:
    """The reload to `changed` of a busy engine on `cfg` (partial: only what changed is
    re-evaluated), and of a twin made to re-evaluate everything (an option differs, which
    changes no decision); both engines end in the same state. Returns (reload, reference)."""
    partial, full = _busy(cfg), _busy(cfg)
    step = partial.at(T0 + 230).feed(ConfigLoaded(changed))
    options = replace(changed.options, config_check_period=9.0)
    reference = full.at(T0 + 230).feed(ConfigLoaded(replace(changed, options=options)))
    assert partial.engine.snapshot() == full.engine.snapshot()
    assert partial.engine.desired_table() == full.engine.desired_table()
    return step, reference


def test_a_changed_weight_reloads_like_a_full_re_evaluation() -> None:
    for weight in (80, 0):  # (50: the same config, which changes nothing at all)
        partial, full = _busy(_config(50)), _busy(_config(50))
        at = T0 + 230
        step = partial.at(at).feed(ConfigLoaded(_config(weight)))
        # Config.CheckPeriod changes no decision, but every pair is re-evaluated for it.
        reference = full.at(at).feed(ConfigLoaded(_config(weight, config_check_period=9.0)))
        assert partial.engine.snapshot() == full.engine.snapshot()
        assert partial.engine.desired_table() == full.engine.desired_table()
        assert step.decisions == reference.decisions
        assert step.touched == reference.touched
        assert partial.engine.next_wakeup() == full.engine.next_wakeup()
        for d in (partial, full):
            d.at(at + 1).check("web", "c", True)
            d.check("api", "d", True)
        assert partial.steps[-1] == full.steps[-1]
        assert partial.engine.snapshot() == full.engine.snapshot()


def test_a_changed_vs_setting_reloads_like_a_full_re_evaluation() -> None:
    cfg = _config(50)
    changed = replace(
        cfg, services=(replace(cfg.services[0], depool_threshold=0.5), cfg.services[1])
    )
    step, reference = _partial_and_full(cfg, changed)
    assert step.decisions == reference.decisions


def test_added_and_removed_pairs_reload_like_a_full_re_evaluation() -> None:
    cfg = _config(50)
    hosts = (*cfg.hosts[:3], host("e", "198.51.100.5", ("api", 5), ("web", 5)), cfg.hosts[4])
    changed = replace(cfg, hosts=hosts)  # d (off) removed, e added on both VSs
    step, reference = _partial_and_full(cfg, changed)
    assert (step.decisions, step.touched, step.messages) == (
        reference.decisions,
        reference.touched,
        reference.messages,
    )


def test_checks_changed_by_many_reloads_still_reach_their_pairs() -> None:
    """The ids of removed checks are kept as holes, then made afresh (engine.layout)."""
    cfg = _config(50)
    d = healthy(cfg)
    at = T0 + 10
    for path in ("/a", "/b", "/c", "/d", "/e"):
        spec = replace(cfg.services[1].check, path=path)
        cfg = replace(cfg, services=(cfg.services[0], replace(cfg.services[1], check=spec)))
        d.at(at).feed(ConfigLoaded(cfg))
        at += 10
        d.at(at).check("api", "a", False)
        assert d.weight("api", "a") == 0
        assert d.engine.pairs_for_target(d.target("api", "a")) == (("api", "a"),)
        d.at(at + 5).check("api", "a", True)
        assert d.weight("api", "a") == 10
        at += 10
