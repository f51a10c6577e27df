"""Keepalived and ipvswm side by side on a real kernel (the VM tier), on the same real servers.

    python bench/long/vm_keepalived.py [--sizes 200,1000] [--window 60] [--reloads 5]

Boots the VM tier's QEMU VM (tests/kernel/vm.py) and runs this script inside with `--guest`: a
farm of real HTTP servers (bench/long/farm.py, one process) on 198.51.100.1-250 (a dummy device)
and ports 80, 81, ... (N servers: 250 addresses per port), in groups of 50 behind one VS each
(192.0.2.1:80, 192.0.2.2:80, ...). For each size N, one daemon after the other on an empty table:
  keepalived (Debian's package, checker only: `-C`, no VRRP), each real server with HTTP_GET,
      `inhibit_on_failure`, `retry 0`, delay_loop 5;
  ipvswm run with the real ipvsadm, Check.Interval=5, Config.AutoCheck=0 (reloads by SIGHUP only).
Each is started, waited for until every destination carries its weight, given one more interval,
and then measured:
  n<N>_<daemon>_cpu      CPU-s per minute over `--window` s: utime+stime (and the reaped
                         children's, e.g. ipvsadm runs) of the daemon and all its processes
  n<N>_<daemon>_pss      PSS (MB) summed over its processes (/proc/PID/smaps_rollup)
  n<N>_<daemon>_reload_p50|max   SIGHUP after the config file changed one weight -> the kernel
                         table shows it (polled with `ipvsadm -L -n -t VS`), over `--reloads`
  n<N>_<ratio>           ipvswm / keepalived for each figure
Under TCG everything is several times slower than on the host: compare the ratios. The guest's load
is printed with each size, the host's (`uptime`) before, during (every minute) and after the run.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.kernel import vm  # noqa: E402
from tests.support.daemon import DaemonProcess  # noqa: E402
from tests.support.daemon import wait_until  # noqa: E402

FARM = Path(__file__).resolve().parent / "farm.py"
IPVSADM = "/usr/sbin/ipvsadm"
ADDRESSES = 250  # 198.51.100.1-250
PER_VS = 50
INTERVAL = 5
WEIGHT = 10
SLOW = 600.0  # bound of every wait in the VM (TCG), never a measured figure


def sh(*cmd: str, stdin: str | None = None) -> str:
    """Run a command in the guest; fail loudly with its stderr."""
    done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def server(j: int) -> tuple[str, int]:
    """Real server j: (address, port)."""
    return f"198.51.100.{j % ADDRESSES + 1}", 80 + j // ADDRESSES


def vip(k: int) -> str:
    return f"192.0.2.{k + 1}"


# --- measuring processes ---------------------------------------------------------------------


def tree(pid: int) -> list[int]:
    """pid and its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime+cutime+cstime of these processes, in seconds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of these processes, summed, in MB."""
    kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                kb += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except OSError:
            continue
    return kb / 1024


def table_weights() -> dict[str, int]:
    """'RIP:PORT' -> weight of every destination in the kernel (VSs do not share servers)."""
    weights = {}
    for line in sh(IPVSADM, "-S", "-n").splitlines():
        words = line.split()
        if words[:1] == ["-a"]:
            weights[words[words.index("-r") + 1]] = int(words[words.index("-w") + 1])
    return weights


def kernel_weight(vs: str, rip: str) -> int | None:
    """The weight of one destination of one VS, from the kernel."""
    for m in re.finditer(r"->\s+([\d.]+:\d+)\s+\w+\s+(\d+)", sh(IPVSADM, "-L", "-n", "-t", vs)):
        if m.group(1) == rip:
            return int(m.group(2))
    return None


def guest_load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# --- the two daemons -------------------------------------------------------------------------


class Daemon(Protocol):
    name: str

    def start(self) -> None: ...
    def pid(self) -> int: ...
    def configure(self, weights: list[int]) -> None: ...
    def stop(self) -> None: ...
    def notes(self) -> list[str]: ...


class Keepalived:
    """keepalived -C (checkers only, no VRRP) with one virtual_server block per VS."""

    name = "keepalived"

    def __init__(self, tmp: Path, n: int) -> None:
        self.tmp, self.n = tmp, n
        self.conf = tmp / "keepalived.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.configure([WEIGHT] * n)

    def configure(self, weights: list[int]) -> None:
        out = ["global_defs {\n    router_id ipvswm_bench\n}\n"]
        for k in range(0, self.n, PER_VS):
            out.append(
                f"virtual_server {vip(k // PER_VS)} 80 {{\n    delay_loop {INTERVAL}\n"
                "    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n"
            )
            for j in range(k, min(k + PER_VS, self.n)):
                address, port = server(j)
                out.append(
                    f"    real_server {address} {port} {{\n        weight {weights[j]}\n"
                    "        inhibit_on_failure\n        HTTP_GET {\n"
                    "            url {\n                path /health\n"
                    "                status_code 200\n            }\n"
                    "            connect_timeout 5\n            retry 0\n"
                    "            delay_before_retry 1\n        }\n    }\n"
                )
            out.append("}\n")
        tmp = self.conf.with_suffix(".tmp")
        tmp.write_text("".join(out))
        os.replace(tmp, self.conf)

    def start(self) -> None:
        with open(self.tmp / "keepalived.out", "ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                [
                    "keepalived",
                    "--dont-fork",
                    "--check",
                    "-f",
                    str(self.conf),
                    f"--pid={self.tmp}/keepalived.pid",
                    f"--checkers_pid={self.tmp}/checkers.pid",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(SLOW)

    def notes(self) -> list[str]:
        return []


class Ipvswm:
    """`ipvswm run` with the real ipvsadm; reloads only by SIGHUP."""

    name = "ipvswm"

    def __init__(self, tmp: Path, n: int) -> None:
        self.n = n
        self.daemon = DaemonProcess(
            tmp,
            self.body([WEIGHT] * n),
            options={
                "IPVSADM": IPVSADM,
                "Log.Level": "1",  # the default: no line per check status change
                "Config.AutoCheck": "0",
                "Config.CheckPeriod": "3",
                "IPVS.ResyncPeriod": "10",
                "Check.Interval": str(INTERVAL),
                "Check.Timeout.Connect": "5",
                "Check.Timeout.Response": "5",
            },
        )

    def body(self, weights: list[int]) -> str:
        lines = [
            f"! vs{k} {vip(k)}:80 /health scheduler=wrr,method=nat"
            for k in range((self.n + PER_VS - 1) // PER_VS)
        ]
        for j in range(self.n):
            address, port = server(j)
            lines.append(f"rs{j} {address}:{port} vs{j // PER_VS}={weights[j]}")
        return "\n".join(lines) + "\n"

    def configure(self, weights: list[int]) -> None:
        self.daemon.write_config(self.body(weights))

    def start(self) -> None:
        self.daemon.start(timeout=SLOW)

    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def stop(self) -> None:
        self.daemon.stop(timeout=SLOW)

    def notes(self) -> list[str]:
        """The daemon's log lines about the reloads (where a slow one spent its time)."""
        lines = self.daemon.log_text().splitlines()
        return [line for line in lines if "reload" in line][-8:]


