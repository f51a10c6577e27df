"""The parser of agent answer lines (issue 13 §2, HAProxy's agent-check words)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvswm.checks.agentline import AgentReply
from ipvswm.checks.agentline import parse_agent_line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("75%", AgentReply(pct=75, word="75%")),
        ("  75% ", AgentReply(pct=75, word="75%")),
        ("up 50%", AgentReply(pct=50, word="50%")),
        ("ready,up,100%", AgentReply(pct=100, word="100%")),
        ("150%", AgentReply(pct=150, word="150%")),
        ("drain", AgentReply(drain=True, word="drain")),
        ("MAINT", AgentReply(drain=True, word="maint")),
        ("0%", AgentReply(drain=True, word="0%")),
        ("drain 75%", AgentReply(drain=True, word="drain")),
        ("down", AgentReply(failed=True, word="down")),
        ("fail#disk full", AgentReply(failed=True, word="fail", description="disk full")),
        ("stopped, 80%", AgentReply(failed=True, word="stopped")),
        ("drain\tdown", AgentReply(failed=True, word="down")),
        ("down up", AgentReply()),  # the last word of a kind wins
        ("drain ready 60%", AgentReply(pct=60, word="60%")),
        ("up", AgentReply()),
        ("ready", AgentReply()),
        ("", AgentReply()),
        ("maxconn:30 up", AgentReply()),
        ("sleepy, 40%", AgentReply(pct=40, word="40%", unknown=("sleepy",))),
        ("abc% 7.5% -3%", AgentReply(unknown=("abc%", "7.5%", "-3%"))),
        ("99999999%", AgentReply(unknown=("99999999%",))),
        ("1000000%", AgentReply(pct=100_000, word="1000000%")),
    ],
)
def test_words(line: str, expected: AgentReply) -> None:
    assert parse_agent_line(line) == expected


def test_opinion_and_cause() -> None:
    assert not parse_agent_line("up").opinion
    assert parse_agent_line("50%").opinion
    assert parse_agent_line("drain # deploy 42 ").cause() == "agent: drain (deploy 42)"
    assert parse_agent_line("down").cause() == "agent: down"


@given(st.text(max_size=300))
def test_any_line_gives_one_consistent_reply(line: str) -> None:
    reply = parse_agent_line(line)
    assert sum([reply.failed, reply.drain, reply.pct is not None]) <= 1
    assert reply.pct is None or reply.pct > 0
