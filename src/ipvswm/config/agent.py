"""Agent feedback in the config (SPEC §11): the `agent=` options and the agents to poll.

`agent=PORT` and `agent_interval=S` are VS options and host options; a host's win over its VSs'
(`agent=off` on a host opts it out of its VSs' agent). One poll per distinct (address, port): two
VSs with the same host and agent port share it, at the shortest interval and timeouts asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipvswm.config.model import AgentTarget
from ipvswm.config.model import Config
from ipvswm.config.values import parse_interval
from ipvswm.config.values import parse_port

OFF_WORDS = frozenset({"off", "none", "0"})
HOST_OPTIONS = ("agent", "agent_interval")
"""The `key=value` items of a host line that are not `VSTAG=WEIGHT` (unless a VS has that tag)."""


def parse_agent_port(text: str) -> int:
    """A host's `agent=`: a port 1..65535, or `off` (0: no agent for this host)."""
    if text.lower() in OFF_WORDS:
        return 0
    try:
        return parse_port(text)
    except ValueError:
        raise ValueError("expected a port 1..65535 or off") from None


def parse_host_option(key: str, text: str) -> tuple[str, int | float]:
    """(Host field, typed value) of one host option; raises ValueError with what was expected."""
    if key == "agent":
        return "agent_port", parse_agent_port(text)
    return "agent_interval", parse_interval(text)


@dataclass(frozen=True, slots=True)
class AgentPoll:
    """How one agent is polled: where, how often, and how long a connect and an answer may take."""

    target: AgentTarget
    interval: float
    connect_timeout: float
    timeout: float  # the deadline for the whole answer line, once connected


def agent_polls(config: Config) -> dict[AgentTarget, AgentPoll]:
    """The agents of a config, one poll each, with the shortest interval and timeouts asked."""
    return dict(config.derived("agent_polls", _agent_polls))


def _agent_polls(config: Config) -> dict[AgentTarget, AgentPoll]:
    by_tag = {vs.tag: vs for vs in config.services}
    polls: dict[AgentTarget, AgentPoll] = {}
    for pair in config.pairs():
        if pair.agent is None:
            continue
        spec = by_tag[pair.vs].check
        timeouts = (spec.connect_timeout, spec.response_timeout)
        poll = AgentPoll(pair.agent, pair.agent_interval, *timeouts)
        seen = polls.get(pair.agent)
        if seen is not None:
            poll = AgentPoll(
                pair.agent,
                min(seen.interval, poll.interval),
                min(seen.connect_timeout, poll.connect_timeout),
                min(seen.timeout, poll.timeout),
            )
        polls[pair.agent] = poll
    return polls
