"""Everything that goes through the one event queue to the engine's owner (SPEC §9).

These are plain values: checkers, the console, the config watcher and the clock create them; only
the daemon's owner task consumes them and feeds them to the pure engine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ipvswm.checks.agentline import AgentReply
from ipvswm.config.model import AgentTarget
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.kernel.table import Table
from ipvswm.vocabulary import DEFAULT_REASON


class CheckStatus(enum.Enum):
    """A checker's status after rise/fall counting."""

    UNKNOWN = "unknown"  # no result yet since the checker started
    PASS = "pass"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One finished check of one checker, with the checker's status after it."""

    target: CheckTarget
    passed: bool  # this check alone
    status: CheckStatus  # the checker's status after rise/fall counting
    started: float  # wall-clock seconds (time.time()) when the check began
    ended: float
    cause: str = ""  # short failure cause ("connect refused", "status 503", ...); "" on pass
    changed: bool = False  # the status changed with this result
    # A weight percentage the check set (exec: with dynamic=true): scales the target weight T.
    weight_pct: int | None = None


@dataclass(frozen=True, slots=True)
class SetHostOff:
    """`set host H off [for reasons R…]`: add host-level reasons."""

    host: str
    reasons: frozenset[str] = frozenset({DEFAULT_REASON})


@dataclass(frozen=True, slots=True)
class SetHostOn:
    """`set host H on [reasons|*] [in N]`: remove host-level reasons (None = all, `*`)."""

    host: str
    reasons: frozenset[str] | None = frozenset({DEFAULT_REASON})
    ramp: float | None = None  # explicit ramp duration in seconds


@dataclass(frozen=True, slots=True)
class SetPairsOff:
    """`set host H off for vs V1,V2 [for reasons R…]`: add pair-level reasons."""

    host: str
    vss: tuple[str, ...]
    reasons: frozenset[str] = frozenset({DEFAULT_REASON})


@dataclass(frozen=True, slots=True)
class SetPairsOn:
    """`set host H on for vs V1,V2 [reasons|*] [in N]`: remove pair-level reasons."""

    host: str
    vss: tuple[str, ...]
    reasons: frozenset[str] | None = frozenset({DEFAULT_REASON})
    ramp: float | None = None


@dataclass(frozen=True, slots=True)
class SetOverride:
    """`set host H weight N|default [for vs …]` (vss None = every VS of the host)."""

    host: str
    weight: int | None  # None = back to the configured weight
    vss: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ForgetHost:
    """`forget host H`: drop the kept admin state of H's removed parts (engine.kept)."""

    host: str


AdminEvent = SetHostOff | SetHostOn | SetPairsOff | SetPairsOn | SetOverride


@dataclass(frozen=True, slots=True)
class ConfigLoaded:
    """A new valid config to apply as a diff."""

    config: Config
    # The actual table the daemon has cached: new pairs found in it keep their kernel weight
    # until their first check, as at start-up. None: new pairs start at 0.
    kernel: Table | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed (ramps advance)."""


@dataclass(frozen=True, slots=True)
class AgentResult:
    """One poll of one agent (shared by every pair it feeds): its answer, or none."""

    target: AgentTarget
    reply: AgentReply | None  # None: no answer (unreachable, timeout, unreadable): no opinion
    started: float  # wall-clock seconds
    ended: float
    cause: str = ""  # why there is no answer ("connect refused", ...)


EngineEvent = CheckResult | AdminEvent | ForgetHost | ConfigLoaded | Tick | AgentResult
