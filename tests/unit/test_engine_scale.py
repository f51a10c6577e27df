"""The engine at 1,000 VSs x 50 hosts: a result re-evaluates only its own pairs (its cost:
bench/engine.py)."""

from __future__ import annotations

from ipvswm.config.model import Config
from ipvswm.engine import Engine
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import Tick
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import big_config


def _big() -> Config:
    return big_config(1000, 50)


def test_each_result_decides_only_its_own_pair() -> None:
    cfg = _big()
    engine = Engine(cfg, T0)
    engine.handle(Tick(), T0)
    targets = sorted(cfg.check_targets(), key=str)[:200]
    assert len(engine.pairs_for_target(targets[0])) == 1
    rounds = ((T0 + 1, True, 1), (T0 + 2, True, 0), (T0 + 3, False, 1))
    for now, passed, decisions in rounds:
        status = CheckStatus.PASS if passed else CheckStatus.FAIL
        for target in targets:
            step = engine.handle(CheckResult(target, passed, status, now - 0.1, now), now)
            assert len(step.decisions) == decisions
            assert len(step.touched) == decisions


def test_steady_results_touch_nothing() -> None:
    cfg = _big()
    engine = Engine(cfg, T0)
    engine.handle(Tick(), T0)
    target = next(iter(cfg.check_targets()))
    engine.handle(CheckResult(target, True, CheckStatus.PASS, T0, T0 + 0.1), T0 + 0.1)
    step = engine.handle(CheckResult(target, True, CheckStatus.PASS, T0 + 5, T0 + 5.1), T0 + 5.1)
    assert not step.touched and not step.changes and not step.decisions
