"""Benchmark of health checks: CPU per check of the clients, and checkers at scale.

A loopback farm (a minimal asyncio HTTP server on 127.0.0.40-49, in a separate process so its CPU
is not counted) answers every check. Only the checking process's CPU (user + system, from
getrusage) is counted; on loopback the kernel charges it both ends of each TCP handshake. Prints one
`name = value unit` per line:

  client_<name>_checks_per_second, client_<name>_[user_]cpu_seconds_per_1000_checks (= ms per
  check), client_<name>_checks_per_second_per_core, client_<name>_farm_cpu_seconds_per_1000_checks
      back-to-back HTTP checks from --workers concurrent workers for --client-seconds (saturation),
      for each client in --clients: `prepared` (ipvswm's socket path as a checker runs it: plan
      made once), `probe` (the `probe()` function: plan made per call), `transport` (the asyncio
      transport path, which HTTPS uses and plain HTTP used before), `streams` (asyncio streams),
      `aiohttp` (force_close connector); `farm_...` is the server side's CPU, for reference;
  n<N>_checks_per_second, n<N>_[user_]cpu_seconds_per_1000_checks, n<N>_checks_per_second_per_core,
  n<N>_rss_per_checker_kb, n<N>_start_spread_ms_p50, n<N>_start_spread_ms_p95
      N checkers at a 1 s interval through CheckSet with the built-in probe, as the daemon runs
      them (start spread: deviation of each check's start from its first start + k intervals).

--profile prints a cProfile (on the CPU clock, so time the process spent descheduled on a busy
machine is not charged) of a `prepared` saturation run and of a run of the first size to stderr
(that run's figures are printed as n<N>_profiled_..., inflated by the profiler).

Usage: python bench/checks.py [--seconds 10] [--sizes 1000,5000] [--clients prepared,transport]
                              [--workers 64] [--client-seconds 3] [--profile] [--jitter-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from collections.abc import Callable

import aiohttp

from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.probe import BODY_CAP
from ipvswm.checks.probe import PreparedCheck
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.checks.probe import probe
from ipvswm.checks.transport import check_transport
from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import request_bytes
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.events import CheckResult

ADDRESSES = [f"127.0.0.{i}" for i in range(40, 50)]
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n"

ProbeFn = Callable[[CheckTarget], Awaitable[ProbeOutcome]]
CheckFn = Callable[[], Awaitable[ProbeOutcome]]
Client = Callable[[CheckTarget], CheckFn]
"""A client makes, for one target, the function a worker calls for each check."""


# --- the farm (child process) ---------------------------------------------------------------


class _Answer(asyncio.Protocol):
    """Answers one request with a fixed 200 (after a random delay up to `jitter`) and closes."""

    jitter = 0.0  # seconds

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            if self.jitter:
                delay = random.uniform(0, self.jitter)
                asyncio.get_running_loop().call_later(delay, self._answer)
            else:
                self._answer()

    def _answer(self) -> None:
        self.transport.write(RESPONSE)  # type: ignore[attr-defined]
        self.transport.close()


async def _serve(jitter_ms: float) -> None:
    _Answer.jitter = jitter_ms / 1000
    loop = asyncio.get_running_loop()
    ports = []
    for address in ADDRESSES:
        server = await loop.create_server(_Answer, address, 0, backlog=4096)
        ports.append(server.sockets[0].getsockname()[1])
    print(" ".join(map(str, ports)), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin


def start_farm(jitter_ms: float) -> tuple[subprocess.Popen[str], list[tuple[str, int]]]:
    """Start the farm process; (process, [(address, port)])."""
    proc = subprocess.Popen(  # noqa: S603 (our own interpreter and file)
        [sys.executable, __file__, "--serve", "--jitter-ms", str(jitter_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ports = [int(p) for p in proc.stdout.readline().split()]
    return proc, list(zip(ADDRESSES, ports, strict=True))


# --- clients --------------------------------------------------------------------------------


def make_aiohttp_probe(session: aiohttp.ClientSession) -> ProbeFn:
    """The same check with aiohttp: a fresh connection per check (force_close connector)."""

    async def aiohttp_probe(target: CheckTarget) -> ProbeOutcome:
        spec = target.spec
        started = time.time()
        timeout = aiohttp.ClientTimeout(
            sock_connect=spec.connect_timeout, total=spec.connect_timeout + spec.response_timeout
        )
        url = f"http://{target.address}:{target.port}{spec.path}"
        try:
            async with session.get(
                url, headers={"Host": target.host_header()}, timeout=timeout, allow_redirects=False
            ) as response:
                await response.content.read(BODY_CAP)
                passed = spec.passes_status(response.status)
                cause = "" if passed else f"status {response.status}"
                return ProbeOutcome(passed, cause, response.status, started, time.time())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return ProbeOutcome(False, type(exc).__name__, None, started, time.time())

    return aiohttp_probe


async def streams_probe(target: CheckTarget) -> ProbeOutcome:
    """The same HTTP check on asyncio streams (the candidate the protocol client replaced)."""
    spec = target.spec
    started = time.time()
    try:
        async with asyncio.timeout(spec.connect_timeout):
            reader, writer = await asyncio.open_connection(target.address, target.port)
    except (OSError, TimeoutError) as exc:
        return ProbeOutcome(False, type(exc).__name__, None, started, time.time())
    try:
        async with asyncio.timeout(spec.response_timeout):
            writer.write(
                f"GET {spec.path} HTTP/1.1\r\nHost: {target.host_header()}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(None, 2)[1])
            await reader.read(BODY_CAP)
        passed = spec.passes_status(status)
        return ProbeOutcome(
            passed, "" if passed else f"status {status}", status, started, time.time()
        )
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        return ProbeOutcome(False, type(exc).__name__, None, started, time.time())
    finally:
        writer.close()


async def transport_probe(target: CheckTarget) -> ProbeOutcome:
    """The asyncio transport path (HTTPS's, and plain HTTP's before the socket path)."""
    started = time.time()
    try:
        status = await check_transport(target, request_bytes(target), None)
    except CheckFailed as failed:
        return ProbeOutcome(False, failed.cause, failed.status, started, time.time())
    return ProbeOutcome(True, "", status, started, time.time())


def per_call(probe_fn: ProbeFn) -> Client:
    """A client calling `probe_fn(target)` for each check."""
    return lambda target: lambda: probe_fn(target)


def prepared(target: CheckTarget) -> CheckFn:
    """ipvswm's checks as a checker runs them: one PreparedCheck per target."""
    return PreparedCheck(target).run


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by another process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024


