"""Benchmark: start-up of `--hosts` hosts x `--vs` VSs to all weights (issue 16 goal 2).

The real `ipvswm run` on the ipvsadm emulator with an empty table and no DB, Check.Interval=5,
`tcp://` checks (one checker per host) against the long benches' farm (bench/long/farm.py: one
address per host from 127.78.0.1 on, port 18090, one process per 8,000 addresses, as this
machine's hard open-files limit is 20,000). Times from the daemon's spawn, from the emulator's
invocation log:
the start of the first `-R` call (the table in place), and the start of the `-R` call after which
every pair has its full weight; `ipvsadm_processes` counts every call of the emulator up to then
(reads included). Default 2,500 hosts x 2 VSs = 5,000 pairs; `--hosts 25000` for 50,000.

Prints `startup_pairs`, `startup_table_in_place` (s), `startup_all_weights` (s),
`startup_ipvsadm_processes`, `startup_changing_calls`, `load_1min`.
For the figure before issue 16, run the same script with `PYTHONPATH=/work/main/src`.

Usage: python bench/startup.py [--hosts 2500] [--vs 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "bench" / "long"))

from farm import Farm  # noqa: E402
from farm import addresses  # noqa: E402
from farm import raise_fd_limit  # noqa: E402
from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.daemon import wait_until  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402

from detect import InvocationLog  # noqa: E402
from detect import batch_weights  # noqa: E402

FIRST = "127.78.0.1"
PORT = 18090
FULL = 10


def vip(i: int) -> str:
    return f"192.0.2.{20 + i // 1000}:{1000 + i % 1000}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=2500)
    parser.add_argument("--vs", type=int, default=2)
    args = parser.parse_args()
    raise_fd_limit()
    hosts = list(addresses(FIRST, args.hosts))
    farm = Farm(hosts, PORT)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), [f"{host}:{PORT}" for host in hosts], args.vs)
    finally:
        farm.close()


def run(tmp: Path, servers: list[str], vss: int) -> None:
    emu = Emulator(tmp / "emu")
    if emu.real:
        raise SystemExit("needs the emulator (unset IPVSWM_TEST_IPVSADM)")
    lines = [f"! v{i} {vip(i)} tcp://" for i in range(vss)]
    weights = " ".join(f"v{i}={FULL}" for i in range(vss))
    lines += [f"h{n} {server} {weights}" for n, server in enumerate(servers)]
    options = {
        "IPVSADM": emu.binary,
        "Log.Level": "3",
        "Check.Interval": "5",
        "Check.Timeout.Connect": "1",
        "Ramping.TriggerTime": "86400",
        "IPVS.ResyncPeriod": "60",
    }
    (tmp / "daemon").mkdir()
    daemon = DaemonProcess(tmp / "daemon", "\n".join(lines) + "\n", env=emu.env, options=options)
    log = InvocationLog(emu.log)
    wanted = {(vip(i), server) for i in range(vss) for server in servers}
    seen: dict[tuple[str, str], int] = {}
    done: list[float] = []
    calls = 0
    changing = 0
    first_restore: list[float] = []

    def all_full() -> bool:
        nonlocal calls, changing
        for inv in log.entries[calls:] if log.refresh() else []:
            calls += 1
            if inv.changing:
                changing += 1
                if not first_restore:
                    first_restore.append(inv.time)
            for vs, rs, weight in batch_weights(inv):
                seen[(vs, rs)] = weight
            if not done and all(seen.get(key) == FULL for key in wanted):
                done.append(inv.time)
        return bool(done)

    spawned = time.time()
    daemon.start(timeout=300)
    try:
        wait_until(
            all_full,
            float(os.environ.get("BENCH_TIMEOUT", "300")),
            "every pair at full weight",
            step=0.05,
        )
    finally:
        try:
            daemon.stop(timeout=120)
        except subprocess.TimeoutExpired:
            daemon.kill()
        full = sum(1 for key in wanted if seen.get(key) == FULL)
        print(f"# {full} of {len(wanted)} pairs at full weight, {calls} ipvsadm calls")
        if os.environ.get("BENCH_VERBOSE"):
            keep = Path(os.environ.get("BENCH_KEEP_LOG", "/tmp/ipvswm-startup.log"))
            keep.write_text(daemon.log_text())
            print(f"# daemon log kept in {keep}")
            for inv in log.entries[:calls]:
                at = inv.time - log.entries[0].time
                print(f"# {at:7.2f} s {' '.join(inv.argv)} {len(inv.batch_lines())} lines")
    print(f"startup_pairs = {len(wanted)}")
    first_call = log.entries[0].time
    print(f"startup_to_first_ipvsadm_call = {first_call - spawned:.2f} s (process start, reads)")
    print(f"startup_table_in_place = {first_restore[0] - first_call:.2f} s (after the first call)")
    print(f"startup_all_weights = {done[0] - first_call:.2f} s (after the first call)")
    print(f"startup_all_weights_from_spawn = {done[0] - spawned:.2f} s")
    print(f"startup_ipvsadm_processes = {calls}")
    print(f"startup_changing_calls = {changing}")
    print(f"load_1min = {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
