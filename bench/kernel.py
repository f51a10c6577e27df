"""Kernel-table benchmarks: reconcile time, and ipvsadm batch vs single calls (emulator).

Prints one `name = value unit` line per figure. `--full` runs all 10,000 single calls instead of
extrapolating from 200.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.ipvsadm_format import render_op
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

EMULATOR = Path(__file__).resolve().parent.parent / "tests" / "emulator" / "ipvsadm"


def build_table(services: int, dests: int, weight: int = 10) -> Table:
    """services x dests, VIPs in 192.0.2.0/24 (ports vary), real servers on 10.x."""
    table: dict[ServiceKey, ServiceEntry] = {}
    for s in range(services):
        key = ServiceKey(Protocol.TCP, f"192.0.2.{s % 250 + 1}", 1000 + s // 250)
        ds = {}
        for d in range(dests):
            dk = DestKey(f"10.{s // 250}.{s % 250}.{d + 1}", 8080)
            ds[dk] = Destination(dk, Forward.MASQ, weight)
        table[key] = ServiceEntry(Service(key, "wrr"), ds)
    return Table(table)


def change_weights(table: Table, every: int) -> Table:
    """The table with the weight of every `every`-th destination changed."""
    out: dict[ServiceKey, ServiceEntry] = {}
    i = 0
    for key, entry in table.services.items():
        ds = {}
        for dk, dest in entry.destinations.items():
            if i % every == 0:
                dest = Destination(dk, dest.forward, dest.weight + 1)
            ds[dk] = dest
            i += 1
        out[key] = ServiceEntry(entry.service, ds)
    return Table(out)


def bench_reconcile() -> None:
    actual = build_table(1000, 50)
    desired = change_weights(actual, 100)  # 1% changed
    reconcile(desired, actual, [])  # warm up
    runs = 5
    started = time.perf_counter()
    for _ in range(runs):
        ops = reconcile(desired, actual, list(actual.services))
    elapsed = (time.perf_counter() - started) / runs
    print(f"reconcile_1000x50_1pct_changed = {elapsed * 1000:.1f} ms")
    print(f"reconcile_1000x50_1pct_changed_ops = {len(ops)} ops")
    started = time.perf_counter()
    assert reconcile(actual, actual, list(actual.services)) == []
    print(f"reconcile_1000x50_unchanged = {(time.perf_counter() - started) * 1000:.1f} ms")


def populate_ops(table: Table) -> list[Op]:
    ops: list[Op] = []
    for key, entry in table.services.items():
        ops.append(AddService(entry.service))
        ops += [AddDestination(key, d) for d in entry.destinations.values()]
    return ops


def edit_ops(table: Table, weight: int) -> list[Op]:
    return [
        EditDestination(key, Destination(dk, Forward.MASQ, weight))
        for key, entry in table.services.items()
        for dk in entry.destinations
    ]


async def bench_ipvsadm(full: bool) -> None:
    table = build_table(200, 50)  # 10,000 destinations
    backend = IpvsadmBackend(str(EMULATOR), timeout=120)
    result = await backend.apply(populate_ops(table))
    assert result.ok, result.errors[:3]
    edits = edit_ops(table, 7)
    started = time.perf_counter()
    result = await backend.apply(edits)
    batch = time.perf_counter() - started
    assert result.ok, result.errors[:3]
    print(f"ipvsadm_batch_10000_weight_edits = {batch:.2f} s")
    started = time.perf_counter()
    read = await backend.read()
    print(f"ipvsadm_read_10000_destinations = {time.perf_counter() - started:.2f} s")
    assert all(d.weight == 7 for e in read.services.values() for d in e.destinations.values())

    count = len(edits) if full else 200
    singles = edit_ops(table, 9)[:count]
    started = time.perf_counter()
    for op in singles:
        done = await backend.run(render_op(op))
        assert done.returncode == 0, done.stderr
    elapsed = time.perf_counter() - started
    label = "measured" if full else f"extrapolated from {count}"
    print(f"ipvsadm_single_call_mean = {elapsed / count * 1000:.1f} ms")
    print(f"ipvsadm_10000_single_calls = {elapsed * len(edits) / count:.1f} s ({label})")
    print(f"ipvsadm_batch_speedup = {elapsed * len(edits) / count / batch:.0f} x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="run all 10,000 single calls")
    args = parser.parse_args()
    bench_reconcile()
    with tempfile.TemporaryDirectory(prefix="ipvswm-bench-") as tmp:
        os.environ["IPVSADM_EMU_STATE"] = str(Path(tmp) / "state.json")
        os.environ.pop("IPVSADM_EMU_LOG", None)
        os.environ.pop("IPVSADM_EMU_NO_IPVS", None)
        # The emulator's `#!/usr/bin/env python3` should find a fast interpreter (not a shim).
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
        asyncio.run(bench_ipvsadm(args.full))
    return 0


if __name__ == "__main__":
    sys.exit(main())