def targets(farm: list[tuple[str, int]], n: int, interval: float) -> list[CheckTarget]:
    spec = [
        CheckSpec(CheckKind.HTTP, url_host="www.example.test", path=f"/c/{i}", interval=interval)
        for i in range(n)
    ]
    return [CheckTarget(*farm[i % len(farm)], spec[i]) for i in range(n)]


async def saturate(
    client: Client, farm: list[tuple[str, int]], workers: int, seconds: float
) -> int:
    """Back-to-back checks from `workers` workers for `seconds`; the number of passing checks."""
    deadline = time.monotonic() + seconds
    done = 0
    failed: dict[str, int] = {}

    async def worker(check: CheckFn) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            outcome = await check()
            if outcome.passed:
                done += 1
            else:
                failed[outcome.cause] = failed.get(outcome.cause, 0) + 1

    await asyncio.gather(*(worker(client(t)) for t in targets(farm, workers, 1.0)))
    if failed:
        print(f"# failed checks: {failed}", file=sys.stderr)
    return done


async def compare_clients(
    farm: list[tuple[str, int]], farm_pid: int, args: argparse.Namespace
) -> None:
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients: dict[str, Client] = {
            "prepared": prepared,
            "probe": per_call(probe),
            "transport": per_call(transport_probe),
            "streams": per_call(streams_probe),
            "aiohttp": per_call(make_aiohttp_probe(session)),
        }
        for name in args.clients:
            client = clients[name]
            await saturate(client, farm, args.workers, 0.5)  # warm up
            cpu0, t0, farm0 = cpu(), time.monotonic(), proc_cpu(farm_pid)
            user0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
            done = await saturate(client, farm, args.workers, args.client_seconds)
            wall, used = time.monotonic() - t0, cpu() - cpu0
            user = resource.getrusage(resource.RUSAGE_SELF).ru_utime - user0
            farm_used = proc_cpu(farm_pid) - farm0
            done = max(done, 1)
            print(f"client_{name}_checks_per_second = {done / wall:.0f} checks/s")
            print(f"client_{name}_cpu_seconds_per_1000_checks = {1000 * used / done:.4f} s")
            print(f"client_{name}_user_cpu_seconds_per_1000_checks = {1000 * user / done:.4f} s")
            print(f"client_{name}_checks_per_second_per_core = {done / used:.0f} checks/s")
            print(
                f"client_{name}_farm_cpu_seconds_per_1000_checks = {1000 * farm_used / done:.4f} s"
            )


