"""The agent client (HAProxy's `agent-check`): one poller per distinct agent (SPEC §3, §11).

A poll opens a fresh connection to (real-server address, agent port) within the connect timeout,
reads one line (at most `MAX_LINE` bytes, ended by a newline or by the agent closing) within the
response deadline, and closes. The answer, or None when there is none (refused, timeout, too long,
empty), goes to the sink as an `AgentResult`: pollers only produce results, the engine decides.
A bare non-blocking socket with `loop.sock_connect`/`sock_recv` costs less per poll than asyncio's
streams (no transport, protocol or reader; see bench/agent.py for the figure).
An agent that misses a poll keeps its last opinion: only after `MISSES` polls in a row without an
answer does the poller report "no answer" (no opinion: the checks alone decide), so one lost
poll on a busy server does not flip its weight to full and back.
Logged once per episode: an agent that stops answering (and when it answers again), and the words
it sends that mean nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import time
from collections.abc import Callable
from collections.abc import Mapping

from ipvswm.checks.agentline import MAX_LINE
from ipvswm.checks.agentline import AgentReply
from ipvswm.checks.agentline import parse_agent_line
from ipvswm.config.agent import AgentPoll
from ipvswm.config.model import AgentTarget
from ipvswm.events import AgentResult

logger = logging.getLogger(__name__)

AgentSink = Callable[[AgentResult], None]
"""Where a poller sends each result (the engine queue's `put_nowait`)."""

MISSES = 3
"""Polls in a row without an answer before the agent's opinion is dropped."""

FIRST_POLL_SPREAD = 1.0
"""The first polls spread over at most this many seconds: an agent's opinion (a drain) should
arrive soon after start-up, not an interval later."""


class AgentFailed(Exception):
    """No answer from the agent; the message is the short cause."""


async def poll_agent(poll: AgentPoll) -> AgentReply:
    """One poll: the agent's answer; raises AgentFailed with the cause when there is none."""
    loop = asyncio.get_running_loop()
    address, port = poll.target.address, poll.target.port
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        try:
            async with asyncio.timeout(poll.connect_timeout):
                await loop.sock_connect(sock, (address, port))
        except TimeoutError:
            raise AgentFailed("connect timeout") from None
        except OSError as exc:
            raise AgentFailed(_os_cause("connect", exc)) from None
        data = b""
        try:
            async with asyncio.timeout(poll.timeout):
                while b"\n" not in data and len(data) <= MAX_LINE:
                    chunk = await loop.sock_recv(sock, MAX_LINE + 1 - len(data))
                    if not chunk:
                        break
                    data += chunk
        except TimeoutError:
            raise AgentFailed("response timeout") from None
        except OSError as exc:
            raise AgentFailed(_os_cause("read", exc)) from None
    finally:
        sock.close()
    line, newline, _ = data.partition(b"\n")
    if not newline and len(data) > MAX_LINE:
        raise AgentFailed(f"answer longer than {MAX_LINE} bytes")
    if not line.strip():
        raise AgentFailed("empty answer")
    return parse_agent_line(line.rstrip(b"\r").decode("utf-8", errors="replace"))


def _os_cause(what: str, exc: OSError) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return "connect refused"
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{what} error {name or exc}".strip()


class AgentPoller:
    """Polls one agent every interval (start to start, never overlapping) and reports."""

    def __init__(self, poll: AgentPoll, sink: AgentSink, rng: random.Random) -> None:
        self.poll = poll
        self.polls = 0  # polls made since start
        self.last: AgentResult | None = None
        self._sink = sink
        self._rng = rng
        self._misses = 0  # polls in a row without an answer
        self._silent = False  # in an episode without answers (logged at its start)
        self._unknown: tuple[str, ...] = ()  # the unknown words of this episode (logged once)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling on the running loop."""
        self.task = asyncio.get_running_loop().create_task(self._run(), name=str(self.poll.target))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.poll.interval
        next_start = loop.time() + self._rng.random() * min(interval, FIRST_POLL_SPREAD)
        while True:
            delay = next_start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._report(await self._once())
            next_start = max(next_start + interval, loop.time())

    async def _once(self) -> AgentResult:
        started = time.time()
        target = self.poll.target
        try:
            reply = await poll_agent(self.poll)
        except AgentFailed as exc:
            return AgentResult(target, None, started, time.time(), str(exc))
        except Exception:  # a bug must not stop the poller: no answer, logged
            logger.exception("%s: poll raised", target)
            return AgentResult(target, None, started, time.time(), "internal error")
        return AgentResult(target, reply, started, time.time())

    def _report(self, result: AgentResult) -> None:
        self.polls += 1
        self.last = result
        target, reply = result.target, result.reply
        self._misses = self._misses + 1 if reply is None else 0
        if 0 < self._misses < MISSES:
            return  # the last opinion stands for now
        if reply is None and not self._silent:
            logger.warning("%s: no answer (%s); the checks alone decide", target, result.cause)
        elif reply is not None and self._silent:
            logger.info("%s: answers again (%s)", target, reply.cause())
        self._silent = reply is None
        unknown = () if reply is None else reply.unknown
        if unknown and unknown != self._unknown:
            logger.warning("%s: ignored unknown word(s): %s", target, " ".join(unknown))
        self._unknown = unknown
        try:
            self._sink(result)
        except Exception:
            logger.exception("%s: sink failed", target)


class AgentSet:
    """Exactly one poller per distinct agent (address, port), updated as a diff on reloads."""

    def __init__(self, sink: AgentSink, *, rng: random.Random | None = None) -> None:
        self._sink = sink
        self._rng = rng if rng is not None else random.Random()
        self._pollers: dict[AgentTarget, AgentPoller] = {}
        self._stopping: set[asyncio.Task[None]] = set()

    def update(self, polls: Mapping[AgentTarget, AgentPoll]) -> tuple[int, int]:
        """Start pollers for new agents, stop gone ones, restart those polled differently now.

        Returns (started, stopped). Must be called on the running loop.
        """
        started = stopped = 0
        for target in list(self._pollers):
            if polls.get(target) != self._pollers[target].poll:
                self._stop(self._pollers.pop(target))
                stopped += 1
        for target, poll in sorted(polls.items(), key=lambda item: str(item[0])):
            if target not in self._pollers:
                poller = self._pollers[target] = AgentPoller(poll, self._sink, self._rng)
                poller.start()
                started += 1
        return started, stopped

    def pollers(self) -> list[AgentPoller]:
        """The running pollers, by agent."""
        return [self._pollers[t] for t in sorted(self._pollers, key=str)]

    def __len__(self) -> int:
        return len(self._pollers)

    def _stop(self, poller: AgentPoller) -> None:
        task = poller.task
        if task is not None and not task.done():
            task.cancel()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every poller and wait until their tasks have ended."""
        for poller in self._pollers.values():
            self._stop(poller)
        self._pollers.clear()
        tasks = list(self._stopping)
        if tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping.clear()
