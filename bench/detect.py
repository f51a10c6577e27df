"""Benchmark: daemon-level figures (issue 5) with the real `ipvswm run`, emulator and real servers.

Settings: Check.Interval=1, Check.Timeout.Connect/Response=0.5, Check.Rise=Fall=1,
Ramping.TriggerTime=86400 (no ramp), IPVS.ResyncPeriod=10 (the default; `--resync-period`).
`--servers` real servers on 127.0.0.160+ each sit behind their own VS (192.0.2.160+) next to a
shared, always healthy anchor server (127.0.0.199), so no VS ever falls to its sorry server and the
trials run in parallel independently; within a round they are staggered at random, so that their
phases against the checkers' 1 s cycles do not repeat from round to round. Times come from the
emulator's invocation log: the start time of the `ipvsadm -R` call whose batch sets the
destination's weight.

Prints one `name = value unit` line per figure:
  failure_detection_p50|p95|max   server starts failing (`--mode failing`: HTTP 500, or
                                  `refusing`: connect refused) -> its `-w 0` batch runs
  recovery_p50|p95|max            server healthy again -> its full-weight batch runs
  steady_changing_calls_per_minute, steady_read_calls_per_minute, steady_resyncs_per_minute
                                  all healthy, over `--steady` seconds (target 0 changing calls)
  noop_reload_changing_calls      identical config rewritten -> "config reload applied" -> 2 s
  noop_reload_seen_after          file rewritten -> that log line (includes Config.CheckPeriod)
  restart_changing_calls          SIGTERM, start, every checker reported, one resync (target 0)
  restart_to_running, restart_to_all_checks_reported

Usage: python bench/detect.py [--trials 20] [--servers 10] [--mode failing|refusing]
                              [--steady 20] [--resync-period 10]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.daemon import wait_until  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from tests.support.emulator import Invocation  # noqa: E402
from tests.support.realservers import ThreadedRealServer  # noqa: E402
from tests.support.realservers import ThreadedRealServers  # noqa: E402

FIRST_ADDRESS = 160  # real servers on 127.0.0.160.., VSs on 192.0.2.160..
ANCHOR = "127.0.0.199"
FULL = 10
READS = {"-S", "--save", "-L", "-l", "--list"}


class InvocationLog:
    """The emulator's invocation log, read incrementally (the bench's own reads are not in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[Invocation] = []
        self._offset = 0

    def refresh(self) -> list[Invocation]:
        """Read the complete lines appended since the last call; every entry so far."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return self.entries
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].decode("utf-8").splitlines():
            if line.strip():
                self.entries.append(Invocation(**json.loads(line)))
        return self.entries

    def between(self, start: float, end: float = float("inf")) -> list[Invocation]:
        return [inv for inv in self.refresh() if start <= inv.time < end]

    def weight_set(self, vip: str, rip: str, weight: int, after: float) -> float | None:
        """Start time of the first batch after `after` that sets vip/rip to `weight`."""
        for inv in self.refresh():
            if inv.time >= after and (vip, rip, weight) in batch_weights(inv):
                return inv.time
        return None


def batch_weights(inv: Invocation) -> set[tuple[str, str, int]]:
    """(VIP:PORT, RIP:PORT, weight) of every -a/-e line of a -R batch."""
    out = set()
    for line in inv.batch_lines() if inv.command in ("-R", "--restore") else []:
        words = line.split()
        if words[0] in ("-a", "-e") and "-t" in words and "-w" in words:
            vip, rip = words[words.index("-t") + 1], words[words.index("-r") + 1]
            out.add((vip, rip, int(words[words.index("-w") + 1])))
    return out


def is_read(inv: Invocation) -> bool:
    return inv.command in READS


def summary(name: str, values: list[float], note: str) -> None:
    """p50/p95/max lines in milliseconds."""
    q = statistics.quantiles(values, n=100, method="inclusive")
    print(f"{name}_p50 = {q[49] * 1000:.0f} ms ({note})")
    print(f"{name}_p95 = {q[94] * 1000:.0f} ms")
    print(f"{name}_max = {max(values) * 1000:.0f} ms")


class Site:
    """The real servers, the emulator and the daemon of one bench run."""

    def __init__(self, tmp: Path, farm: ThreadedRealServers, args: argparse.Namespace) -> None:
        self.servers = [farm.start(f"127.0.0.{FIRST_ADDRESS + i}") for i in range(args.servers)]
        self.anchor = farm.start(ANCHOR)
        self.emu = Emulator(tmp / "emu")
        if self.emu.real:
            raise SystemExit("bench/detect.py needs the emulator (unset IPVSWM_TEST_IPVSADM)")
        self.log = InvocationLog(self.emu.log)
        self.resync_period: float = args.resync_period
        options = {
            "IPVSADM": self.emu.binary,
            "Log.Level": "6",  # every check result, so the restart can wait for each checker
            "Check.Interval": "1",
            "Check.Timeout.Connect": "0.5",
            "Check.Timeout.Response": "0.5",
            "Check.Rise": "1",
            "Check.Fall": "1",
            "Ramping.TriggerTime": "86400",
            "IPVS.ResyncPeriod": str(args.resync_period),
            "Config.CheckPeriod": "0.2",  # how often the file is polled (reload detection only)
        }
        (tmp / "daemon").mkdir()
        self.daemon = DaemonProcess(tmp / "daemon", self.body(), env=self.emu.env, options=options)

    def body(self) -> str:
        lines = [f"! t{i} {self.vip(i)} /health" for i in range(len(self.servers))]
        lines += [f"rs{i} {self.rip(s)} t{i}={FULL}" for i, s in enumerate(self.servers)]
        tags = " ".join(f"t{i}={FULL}" for i in range(len(self.servers)))
        lines.append(f"anchor {self.rip(self.anchor)} {tags}")
        return "\n".join(lines) + "\n"

    @staticmethod
    def vip(i: int) -> str:
        return f"192.0.2.{FIRST_ADDRESS + i}:80"

    @staticmethod
    def rip(server: ThreadedRealServer) -> str:
        return f"{server.address}:{server.port}"

    def targets(self) -> list[str]:
        """How the daemon names each checker in its log (`check ADDR:PORT /health: ...`)."""
        return [f"check {self.rip(s)} /health: " for s in [*self.servers, self.anchor]]

    def table_weights(self) -> dict[tuple[str, str], int]:
        """(VIP, RIP) -> weight from `-S -n`, run without the invocation log (not counted)."""
        env = {k: v for k, v in self.emu.full_env().items() if k != "IPVSADM_EMU_LOG"}
        out = subprocess.run(  # noqa: S603 (the emulator, arguments as a list)
            [self.emu.binary, "-S", "-n"], env=env, capture_output=True, text=True, check=True
        ).stdout
        weights = {}
        for line in out.splitlines():
            words = line.split()
            if words[:1] == ["-a"]:
                weights[(words[2], words[4])] = int(words[words.index("-w") + 1])
        return weights

    def all_full(self) -> bool:
        weights = self.table_weights()
        wanted = [(self.vip(i), self.rip(s)) for i, s in enumerate(self.servers)]
        wanted += [(self.vip(i), self.rip(self.anchor)) for i in range(len(self.servers))]
        return all(weights.get(key) == FULL for key in wanted)


def wait_all(
    pending: dict[int, float], found: Callable[[int, float], float | None], what: str
) -> dict[int, float]:
    """For each server i started at pending[i], wait until found(i, start) gives a time."""
    done: dict[int, float] = {}

    def check() -> bool:
        for i, start in pending.items():
            if i not in done and (when := found(i, start)) is not None:
                done[i] = when - start
        return len(done) == len(pending)

    wait_until(check, 15.0, what)
    return done


def stagger(servers: int) -> None:
    """A random pause between two trials' starts (about 1 s per round in all)."""
    # Without it every round would start at the same point of each checker's 1 s cycle.
    time.sleep(random.uniform(0.0, 2.0 / servers))


