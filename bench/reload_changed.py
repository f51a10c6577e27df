"""Benchmark: the owner's time for a reload that changes one weight at 50,000 pairs, and the
kernel operations of a no-op reload (issue 16 goal 4); in-process, no daemon.

The config of bench/reload.py (1,000 VSs x 50 hosts, 50,000 pairs); an engine in a steady state
(every checker passed, the kernel holding its desired table). A new file differing in one weight
goes through what the daemon's owner task does for a reload (daemon.owner.Owner._apply_config and
the converge after it): compare with the running config, describe the diff, handle ConfigLoaded
(no checkpoint since issue 14), the check targets, CheckSet.update (checkers kept: a probe
without I/O), the desired table, reconcile the touched services against the kernel. Then the
same for the identical file re-parsed (comments changed), which the daemon short-cuts on config
equality.

Prints (medians of `--repeat`): `changed_<step>` (ms) per step, `changed_reload_owner_time`
(ms, the sum; target <= 200), `changed_reload_kernel_ops` (1), `noop_reload_owner_time` (ms),
`noop_reload_kernel_ops` (target 0), `pairs`, `load_1min`.

Usage: python bench/reload_changed.py [--vs 1000] [--hosts 200] [--per-vs 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ipvswm.checks.checkset import CheckSet
from ipvswm.config.diff import describe_diff
from ipvswm.config.model import Config
from ipvswm.engine.engine import Engine
from ipvswm.events import ConfigLoaded
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.sync import restrict
from ipvswm.kernel.table import Table
from reload import T0
from reload import generate
from reload import idle_probe
from reload import parse
from reload import steady_engine
from reload import timed

try:  # the first-checks hook of issue 16 (absent before it)
    from ipvswm.engine.layout import unweighted_targets
except ImportError:  # pragma: no cover - the figure before issue 16
    unweighted_targets = None  # type: ignore[assignment]


def reload_steps(
    old: Config, new: Config, engine: Engine, kernel: Table, checks: CheckSet
) -> tuple[dict[str, float], int]:
    """Time the owner's reload steps; (ms per step, kernel operations it leads to)."""
    ms: dict[str, float] = {}
    ms["compare"], same = timed(lambda: new == old)
    if same:
        return ms, 0  # the daemon's short cut: nothing to do at any size
    ms["describe_diff"], _ = timed(lambda: describe_diff(old, new))
    if hasattr(engine, "checkpoint"):  # before issue 14: the engine copied for a rollback
        ms["checkpoint"], _ = timed(engine.checkpoint)
    ms["handle_config_loaded"], step = timed(
        lambda: engine.handle(ConfigLoaded(new, kernel), T0 + 2)
    )
    ms["check_targets"], targets = timed(new.check_targets)
    if unweighted_targets is not None:
        ms["first_checks"], _ = timed(
            lambda: (
                {t for t in targets if t not in checks}
                and unweighted_targets(new, kernel, {t for t in targets if t not in checks})
            )
        )
    ms["checkset_update"], _ = timed(lambda: checks.update(targets))
    ms["desired_table"], desired = timed(engine.desired_table)
    # The applier reconciles the services the step touched (kernel.sync.KernelSync.converge),
    # in its own task: it is not owner time, but it is what the kernel waits for.
    touched = step.touched
    ms["reconcile_touched"], ops = timed(
        lambda: reconcile(restrict(desired, touched), restrict(kernel, touched), touched)
    )
    return ms, len(ops)


async def one_run(text: str, changed: str) -> tuple[dict[str, float], int, float, int]:
    old = parse(text)
    _, engine = steady_engine(old)
    kernel = engine.desired_table()  # the kernel holds the desired table
    checks = CheckSet(lambda result: None, probe=idle_probe)
    checks.update(old.check_targets())
    try:
        noop_ms, noop_ops = reload_steps(old, parse("# edited\n" + text), engine, kernel, checks)
        # The daemon parses (and warms: Config.warm) a new file in a thread, off the owner.
        ms, ops = reload_steps(old, parse(changed).warm(), engine, kernel, checks)
    finally:
        await checks.close()
    return ms, ops, sum(noop_ms.values()), noop_ops


async def main(args: argparse.Namespace) -> None:
    text = generate(args.vs, args.hosts, args.per_vs, 8)
    lines = text.splitlines(keepends=True)
    host = next(i for i, line in enumerate(lines) if line.startswith("web0 "))
    first = lines[host].split()
    vs, _, weight = first[2].partition("=")
    first[2] = f"{vs}={int(weight) + 1}"  # one weight of one pair
    changed = "".join([*lines[:host], " ".join(first) + "\n", *lines[host + 1 :]])
    runs = [await one_run(text, changed) for _ in range(args.repeat)]
    steps = runs[0][0].keys()
    medians = {name: statistics.median(run[0][name] for run in runs) for name in steps}
    for name, value in medians.items():
        print(f"changed_{name} = {value:.1f} ms")
    print(f"changed_reload_owner_time = {sum(medians.values()):.1f} ms (target <= 200)")
    print(f"changed_reload_kernel_ops = {runs[0][1]}")
    print(f"noop_reload_owner_time = {statistics.median(r[2] for r in runs):.1f} ms")
    print(f"noop_reload_kernel_ops = {runs[0][3]} (target 0)")
    print(f"pairs = {sum(1 for _ in parse(text).pairs())}")
    print(f"load_1min = {os.getloadavg()[0]:.2f}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vs", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--per-vs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
