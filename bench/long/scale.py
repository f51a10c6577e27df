"""Before-figures for issue 16 goals 0 and 3: the real daemon with N checkers on the host.

    python bench/long/scale.py [--sizes 200,1000,10000,25000] [--window 60] [--probes 20]

For each size N (checkers; N/2 hosts x 2 VSs, each VS with its own check URL, so every pair has
its own checker) the real `ipvswm run` drives the ipvsadm emulator (tests/emulator/ipvsadm) at
Check.Interval=5 (Check.Timeout.Connect=1, .Response=3, rise = fall = 1), against a farm of real
HTTP servers (bench/long/farm.py: one process per 8,000 addresses, as this machine's hard open-files
limit is 20,000) on N/2 addresses from 127.77.0.1 on. The open-files limits of the farm and of the
daemon are raised as far as allowed (the bench raises its own before starting the daemon).
Prints one `name = value unit` line per figure, with the machine's load (`/proc/loadavg`):

  n<N>_startup_to_full_table   daemon start -> every destination has had its weight (emulator)
  n<N>_cpu, n<N>_cores         CPU of the daemon and its children (ipvsadm runs) over `--window`
                               s of steady state: CPU-s per minute, and cores (CPU-s / s)
  n<N>_rss, n<N>_pss           the daemon's memory at the end of the window (MB)
  n<N>_rss_per_checker, n<N>_cpu_ms_per_checker_minute   the same, per checker
  n<N>_steady_changing_calls, n<N>_steady_read_calls   emulator invocations in the window
  n<N>_farm_cores              the farm's CPU (for reference: it shares the machine's cores)
  n<N>_detection_p50|p99|max   `--probes` hosts start answering 500, at random points of one
                               interval: -> start of the `ipvsadm -R` batch giving weight 0
                               (goal 3: p99 <= interval + timeout + 0.5 s = 8.5 s)
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

from farm import Farm  # noqa: E402
from farm import addresses  # noqa: E402
from farm import raise_fd_limit  # noqa: E402
from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.daemon import wait_until  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from vm_keepalived import cpu_seconds  # noqa: E402
from vm_keepalived import pss_mb  # noqa: E402
from vm_keepalived import tree  # noqa: E402

from detect import InvocationLog  # noqa: E402
from detect import is_read  # noqa: E402

FIRST = "127.77.0.1"
VIPS = ("192.0.2.1:80", "192.0.2.2:80")
WEIGHT = 10
INTERVAL = 5.0
SLOW = 900.0  # bound of the waits for a large daemon's start, never a figure


def load() -> str:
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def body(hosts: list[str], port: int) -> str:
    lines = [f"! a {VIPS[0]} /a", f"! b {VIPS[1]} /b"]
    lines += [f"h{i} {address}:{port} a={WEIGHT} b={WEIGHT}" for i, address in enumerate(hosts)]
    return "\n".join(lines) + "\n"


def full_weights(emu: Emulator) -> set[str]:
    """The destinations carrying WEIGHT, read without the invocation log (not counted)."""
    env = {k: v for k, v in emu.full_env().items() if k != "IPVSADM_EMU_LOG"}
    out = subprocess.run(  # noqa: S603 (the emulator, arguments as a list)
        [emu.binary, "-S", "-n"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return {line for line in out.splitlines() if line.endswith(f"-w {WEIGHT}")}


def wait_full(emu: Emulator, n: int) -> None:
    """Until each of the n destinations has carried its weight at least once.

    Not all at one moment: on a heavily loaded machine a check now and then times out, so some
    destination is always at 0 for an interval.
    """
    seen: set[str] = set()

    def reached() -> bool:
        seen.update(full_weights(emu))
        return len(seen) >= n

    wait_until(reached, SLOW, "every destination at its weight once", step=2.0)


def one_size(
    n: int, farm: Farm, hosts: list[str], port: int, args: argparse.Namespace
) -> tuple[float, float]:
    """Run the daemon with n checkers; print its figures; (RSS MB, CPU-s/min)."""
    hosts = hosts[: n // 2]
    with tempfile.TemporaryDirectory(prefix=f"ipvswm-scale-{n}-") as tmp:
        emu = Emulator(Path(tmp) / "emu")
        log = InvocationLog(emu.log)
        daemon = DaemonProcess(
            Path(tmp),
            body(hosts, port),
            env=emu.env,
            options={
                "IPVSADM": emu.binary,
                "Log.Level": "5",  # check status changes (none in steady state): shows a miss
                "Check.Interval": str(INTERVAL),
                "Check.Timeout.Connect": "1",
                "Check.Timeout.Response": "3",
                "IPVS.ResyncPeriod": "10",
                "Config.CheckPeriod": "3",
                "Ramping.TriggerTime": "86400",
            },
        )
        started = time.monotonic()
        daemon.start(timeout=SLOW)
        try:
            wait_full(emu, n)
            print(f"n{n}_startup_to_full_table = {time.monotonic() - started:.1f} s ({load()})")
            time.sleep(INTERVAL + 1)  # one whole interval of checks before the window
            assert daemon.proc is not None
            pid = daemon.proc.pid
            cpu0, farm0 = cpu_seconds(tree(pid)), cpu_seconds(farm.pids())
            t0 = time.time()
            time.sleep(args.window)  # the measured window
            wall = time.time() - t0
            cpu, farm_cpu = cpu_seconds(tree(pid)) - cpu0, cpu_seconds(farm.pids()) - farm0
            calls = log.between(t0, t0 + wall)
            rss, pss = rss_mb(pid), pss_mb([pid])
            print(f"n{n}_cpu = {cpu / wall * 60:.2f} CPU-s/min ({load()})")
            print(f"n{n}_cores = {cpu / wall:.3f} cores")
            print(f"n{n}_cpu_ms_per_checker_minute = {cpu / wall * 60 / n * 1000:.2f} ms")
            print(f"n{n}_rss = {rss:.1f} MB")
            print(f"n{n}_pss = {pss:.1f} MB")
            print(f"n{n}_rss_per_checker = {rss * 1024 / n:.2f} KB")
            changing = sum(inv.changing for inv in calls)
            print(f"n{n}_steady_changing_calls = {changing} calls in {wall:.0f} s (target 0)")
            print(f"n{n}_steady_read_calls = {sum(is_read(i) for i in calls)} calls")
            zero = n - len(full_weights(emu))
            print(f"n{n}_destinations_not_at_weight = {zero} (after the window: failed checks)")
            print(f"n{n}_farm_cores = {farm_cpu / wall:.3f} cores")
            detection(n, farm, hosts, port, log, args.probes, daemon)
            return rss, cpu / wall * 60
        finally:
            daemon.stop(timeout=120)


def detection(
    n: int,
    farm: Farm,
    hosts: list[str],
    port: int,
    log: InvocationLog,
    probes: int,
    daemon: DaemonProcess,
) -> None:
    """Fail `probes` hosts at random points of one interval; each one's time to weight 0."""
    chosen = [hosts[i * len(hosts) // probes] for i in range(probes)]
    offset = daemon.log_size()
    failed: dict[str, float] = {}
    for address in chosen:
        time.sleep(random.uniform(0, 2 * INTERVAL / probes))  # random phases against the checks
        failed[address] = time.time()
        farm.tell("fail", address)
    found: dict[str, float] = {}

    def all_found() -> bool:
        for address, at in failed.items():
            if address not in found:
                when = log.weight_set(VIPS[0], f"{address}:{port}", 0, at)
                if when is not None:
                    found[address] = when - at
        return len(found) == len(failed)

    try:
        wait_until(all_found, 120.0, "weight 0 for every failed host", step=0.1)
    except AssertionError:
        missed = sorted(set(chosen) - set(found))
        print(f"n{n}_detection_missed = {len(missed)} of {probes} probes (no weight 0 in 120 s)")
        text = daemon.log_text(offset)
        for address in missed[:3]:
            lines = [ln for ln in text.splitlines() if f"{address}:" in ln]
            print(f"# {address}: {len(lines)} log lines; last: {lines[-3:]}")
    for address in chosen:
        farm.tell("heal", address)
    times = sorted(found.values())
    if len(times) < 2:
        return
    q = statistics.quantiles(times, n=100, method="inclusive")
    note = f"{len(times)} probes, status 500, limit 8.5 s; {load()}"
    print(f"n{n}_detection_p50 = {q[49]:.2f} s ({note})")
    print(f"n{n}_detection_p99 = {q[98]:.2f} s")
    print(f"n{n}_detection_max = {times[-1]:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[200, 1000, 10000]
    )
    parser.add_argument("--window", type=float, default=60.0, help="steady-state window (s)")
    parser.add_argument("--probes", type=int, default=20, help="failures timed per size")
    parser.add_argument("--port", type=int, default=18080, help="the farm's port")
    args = parser.parse_args()
    # The daemon (a child) inherits this limit and raises its soft limit to it.
    limit = raise_fd_limit()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(f"# open-files limit {soft} (asked {limit}); {load()}; 2 cores, shared")
    hosts = list(addresses(FIRST, max(args.sizes) // 2))
    farm = Farm(hosts, args.port)
    try:
        before: tuple[int, float, float] | None = None
        for n in args.sizes:
            rss, cpu = one_size(n, farm, hosts, args.port, args)
            if before is not None and n > before[0]:
                m, rss0, cpu0 = before
                per = f"n{n}_vs_n{m}"
                print(f"{per}_rss_per_added_checker = {(rss - rss0) * 1024 / (n - m):.2f} KB")
                print(f"{per}_cpu_per_added_checker = {(cpu - cpu0) / (n - m) * 1000:.2f} ms/min")
            before = (n, rss, cpu)
    finally:
        farm.close()


if __name__ == "__main__":
    main()
