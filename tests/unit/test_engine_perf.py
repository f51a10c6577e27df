"""The engine's cost per event at 1,000 VSs x 50 hosts (SPEC §4: O(pairs of the target))."""

from __future__ import annotations

import statistics
import time

from ipvswm.config.model import CheckKind, CheckSpec, Config
from ipvswm.engine import Engine
from ipvswm.events import CheckResult, CheckStatus, Tick
from tests.unit.test_engine_fixtures import T0, config, host, vs

N_VS, N_HOSTS = 1000, 50


def _big() -> Config:
    services = [
        vs(
            f"vs{i}",
            address=f"192.0.2.{i % 250 + 1}",
            port=1000 + i,
            rs_port=80,
            check=CheckSpec(CheckKind.HTTP, url_host=f"s{i}.example.org", path="/health"),
        )
        for i in range(N_VS)
    ]
    hosts = [
        host(f"h{j}", f"10.0.0.{j + 1}", *[(f"vs{i}", 100) for i in range(N_VS)])
        for j in range(N_HOSTS)
    ]
    return config(services, hosts)


def test_check_results_cost_well_under_a_millisecond() -> None:
    cfg = _big()
    engine = Engine(cfg, T0)
    engine.handle(Tick(), T0)
    targets = sorted(cfg.check_targets(), key=str)[:2000]
    assert len(engine.pairs_for_target(targets[0])) == 1
    timings: dict[str, list[float]] = {"first": [], "steady": [], "failing": []}
    rounds = (("first", T0 + 1, True), ("steady", T0 + 2, True), ("failing", T0 + 3, False))
    for name, now, passed in rounds:
        status = CheckStatus.PASS if passed else CheckStatus.FAIL
        for target in targets:
            start = time.perf_counter()
            step = engine.handle(CheckResult(target, passed, status, now - 0.1, now), now)
            engine.desired_table()  # what the daemon does after each step
            timings[name].append(time.perf_counter() - start)
    assert len(step.decisions) == 1 and step.touched
    for name, values in timings.items():
        assert statistics.median(values) < 1e-3, name


def test_steady_results_touch_nothing() -> None:
    cfg = _big()
    engine = Engine(cfg, T0)
    engine.handle(Tick(), T0)
    target = next(iter(cfg.check_targets()))
    engine.handle(CheckResult(target, True, CheckStatus.PASS, T0, T0 + 0.1), T0 + 0.1)
    step = engine.handle(CheckResult(target, True, CheckStatus.PASS, T0 + 5, T0 + 5.1), T0 + 5.1)
    assert not step.touched and not step.changes and not step.decisions