def run_trials(site: Site, trials: int, mode: str) -> tuple[list[float], list[float]]:
    """Fail and recover the servers in parallel rounds until `trials` of each were measured."""
    detection: list[float] = []
    recovery: list[float] = []
    while len(detection) < trials:
        batch = list(enumerate(site.servers))[: trials - len(detection)]
        failed: dict[int, float] = {}
        for i, server in batch:
            stagger(len(batch))
            failed[i] = time.time()
            server.set_mode(mode)
        got = wait_all(
            failed,
            lambda i, t: site.log.weight_set(site.vip(i), site.rip(site.servers[i]), 0, t),
            "weight 0 after failure",
        )
        detection += got.values()
        healed: dict[int, float] = {}
        for i, server in batch:
            stagger(len(batch))
            healed[i] = time.time()
            server.set_mode("healthy")
        got = wait_all(
            healed,
            lambda i, t: site.log.weight_set(site.vip(i), site.rip(site.servers[i]), FULL, t),
            "full weight after recovery",
        )
        recovery += got.values()
    return detection, recovery


def steady_state(site: Site, seconds: float) -> None:
    """Changing and read calls per minute with every server healthy."""
    wait_until(site.all_full, 15.0, "every destination at full weight")
    start = time.time()
    time.sleep(seconds)  # the measuring window itself
    calls = site.log.between(start, time.time())
    scale = 60.0 / seconds
    changing = sum(inv.changing for inv in calls)
    reads = sum(is_read(inv) for inv in calls)
    resyncs = sum(inv.command in ("-S", "--save") for inv in calls)
    print(f"steady_changing_calls_per_minute = {changing * scale:.1f} calls/min (target 0)")
    print(f"steady_read_calls_per_minute = {reads * scale:.1f} calls/min (-S -n and -L -n)")
    print(f"steady_resyncs_per_minute = {resyncs * scale:.1f} resyncs/min")