async def run_checkers(
    farm: list[tuple[str, int]], n: int, seconds: float, profile: bool = False
) -> None:
    """N checkers at 1 s for `seconds` after a 1 s warm-up (every checker started once).

    The checkers run as the daemon runs them: through CheckSet with the built-in probe. Starts
    are the results' `started` times (wall clock), so nothing is wrapped around the probe.
    """
    interval = 1.0
    starts: dict[CheckTarget, list[float]] = {}
    results = 0
    failures: dict[str, int] = {}

    def sink(result: CheckResult) -> None:
        nonlocal results
        results += 1
        starts.setdefault(result.target, []).append(result.started)
        if not result.passed:
            failures[result.cause] = failures.get(result.cause, 0) + 1

    pool = targets(farm, n, interval)
    rss0 = rss_kb()
    checks = CheckSet(sink)
    checks.update(pool)
    await asyncio.sleep(interval)  # warm-up: every checker reaches its schedule
    profiler = cProfile.Profile(time.process_time) if profile else None
    if profiler is not None:
        profiler.enable()
    results0, cpu0, t0 = results, cpu(), time.monotonic()
    user0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime
    await asyncio.sleep(seconds)
    done, used, wall = results - results0, cpu() - cpu0, time.monotonic() - t0
    user = resource.getrusage(resource.RUSAGE_SELF).ru_utime - user0
    if profiler is not None:
        profiler.disable()
        print(f"# profile of n{n} (figures inflated by the profiler)", file=sys.stderr)
        print_profile(profiler)
    rss1 = rss_kb()
    await checks.close()
    deviations = [
        1000 * (t - (times[0] + k * interval))
        for times in starts.values()
        for k, t in enumerate(times)
        if k > 0
    ]
    q = statistics.quantiles(deviations, n=100)
    tag = f"n{n}_profiled" if profile else f"n{n}"
    print(f"{tag}_checks_per_second = {done / wall:.0f} checks/s")
    print(f"{tag}_cpu_seconds_per_1000_checks = {1000 * used / max(done, 1):.4f} s")
    print(f"{tag}_user_cpu_seconds_per_1000_checks = {1000 * user / max(done, 1):.4f} s")
    print(f"{tag}_checks_per_second_per_core = {done / max(used, 1e-9):.0f} checks/s")
    print(f"{tag}_rss_per_checker_kb = {(rss1 - rss0) / n:.2f} KB")
    print(f"{tag}_start_spread_ms_p50 = {q[49]:.2f} ms")
    print(f"{tag}_start_spread_ms_p95 = {q[94]:.2f} ms")
    print(f"{tag}_failed_checks = {sum(failures.values())} checks {failures or ''}".rstrip())


def print_profile(profiler: cProfile.Profile) -> None:
    """The top of a profile, by own time, to stderr."""
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue(), file=sys.stderr)


async def main(args: argparse.Namespace) -> None:
    farm_proc, farm = start_farm(args.jitter_ms)
    try:
        await compare_clients(farm, farm_proc.pid, args)
        for n in args.sizes:
            await run_checkers(farm, n, args.seconds)
        if args.profile:
            # The CPU clock: time spent descheduled (other processes on the cores) is not charged.
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            await saturate(prepared, farm, args.workers, args.client_seconds)
            profiler.disable()
            print("# profile of a prepared saturation run", file=sys.stderr)
            print_profile(profiler)
            if args.sizes:
                await run_checkers(farm, args.sizes[0], args.seconds, profile=True)
    finally:
        assert farm_proc.stdin is not None
        farm_proc.stdin.close()
        farm_proc.wait(5)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="run time per size")
    parser.add_argument("--client-seconds", type=float, default=3.0, help="run time per client")
    parser.add_argument("--workers", type=int, default=64, help="saturation workers")
    parser.add_argument(
        "--clients",
        type=lambda s: [x for x in s.split(",") if x],
        default=["prepared", "probe", "transport", "streams", "aiohttp"],
        help="clients to compare (prepared, probe, transport, streams, aiohttp)",
    )
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 5000]
    )
    parser.add_argument("--profile", action="store_true", help="cProfile a saturation run")
    parser.add_argument(
        "--jitter-ms",
        type=float,
        default=0.0,
        help="the farm answers after a random delay up to this (spreads answers as real servers"
        " do; 0: at once, in the batches its loop reads requests in)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    if arguments.serve:
        asyncio.run(_serve(arguments.jitter_ms))
    else:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        asyncio.run(main(arguments))
