"""Benchmark of agent feedback polls (issue 13 §2): agent checks/s per core.

An agent (tests/support/agentserver.py, answering `75%`) on 127.0.0.51 runs in a separate
process, so its CPU is not counted. --workers concurrent workers poll it back to back for
--seconds: with ipvswm's client (`own`: `checks.agent.poll_agent`, a bare non-blocking socket, as a
poller runs it) and, for comparison, with asyncio streams (`streams`: open_connection + readline).
Only the polling process's CPU is counted.

Prints `name = value unit` lines:
  agent_<client>_polls_per_second, agent_<client>_polls_per_second_per_core,
  agent_<client>_cpu_ms_per_poll, agent_<client>_failed_polls.

Usage: python bench/agent.py [--seconds 3] [--workers 32]
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

from ipvswm.checks.agent import AgentFailed
from ipvswm.checks.agent import poll_agent
from ipvswm.checks.agentline import MAX_LINE
from ipvswm.checks.agentline import parse_agent_line
from ipvswm.config.agent import AgentPoll
from ipvswm.config.model import AgentTarget

ADDRESS = "127.0.0.51"
AGENT = """
import sys
sys.path.insert(0, sys.argv[1])
from tests.support.agentserver import AgentServer
server = AgentServer(sys.argv[2], answer="75%").start()
print(server.port, flush=True)
sys.stdin.read()
server.stop()
"""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def saturate(
    name: str, poll: Callable[[], Awaitable[bool]], workers: int, seconds: float
) -> None:
    """Poll back to back from `workers` workers for `seconds`; print the figures."""
    done = failed = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, failed
        while time.monotonic() < stop:
            if not await poll():
                failed += 1
            done += 1

    cpu0, wall0 = cpu(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    used, wall = cpu() - cpu0, time.monotonic() - wall0
    print(f"agent_{name}_polls_per_second = {done / wall:.0f} polls/s")
    print(f"agent_{name}_polls_per_second_per_core = {done / max(used, 1e-9):.0f} polls/s")
    print(f"agent_{name}_cpu_ms_per_poll = {1000 * used / max(done, 1):.3f} ms")
    print(f"agent_{name}_failed_polls = {failed} polls")


async def main(port: int, args: argparse.Namespace) -> None:
    poll_spec = AgentPoll(AgentTarget(ADDRESS, port), 1.0, 2.0, 2.0)

    async def own() -> bool:
        try:
            return (await poll_agent(poll_spec)).pct == 75
        except AgentFailed:
            return False

    async def streams() -> bool:
        try:
            async with asyncio.timeout(2.0):
                reader, writer = await asyncio.open_connection(ADDRESS, port)
                try:
                    line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError):
            return False
        return parse_agent_line(line[:MAX_LINE].decode().strip()).pct == 75

    for name, poll in (("own", own), ("streams", streams)):
        await saturate(name, poll, args.workers, args.seconds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with subprocess.Popen(  # noqa: S603 (our interpreter, our script)
        [sys.executable, "-c", AGENT, root, ADDRESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as agent:
        assert agent.stdout is not None and agent.stdin is not None
        agent_port = int(agent.stdout.readline())
        print(f"# uptime: {os.getloadavg()[0]:.2f} load, agent on {ADDRESS}:{agent_port}")
        try:
            asyncio.run(main(agent_port, args))
        finally:
            agent.stdin.close()