def noop_reload(site: Site, settle: float) -> None:
    """Rewrite the config unchanged; count the changing calls up to `settle` s after it applied."""
    offset = site.daemon.log_size()
    start = time.time()
    site.daemon.write_config(site.daemon.body)
    site.daemon.wait_log("config reload applied", offset=offset)
    seen = time.time()
    time.sleep(settle)  # two check intervals: a restarted checker would have reported by now
    changing = [inv for inv in site.log.between(start) if inv.changing]
    line = next(
        ln for ln in site.daemon.log_text(offset).splitlines() if "config reload applied" in ln
    )
    print(f"noop_reload_changing_calls = {len(changing)} calls (target 0)")
    print(f"noop_reload_seen_after = {(seen - start) * 1000:.0f} ms (Config.CheckPeriod=0.2)")
    print(f"# {line.split('|', 2)[-1]}")


def restart(site: Site) -> None:
    """SIGTERM, start again, wait for every checker and one resync; count changing calls."""
    before = site.table_weights()
    code = site.daemon.stop()
    start = time.time()
    offset = site.daemon.log_size()
    site.daemon.start()
    running = time.time()
    wanted = site.targets()
    wait_until(
        lambda: all(t in site.daemon.log_text(offset) for t in wanted), 15.0, "every checker"
    )
    reported = time.time()
    # One periodic resync after every checker reported: its -L read, then time for its converge.
    wait_until(
        lambda: any(inv.command == "-L" for inv in site.log.between(reported)),
        site.resync_period + 10.0,
        "a resync",
    )
    time.sleep(1.0)  # a correction after that read would be logged within this
    changing = [inv for inv in site.log.between(start) if inv.changing]
    same = site.table_weights() == before
    print(f"restart_changing_calls = {len(changing)} calls (target 0; SIGTERM exit {code})")
    print(f"restart_table_unchanged = {int(same)} bool")
    print(f"restart_to_running = {(running - start) * 1000:.0f} ms")
    print(f"restart_to_all_checks_reported = {(reported - start) * 1000:.0f} ms")


@contextmanager
def site_running(args: argparse.Namespace) -> Iterator[Site]:
    with tempfile.TemporaryDirectory(prefix="ipvswm-detect-") as tmp, ThreadedRealServers() as farm:
        site = Site(Path(tmp), farm, args)
        site.daemon.start()
        try:
            wait_until(site.all_full, 20.0, "every destination at full weight")
            yield site
        finally:
            if site.daemon.proc is not None:
                site.daemon.stop()


def main(args: argparse.Namespace) -> None:
    started = time.monotonic()
    with site_running(args) as site:
        detection, recovery = run_trials(site, args.trials, args.mode)
        note = f"mode {args.mode}, {len(detection)} trials, {len(site.servers)} in parallel"
        summary("failure_detection", detection, note)
        summary("recovery", recovery, "to full weight, no ramp")
        steady_state(site, args.steady)
        noop_reload(site, 2.0)
        restart(site)
    print(f"bench_wall_time = {time.monotonic() - started:.1f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="failures (and recoveries) timed")
    parser.add_argument("--servers", type=int, default=10, help="servers failed in parallel")
    parser.add_argument("--mode", choices=("failing", "refusing"), default="failing")
    parser.add_argument("--steady", type=float, default=20.0, help="steady-state window (s)")
    parser.add_argument("--resync-period", type=float, default=10.0, help="IPVS.ResyncPeriod")
    args = parser.parse_args()
    if not 1 <= args.servers <= 39 or args.trials < 2:
        parser.error("--servers must be 1..39 (127.0.0.160-198) and --trials at least 2")
    return args


if __name__ == "__main__":
    main(parse_args())
