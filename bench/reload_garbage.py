"""Benchmark: a refused reload of a garbage config file (issue 10 item 4), in a fresh process.

Writes `--mb` MB of malformed lines (the issue's case: millions of lines, each an error) and
runs the daemon's own read path (`ipvswm.daemon.read_config`: size-capped read and parse in a
detached thread) on an event loop, with a task that measures how late the loop runs meanwhile.
Prints `name = value unit` lines: the refusal's wall time, the process's peak RSS before and
after, the errors kept and counted, and the loop's worst lateness.

Usage: python bench/reload_garbage.py [--mb 5]  (bench/reload.py runs it with its defaults)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def refused_reload(path: str) -> None:
    from ipvswm.daemon.reload import read_config

    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            worst = max(worst, time.perf_counter() - before - 0.01)

    tick = asyncio.create_task(ticker())
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    _, result = await read_config(path)
    elapsed = time.perf_counter() - start
    done = True
    await tick
    lines = result.messages()  # what the daemon logs
    assert result.config is None
    print(f"garbage_reload_refused = {elapsed * 1000:.0f} ms")
    print(f"garbage_reload_peak_rss_before = {rss_before:.0f} MB")
    print(f"garbage_reload_peak_rss = {peak_rss_mb():.0f} MB")
    print(f"garbage_reload_errors_logged = {len(lines)} lines")
    print(f"garbage_reload_errors_found = {result.error_count()} errors")
    print(f"garbage_reload_loop_worst_lateness = {worst * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0, help="size of the garbage file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ipvswm-bench-") as tmp:
        path = os.path.join(tmp, "garbage.conf")
        line = b"garbage-line-that-is-no-config\n"
        with open(path, "wb") as file:
            file.write(line * int(args.mb * 1_000_000 / len(line)))
        print(f"garbage_file_size = {os.path.getsize(path) / 1_000_000:.1f} MB")
        asyncio.run(refused_reload(path))


if __name__ == "__main__":
    main()
