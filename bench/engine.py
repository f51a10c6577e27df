"""The decision engine's cost per event at 1,000 VSs x 50 hosts (50,000 pairs), in-process.

Prints, one `name = value unit` per line, the median cost of handling one check result (with the
desired-table refresh the daemon does after each step) when a check first passes, when it stays
passing, and when it fails; the cost of building the engine; the median owner-side engine cost of
one admin command (`set host H off`, through the engine's plan and apply, with the desired-table
refresh) and of a changed reload (one host's weight changed on every VS, with the desired-table
refresh) at the same size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import big_config

from ipvswm.answers import Refused
from ipvswm.config.model import Config
from ipvswm.engine import Engine
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import ConfigLoaded
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import Tick


def admin_command(engine: Engine, event: SetHostOff | SetHostOn, now: float) -> None:
    """What the owner asks of the engine for one admin command (the commit aside): its plan,
    then (once committed) its application, and the desired table the kernel applier reads.

    Before issue 14 this was a checkpoint (a deep copy of the engine, to roll back to if the
    commit failed), then `handle(event)`.
    """
    plan = engine.plan(event, now)
    assert not isinstance(plan, Refused), plan
    engine.apply(plan, now)
    engine.desired_table()


def changed_reload(engine: Engine, config: Config, now: float) -> None:
    """What the owner asks of the engine for a reload (describe_diff and checks aside), with
    the desired table; before issue 14 a checkpoint came first."""
    engine.handle(ConfigLoaded(config, engine.desired_table()), now)
    engine.desired_table()


def one_weight_changed(cfg: Config, delta: int) -> Config:
    """`cfg` with every weight of its first host changed by `delta` (a host on every VS: one
    weight on each of the 1,000 VSs)."""
    first = cfg.hosts[0]
    weights = tuple((vs, w + delta) for vs, w in first.weights)
    return replace(cfg, hosts=(replace(first, weights=weights), *cfg.hosts[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vs", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--results", type=int, default=2000, help="check results per round")
    parser.add_argument("--admin", type=int, default=10, help="set host off/on rounds")
    parser.add_argument("--reloads", type=int, default=4, help="changed reloads")
    args = parser.parse_args()
    cfg = big_config(args.vs, args.hosts)
    start = time.perf_counter()
    engine = Engine(cfg, T0)
    print(f"engine_construction = {(time.perf_counter() - start) * 1e3:.1f} ms")
    engine.handle(Tick(), T0)
    targets = sorted(cfg.check_targets(), key=str)[: args.results]
    rounds = (
        ("first_pass", T0 + 1, True),
        ("steady_pass", T0 + 2, True),
        ("failure", T0 + 3, False),
    )
    for name, now, passed in rounds:
        status = CheckStatus.PASS if passed else CheckStatus.FAIL
        timings = []
        for target in targets:
            start = time.perf_counter()
            engine.handle(CheckResult(target, passed, status, now - 0.1, now), now)
            engine.desired_table()
            timings.append(time.perf_counter() - start)
        print(f"check_result_{name}_median = {statistics.median(timings) * 1e6:.1f} us")
    now = T0 + 4
    timings = []
    for _ in range(args.admin):
        for event in (SetHostOff("h1"), SetHostOn("h1")):
            now += 1
            start = time.perf_counter()
            admin_command(engine, event, now)
            timings.append(time.perf_counter() - start)
    print(f"admin_command_median = {statistics.median(timings) * 1e3:.1f} ms")
    timings = []
    # Warm, as the daemon's parse thread leaves a new config (Config.warm: its pairs computed).
    configs = (one_weight_changed(cfg, 1).warm(), cfg.warm())
    for i in range(args.reloads):
        now += 1
        start = time.perf_counter()
        changed_reload(engine, configs[i % 2], now)
        timings.append(time.perf_counter() - start)
    print(f"changed_reload_median = {statistics.median(timings) * 1e3:.1f} ms")
    print(f"pairs = {args.vs * args.hosts} pairs")


if __name__ == "__main__":
    main()
