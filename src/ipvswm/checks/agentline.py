"""The answer line of an agent (HAProxy's `agent-check` protocol), read into an opinion (pure).

Words are separated by commas, spaces or tabs, case-insensitive; text after `#` is a description.
`N%` scales the pair's target weight; `drain`, `maint` and `0%` hold it at 0 without a failure;
`down`, `fail` and `stopped` are a failure; `up` and `ready` give no opinion (and cancel a
`down`, resp. a `drain`, earlier on the same line: within a line the last word of each kind wins).
`maxconn:N` is a HAProxy word with no IPVS meaning: ignored. Any other word is unknown: ignored
too, and listed so that the poller can log it (once per episode).
Unlike HAProxy, each answer is the agent's whole opinion: nothing is remembered from the last one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 1024
"""Bytes read at most from an agent: a longer answer without a newline is no answer."""
MAX_PCT = 100_000  # beyond this a percentage only ever gives the largest weight (65535)

_SPLIT_RE = re.compile(r"[\s,]+")
_PCT_RE = re.compile(r"([0-9]{1,7})%")
_FAILED = frozenset({"down", "fail", "stopped"})
_DRAIN = frozenset({"drain", "maint"})
_QUIET = ("maxconn:",)  # known HAProxy words without an IPVS meaning


@dataclass(frozen=True, slots=True)
class AgentReply:
    """What one answer says about the pair's weight."""

    pct: int | None = None  # the weight percentage (None: full weight)
    drain: bool = False  # weight 0, not a failure (`drain`, `maint`, `0%`)
    failed: bool = False  # `down`, `fail`, `stopped`
    word: str = ""  # the word that decided (`drain`, `down`, `75%`), for causes
    description: str = ""  # the text after `#`
    unknown: tuple[str, ...] = ()  # words ignored because they mean nothing here

    @property
    def opinion(self) -> bool:
        """Whether the answer changes anything (else the health check alone decides)."""
        return self.failed or self.drain or self.pct is not None

    def cause(self) -> str:
        """The agent's opinion as a short cause: `agent: drain (deploy)`."""
        text = f"agent: {self.word or 'up'}"
        return f"{text} ({self.description})" if self.description else text


def parse_agent_line(line: str) -> AgentReply:
    """Read one answer (without its line end) into an AgentReply; never raises."""
    words_text, _, description = line.partition("#")
    pct: int | None = None
    pct_word = ""
    admin = ""  # the last of ready / drain / maint
    health = ""  # the last of up / down / fail / stopped
    unknown: list[str] = []
    for word in _SPLIT_RE.split(words_text.strip().lower()):
        if not word:
            continue
        match = _PCT_RE.fullmatch(word)
        if match is not None:
            pct, pct_word = min(int(match[1]), MAX_PCT), word
        elif word in _DRAIN or word == "ready":
            admin = word
        elif word in _FAILED or word == "up":
            health = word
        elif not word.startswith(_QUIET):
            unknown.append(word)
    failed = health in _FAILED
    drain = admin in _DRAIN or pct == 0
    word = health if failed else (admin if admin in _DRAIN else pct_word)
    return AgentReply(
        pct=None if failed or drain else pct,
        drain=drain and not failed,
        failed=failed,
        word=word,
        description=description.strip()[:200],
        unknown=tuple(unknown),
    )
