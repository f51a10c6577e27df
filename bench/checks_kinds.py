"""Benchmark of the dns and exec checks (issue 13 §3); run as part of `make bench`.

dns: a DNS responder (dnspython, tests/support/dnsserver.py) on 127.0.0.50 in a separate process,
so its CPU is not counted; --workers concurrent workers run back-to-back checks for --seconds, on
ipvswm's own socket path (`check_dns`, as a checker runs it) and, for comparison, through
dnspython's asyncio client (`dns.asyncquery.udp`). Only the checking process's CPU is counted.

exec: checks of `exec:/bin/true` through `run_exec` with the concurrency bound (--exec-max,
`Check.Exec.MaxConcurrent`), --exec-checks checks started at once; the figure is checks/s of
wall time (forking dominates and the children's CPU is the machine's, not the daemon's).

Prints `name = value unit` lines:
  dns_<client>_checks_per_second, dns_<client>_checks_per_second_per_core,
  exec_checks_per_second (with exec_max_concurrent), exec_peak_running.

Usage: python bench/checks_kinds.py [--seconds 3] [--workers 64] [--exec-checks 400] [--exec-max 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable
from collections.abc import Callable

import dns.asyncquery
import dns.message

from ipvswm.checks.dns import DnsPlan
from ipvswm.checks.dns import check_dns
from ipvswm.checks.execcheck import ExecSlots
from ipvswm.checks.execcheck import check_exec
from ipvswm.checks.wire import CheckFailed
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget

ADDRESS = "127.0.0.50"

RESPONDER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from tests.support.dnsserver import DnsResponder
async def main():
    async with DnsResponder(sys.argv[2]) as r:
        print(r.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def saturate(check: Callable[[], Awaitable[bool]], workers: int, seconds: float) -> None:
    """Run `check` back to back from `workers` workers; print the figures."""
    done = failed = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < stop:
            if not await check():
                failed += 1
            done += 1

    cpu0, wall0 = cpu(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    used, wall = cpu() - cpu0, time.monotonic() - wall0
    return_values = (done / wall, done / max(used, 1e-9), failed)
    saturate.last = return_values  # type: ignore[attr-defined]


async def bench_dns(port: int, args: argparse.Namespace) -> None:
    spec = CheckSpec(CheckKind.DNS, url_host="www.example.test", response_timeout=2.0)
    plan = DnsPlan.for_target(CheckTarget(ADDRESS, port, spec))
    assert plan is not None

    async def own() -> bool:
        try:
            await check_dns(plan)
        except CheckFailed:
            return False
        return True

    async def dnspython() -> bool:
        query = dns.message.make_query("www.example.test", "A")
        try:
            reply = await dns.asyncquery.udp(query, ADDRESS, timeout=2.0, port=port)
        except Exception:
            return False
        return bool(reply.answer)

    for name, fn in [("own", own), ("dnspython", dnspython)]:
        await saturate(fn, args.workers, args.seconds)
        per_s, per_core, failed = saturate.last  # type: ignore[attr-defined]
        print(f"dns_{name}_checks_per_second = {per_s:.0f} checks/s")
        print(f"dns_{name}_checks_per_second_per_core = {per_core:.0f} checks/s")
        if failed:
            print(f"# dns_{name}: {failed} failed checks", file=sys.stderr)


async def bench_exec(args: argparse.Namespace) -> None:
    spec = CheckSpec(CheckKind.EXEC, argv=("/bin/true",), response_timeout=30.0)
    target = CheckTarget("127.0.0.51", 80, spec)
    slots = ExecSlots(args.exec_max)
    wall0 = time.monotonic()
    results = await asyncio.gather(
        *(check_exec(target, slots) for _ in range(args.exec_checks)), return_exceptions=True
    )
    wall = time.monotonic() - wall0
    failed = sum(1 for r in results if r is not None)
    print(f"exec_max_concurrent = {args.exec_max} programs")
    print(f"exec_checks_per_second = {args.exec_checks / wall:.0f} checks/s")
    print(f"exec_peak_running = {slots.peak} programs")
    if failed:
        print(f"# exec: {failed} failed checks", file=sys.stderr)


def main(args: argparse.Namespace) -> None:
    root = os.path.join(os.path.dirname(__file__), "..")
    responder = subprocess.Popen(  # noqa: S603 (our interpreter, our script)
        [sys.executable, "-c", RESPONDER, root, ADDRESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert responder.stdout is not None
        port = int(responder.stdout.readline())
        asyncio.run(bench_dns(port, args))
        asyncio.run(bench_exec(args))
    finally:
        assert responder.stdin is not None
        responder.stdin.close()
        responder.wait(10)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--exec-checks", type=int, default=400)
    parser.add_argument("--exec-max", type=int, default=16)
    return parser.parse_args()


if __name__ == "__main__":
    main(parse())
