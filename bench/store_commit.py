"""How long a state commit stops the event loop: on the loop (before issue 14) vs the writer thread.

In-process, SQLite databases in a temporary directory (`--dir`; `synchronous=FULL`, WAL):
`--commits` (50) admin-like commits of one host's reasons, taken in turn both ways. Before:
`Store.save` called on the loop, which runs nothing else for the whole commit. After:
`StoreWriter.save` awaited while a heartbeat timer (every 0.2 ms, idle in between as the daemon's
loop mostly is) measures how late the loop wakes during the commit: what a console, a check or
the kernel applier waits at most; and the time from the call to its return (the owner's ack).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from ipvswm.engine.state import HostState
from ipvswm.engine.state import StateChanges
from ipvswm.store import Store
from ipvswm.store.writer import StoreWriter


def change(i: int) -> StateChanges:
    return StateChanges(hosts={"web1": HostState(reasons=frozenset({f"maint{i % 2}"}))})


BEAT = 0.0002


async def heartbeat(gaps: list[float], stop: asyncio.Event) -> None:
    """Record how late every BEAT-second timer fires, until stopped."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(BEAT)
        gaps.append(max(time.perf_counter() - before - BEAT, 0.0))


async def run(tmp: str, commits: int) -> tuple[list[float], list[float], list[float]]:
    """Commits taken in turn on the loop and in the writer (both see the same disk and load)."""
    store = Store(os.path.join(tmp, "before.db"))
    writer = await StoreWriter.open(os.path.join(tmp, "after.db"))
    before, blocks, acks = [], [], []
    try:
        for i in range(commits):
            start = time.perf_counter()
            store.save(change(i))  # the loop runs nothing else meanwhile
            before.append(time.perf_counter() - start)
            gaps: list[float] = []
            stop = asyncio.Event()
            beat = asyncio.create_task(heartbeat(gaps, stop))
            await asyncio.sleep(0)  # the heartbeat runs
            start = time.perf_counter()
            await writer.save(change(i))
            acks.append(time.perf_counter() - start)
            stop.set()
            await beat
            blocks.append(max(gaps))
    finally:
        store.close()
        await writer.close()
    return before, blocks, acks


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--dir", default=None, help="where the databases go (default: $TMPDIR)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        before, blocks, acks = await run(tmp, args.commits)
    ms = 1e3
    print(f"commit_on_loop_block_median = {statistics.median(before) * ms:.2f} ms")
    print(f"commit_on_loop_block_max = {max(before) * ms:.2f} ms")
    print(f"commit_writer_loop_block_median = {statistics.median(blocks) * ms:.3f} ms")
    print(f"commit_writer_loop_block_max = {max(blocks) * ms:.3f} ms")
    print(f"commit_writer_ack_median = {statistics.median(acks) * ms:.2f} ms")
    print(f"commits = {args.commits} commits")
    print(f"load_1min = {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
