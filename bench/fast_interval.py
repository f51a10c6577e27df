"""Benchmark: failure detection with fall=3 at a 5 s interval, with and without fast_interval.

In-process checkers (the daemon's Checker, built-in HTTP probe) against `--servers` real servers
on 127.0.0.201 (a separate thread's loop). Every checker runs a few healthy checks, then all its
servers answer 500 at one instant (the checkers' phases are random); the figure is the time from
then to the result that sets the status to FAIL. `fast_interval=1` (the default) against
`fast_interval=5` (= the interval: how checks confirmed a failure before issue 16).

Prints `detect_fall3_fast<F>_p50|max` (ms) per fast interval, `servers`, `load_1min`.
Usage: python bench/fast_interval.py [--servers 20] [--interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.realservers import ThreadedRealServers  # noqa: E402

from ipvswm.checks.checker import Checker  # noqa: E402
from ipvswm.config.model import CheckKind  # noqa: E402
from ipvswm.config.model import CheckSpec  # noqa: E402
from ipvswm.config.model import CheckTarget  # noqa: E402
from ipvswm.events import CheckResult  # noqa: E402
from ipvswm.events import CheckStatus  # noqa: E402


async def trial(
    farm: ThreadedRealServers, servers: int, interval: float, fast: float
) -> list[float]:
    """Seconds from the switch to 500 to FAIL, one per server."""
    reals = [farm.start("127.0.0.201") for _ in range(servers)]
    spec = CheckSpec(
        CheckKind.HTTP, path="/", interval=interval, fall=3, fast_interval=fast, response_timeout=1
    )
    failed: dict[int, float] = {}
    done = asyncio.Event()

    def sink(i: int) -> Callable[[CheckResult], None]:
        def take(result: CheckResult) -> None:
            if result.status is CheckStatus.FAIL and i not in failed:
                failed[i] = time.time()
                if len(failed) == servers:
                    done.set()

        return take

    checkers = [Checker(CheckTarget(r.address, r.port, spec), sink(i)) for i, r in enumerate(reals)]
    for checker in checkers:
        checker.start()
    await asyncio.sleep(interval * 1.5)  # every checker has passed at least once
    switched = time.time()
    await asyncio.to_thread(lambda: [r.set_mode("status:500") for r in reals])
    await asyncio.wait_for(done.wait(), interval * 6)
    for checker in checkers:
        await checker.stop()
    for r in reals:
        await asyncio.to_thread(r.stop)
    return [failed[i] - switched for i in range(servers)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    with ThreadedRealServers() as farm:
        for fast in (1.0, args.interval):
            times = await trial(farm, args.servers, args.interval, fast)
            name = f"detect_fall3_fast{fast:g}"
            print(f"{name}_p50 = {statistics.median(times) * 1000:.0f} ms")
            print(f"{name}_max = {max(times) * 1000:.0f} ms")
    print(f"servers = {args.servers}")
    print(f"interval = {args.interval:g} s")
    print(f"load_1min = {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
