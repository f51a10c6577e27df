"""The decision engine's cost per event at 1,000 VSs x 50 hosts (50,000 pairs), in-process.

Prints, one `name = value unit` per line, the median cost of handling one check result (with the
desired-table refresh the daemon does after each step) when a check first passes, when it stays
passing, and when it fails; and the cost of building the engine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.test_engine_fixtures import T0, big_config

from ipvswm.engine import Engine
from ipvswm.events import CheckResult, CheckStatus, Tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vs", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--results", type=int, default=2000, help="check results per round")
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
    print(f"pairs = {args.vs * args.hosts} pairs")


if __name__ == "__main__":
    main()