@dataclass
class Figures:
    cpu: float  # CPU-s per minute
    pss: float  # MB
    reloads: list[float]  # s


def reached(predicate: Callable[[], bool], timeout: float, step: float) -> bool:
    """Poll until predicate() holds (True) or `timeout` s passed (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def measure(daemon: Daemon, n: int, window: float, reloads: int) -> Figures:
    """Start, wait for the full table and one interval, then CPU, PSS and SIGHUP reloads."""
    sh(IPVSADM, "-C")
    started = time.monotonic()
    daemon.start()
    wanted = {"{}:{}".format(*server(j)) for j in range(n)}
    seen: set[str] = set()  # once each: on a loaded host a check now and then times out

    def full() -> bool:
        seen.update(r for r, w in table_weights().items() if w == WEIGHT)
        return seen >= wanted

    wait_until(full, SLOW, f"{daemon.name}: every destination at weight {WEIGHT}", step=2.0)
    print(f"# n{n} {daemon.name}: table full {time.monotonic() - started:.1f} s after start")
    time.sleep(INTERVAL + 1)  # one whole interval of checks before the window
    pids = tree(daemon.pid())
    cpu0, t0 = cpu_seconds(pids), time.monotonic()
    time.sleep(window)  # the measured window
    pids = tree(daemon.pid())
    cpu = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0) * 60
    pss = pss_mb(pids)
    up = sum(1 for r, w in table_weights().items() if r in wanted and w == WEIGHT)
    print(f"# n{n} {daemon.name}: {len(pids)} processes, {up} of {n} destinations up")
    print(f"n{n}_{daemon.name}_cpu = {cpu:.2f} CPU-s/min (guest load {guest_load()})")
    print(f"n{n}_{daemon.name}_pss = {pss:.1f} MB")
    latencies = []
    rip = "{}:{}".format(*server(0))
    weight = WEIGHT
    for r in range(reloads):
        # The weight shows only while the server is up (inhibit_on_failure, or ipvswm's 0).
        if not reached(lambda w=weight: kernel_weight(f"{vip(0)}:80", rip) == w, 120, 0.5):  # type: ignore[misc]
            print(f"# n{n} {daemon.name}: {rip} down before reload {r}; not timed")
            continue
        weight = 2 * WEIGHT if weight == WEIGHT else WEIGHT
        daemon.configure([weight] + [WEIGHT] * (n - 1))
        time.sleep(1.0)  # the file is written and closed well before the signal
        sent = time.monotonic()
        os.kill(daemon.pid(), signal.SIGHUP)
        if reached(lambda w=weight: kernel_weight(f"{vip(0)}:80", rip) == w, 120, 0.005):  # type: ignore[misc]
            latencies.append(time.monotonic() - sent)
        else:
            print(f"# n{n} {daemon.name}: weight {weight} not in the kernel 120 s after SIGHUP")
        time.sleep(2.0)
    if latencies:
        print(f"n{n}_{daemon.name}_reload_p50 = {statistics.median(latencies) * 1000:.0f} ms")
        print(f"n{n}_{daemon.name}_reload_max = {max(latencies) * 1000:.0f} ms")
    daemon.stop()
    for line in daemon.notes():
        print(f"# {daemon.name} log: {line}")
    return Figures(cpu, pss, latencies)


def guest(args: argparse.Namespace) -> int:
    for module in ("ip_vs", "ip_vs_wrr", "dummy"):
        sh("modprobe", module)
    biggest = max(args.sizes)
    sh("ip", "link", "add", "farm0", "type", "dummy")
    batch = "".join(
        f"addr add 198.51.100.{i}/32 dev farm0\n" for i in range(1, min(biggest, ADDRESSES) + 1)
    )
    sh("ip", "-batch", "-", stdin=batch)
    sh("ip", "link", "set", "farm0", "up")
    ports = ",".join(str(80 + p) for p in range((biggest + ADDRESSES - 1) // ADDRESSES))
    first = ["--first", "198.51.100.1", "--count", str(min(biggest, ADDRESSES)), "--ports", ports]
    farm = subprocess.Popen(  # noqa: S603
        [sys.executable, str(FARM), *first],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert farm.stdout is not None and farm.stdin is not None
    if farm.stdout.readline().strip() != "ready":
        raise SystemExit("the farm did not start")
    version = subprocess.run(
        ["keepalived", "--version"], capture_output=True, text=True, check=False
    )
    named = (version.stderr + version.stdout).strip().splitlines()[0]
    print(f"# {named}; kernel {os.uname().release}")
    base = Path("/tmp/vmbench")
    try:
        for n in args.sizes:
            got: dict[str, Figures] = {}
            makers: dict[str, Callable[[Path, int], Daemon]] = {
                "keepalived": Keepalived,
                "ipvswm": Ipvswm,
            }
            for name, make in makers.items():
                tmp = base / f"{name}-{n}"
                tmp.mkdir(parents=True)
                got[name] = measure(make(tmp, n), n, args.window, args.reloads)
            report(n, got["keepalived"], got["ipvswm"])
    finally:
        # The farm holds the job's output pipe: the VM powers off only once it is gone.
        farm.stdin.close()
        farm.kill()
        farm.wait(60)
    return 0


def report(n: int, ka: Figures, wm: Figures) -> None:
    """The ratios ipvswm / keepalived (each daemon's figures were printed as measured)."""
    print(f"# n{n}: guest load {guest_load()} (1/5/15 min), window CPU over all processes")
    print(f"n{n}_cpu_ratio = {wm.cpu / max(ka.cpu, 1e-9):.2f} x (ipvswm / keepalived)")
    print(f"n{n}_pss_ratio = {wm.pss / max(ka.pss, 1e-9):.2f} x")
    if ka.reloads and wm.reloads:
        ratio = statistics.median(wm.reloads) / max(statistics.median(ka.reloads), 1e-9)
        print(f"n{n}_reload_p50_ratio = {ratio:.2f} x")


def host_load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def with_append(make: Callable[..., list[str]], extra: str) -> Callable[..., list[str]]:
    """vm.qemu_command with `extra` on the kernel command line (`--append`, no_timer_check).

    On a heavily loaded host (load 25-35 on 2 cores) the guest kernel panicked at boot, twice in
    three boots: "IO-APIC + timer doesn't work!" (its timer check runs out of time under TCG).
    """

    def command(*args: object, **kwargs: object) -> list[str]:
        cmd = make(*args, **kwargs)
        cmd[cmd.index("-append") + 1] += f" {extra}"
        return cmd

    return command


def host(args: argparse.Namespace) -> int:
    """Boot the VM and run the guest side in it; print the host's load around and during it."""
    if args.append:
        vm.qemu_command = with_append(vm.qemu_command, args.append)
    done = threading.Event()

    def every_minute() -> None:
        while not done.wait(60):
            print(f"# host load {host_load()}", flush=True)

    print(f"# host load before {host_load()} (1/5/15 min; 2 cores, shared)", flush=True)
    threading.Thread(target=every_minute, daemon=True).start()
    sizes = ",".join(map(str, args.sizes))
    command = [sys.executable, "-u", str(Path(__file__).resolve()), "--guest", "--sizes", sizes]
    command += ["--window", str(args.window), "--reloads", str(args.reloads)]
    status = vm.main(["--timeout", str(args.timeout), "--cwd", str(REPO), "--", *command])
    done.set()
    print(f"# host load after {host_load()}", flush=True)
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[200, 1000]
    )
    parser.add_argument("--window", type=float, default=60.0, help="CPU window per daemon (s)")
    parser.add_argument("--reloads", type=int, default=5, help="SIGHUP reloads per daemon")
    parser.add_argument("--timeout", type=float, default=3600.0, help="VM timeout (s)")
    parser.add_argument("--append", default="", help="more kernel arguments ('' for none)")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if max(args.sizes) > ADDRESSES * 20:
        parser.error(f"at most {ADDRESSES * 20} servers")
    return guest(args) if args.guest else host(args)


if __name__ == "__main__":
    sys.exit(main())
