"""The agent client against a real agent on loopback (issue 13 §2): answers, no answers, de-dup.

Addresses: agents on 127.0.0.230-127.0.0.233.
"""

from __future__ import annotations

import asyncio

import pytest

from ipvswm.checks.agent import MISSES
from ipvswm.checks.agent import AgentFailed
from ipvswm.checks.agent import AgentSet
from ipvswm.checks.agent import poll_agent
from ipvswm.checks.agentline import MAX_LINE
from ipvswm.checks.agentline import AgentReply
from ipvswm.config.agent import AgentPoll
from ipvswm.config.agent import agent_polls
from ipvswm.config.model import AgentTarget
from ipvswm.config.parser import parse_text
from ipvswm.events import AgentResult
from tests.support.agentserver import AgentServer

pytestmark = pytest.mark.integration


def poll_of(server: AgentServer, timeout: float = 2.0) -> AgentPoll:
    return AgentPoll(AgentTarget(server.address, server.port), 1.0, 1.0, timeout)


async def outcome(poll: AgentPoll) -> AgentReply | str:
    try:
        return await poll_agent(poll)
    except AgentFailed as exc:
        return str(exc)


def test_answers_and_the_lack_of_them() -> None:
    with AgentServer("127.0.0.230", answer="75%") as server:
        poll = poll_of(server)
        assert asyncio.run(outcome(poll)) == AgentReply(pct=75, word="75%")
        server.answer("drain # deploy")
        assert asyncio.run(outcome(poll)) == AgentReply(
            drain=True, word="drain", description="deploy"
        )
        server.answer_bytes(b"down\r\n")
        assert asyncio.run(outcome(poll)) == AgentReply(failed=True, word="down")
        server.answer_bytes(b"50%")  # closed without a newline: the line ends there
        assert asyncio.run(outcome(poll)) == AgentReply(pct=50, word="50%")
        server.answer_bytes(b"x" * (MAX_LINE + 1))
        assert asyncio.run(outcome(poll)) == f"answer longer than {MAX_LINE} bytes"
        server.answer_bytes(b"")
        assert asyncio.run(outcome(poll)) == "empty answer"
        server.hold()
        assert asyncio.run(outcome(poll_of(server, timeout=0.2))) == "response timeout"
        server.stop()
        assert asyncio.run(outcome(poll)) == "connect refused"


CONFIG = """
! www 192.0.2.60:80 /health agent={port},agent_interval=0.05,timeout=0.3
! api 192.0.2.60:81 tcp:// agent={port},agent_interval=0.05,timeout=0.3
web1 127.0.0.231 www=100 api=10
web2 127.0.0.232 www=100
"""


def test_one_poller_and_one_connection_at_a_time_per_address_and_port() -> None:
    """web1 is on two VSs with the same agent port: one poller, so never two connections open at
    once (two pollers would both connect within the first 0.05 s and hold for 0.3 s)."""

    async def main(one: AgentServer) -> list[AgentResult]:
        result = parse_text(CONFIG.format(port=one.port), "t.conf", lambda name: [])
        assert result.config is not None
        polls = agent_polls(result.config)
        assert sorted(t.address for t in polls) == ["127.0.0.231", "127.0.0.232"]
        seen: list[AgentResult] = []
        more = asyncio.Event()

        def sink(r: AgentResult) -> None:
            seen.append(r)
            more.set()

        agents = AgentSet(sink)
        assert agents.update(polls) == (2, 0)
        try:
            while not any(r.target.address == one.address for r in seen):
                more.clear()
                await asyncio.wait_for(more.wait(), 30)
            assert agents.update(polls) == (0, 0)  # the same polls: nothing restarted
        finally:
            await agents.close()
        return seen

    with AgentServer("127.0.0.231") as one, AgentServer("127.0.0.232", one.port) as two:
        one.hold()  # web1's agent keeps every poll open until the poller's deadline
        seen = asyncio.run(main(one))
        assert one.count()[0] >= MISSES and one.count()[1] == 1
        assert two.count()[0] >= 1
    held = [r for r in seen if r.target.address == "127.0.0.231"]  # from the MISSES-th poll on
    assert held and all(r.reply is None and r.cause == "response timeout" for r in held)
    answered = [r for r in seen if r.target.address == "127.0.0.232"]
    assert all(r.reply == AgentReply() for r in answered)  # "up": no opinion


def test_an_agent_keeps_its_opinion_until_it_missed_several_polls() -> None:
    async def main(server: AgentServer) -> list[tuple[AgentReply | None, int]]:
        target = AgentTarget(server.address, server.port)
        agents = AgentSet(lambda r: None)
        seen: list[tuple[AgentReply | None, int]] = []
        first, gone = asyncio.Event(), asyncio.Event()

        def sink(r: AgentResult) -> None:
            seen.append((r.reply, agents.pollers()[0].polls))
            (first if r.reply is not None else gone).set()

        agents = AgentSet(sink)
        agents.update({target: AgentPoll(target, 0.05, 1.0, 1.0)})
        try:
            await asyncio.wait_for(first.wait(), 30)
            server.stop()
            await asyncio.wait_for(gone.wait(), 30)
        finally:
            await agents.close()
        return seen

    server = AgentServer("127.0.0.233", answer="drain").start()
    seen = asyncio.run(main(server))
    answered = [polls for reply, polls in seen if reply is not None]
    silent = [polls for reply, polls in seen if reply is None]
    assert answered == list(range(1, len(answered) + 1))  # every answer is reported
    assert silent[0] == answered[-1] + MISSES  # the first misses are not: the drain stands


def test_unknown_words_are_logged_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    async def main(server: AgentServer) -> None:
        target = AgentTarget(server.address, server.port)
        seen: list[AgentResult] = []
        enough = asyncio.Event()

        def sink(r: AgentResult) -> None:
            seen.append(r)
            if len(seen) == 3:
                server.answer("40%")
            if len(seen) >= 6:
                enough.set()

        agents = AgentSet(sink)
        agents.update({target: AgentPoll(target, 0.02, 1.0, 1.0)})
        try:
            await asyncio.wait_for(enough.wait(), 30)
        finally:
            await agents.close()

    with AgentServer("127.0.0.234", answer="sleepy, 40%") as server:
        asyncio.run(main(server))
    logged = [r.getMessage() for r in caplog.records if "unknown word" in r.getMessage()]
    assert logged == [f"agent 127.0.0.234:{server.port}: ignored unknown word(s): sleepy"]


def test_a_poll_asked_differently_restarts_its_poller() -> None:
    async def main() -> list[tuple[int, int]]:
        target = AgentTarget("127.0.0.234", 9)  # never answers (discard port, nothing listens)
        agents = AgentSet(lambda r: None)
        out = [agents.update({target: AgentPoll(target, 5.0, 1.0, 1.0)})]
        out.append(agents.update({target: AgentPoll(target, 5.0, 1.0, 1.0)}))
        out.append(agents.update({target: AgentPoll(target, 2.0, 1.0, 1.0)}))
        out.append(agents.update({}))
        await agents.close()
        return out

    assert asyncio.run(main()) == [(1, 0), (0, 0), (1, 1), (0, 1)]


def test_an_agent_on_ipv6_loopback() -> None:
    with AgentServer("::1", answer="10%") as server:
        assert asyncio.run(outcome(poll_of(server))) == AgentReply(pct=10, word="10%")
