"""What one engine step returns: decisions to log, alerts to send, state to persist."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from ipvswm.answers import Refused
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateChanges
from ipvswm.kernel.table import ServiceKey


@dataclass(frozen=True, slots=True)
class Decision:
    """A pair's desired weight or phase changed (logged once, SPEC §8)."""

    vs: str
    host: str
    old_weight: int
    new_weight: int
    old_phase: Phase
    new_phase: Phase
    cause: str  # e.g. "check failed: connect refused", "admin off (maintenance)", "ramp 3/10"

    def __str__(self) -> str:
        return (
            f"vs {self.vs} host {self.host}: weight {self.old_weight} -> {self.new_weight}, "
            f"{self.old_phase.value} -> {self.new_phase.value} ({self.cause})"
        )


@dataclass(frozen=True, slots=True)
class SorryChange:
    """A VS's sorry server went in (on=True: nothing else carries weight) or out.

    Every one is logged; only those with `mail` are mailed (rule: ipvswm.engine.sorry).
    """

    vs: str
    on: bool
    at: float  # when the sorry server went in or out
    after: float | None = None  # when going off: seconds the sorry server was on
    sorry_host: str = ""  # host tag, or the fallback title/IP
    mail: bool = True  # False for a switch while the VS's checkers have not reported yet

    def subject(self) -> str:
        if self.on:
            return f"VS '{self.vs}' FAIL"
        return f"VS '{self.vs}' OK (after {self.after or 0.0:.1f}s)"


@dataclass(frozen=True, slots=True)
class KeptChange:
    """The depool threshold began (on=True) or stopped keeping failing pairs of a VS in service.

    Logged, and mailed when the VS has `email=true` (a failing check that cannot take pairs out
    means the VS runs on servers that fail their checks).
    """

    vs: str
    on: bool
    at: float
    threshold: float  # the VS's depool_threshold
    kept: tuple[str, ...] = ()  # when on: the hosts kept in
    after: float | None = None  # when off: seconds the threshold kept pairs in

    def subject(self) -> str:
        if self.on:
            return f"VS '{self.vs}' FAILING KEPT (depool threshold {self.threshold:g})"
        return f"VS '{self.vs}' FAILING KEPT over (after {self.after or 0.0:.1f}s)"


@dataclass(frozen=True, slots=True)
class Step:
    """The result of feeding one event to the engine."""

    decisions: tuple[Decision, ...] = ()
    alerts: tuple[SorryChange, ...] = ()
    changes: StateChanges = field(default_factory=StateChanges)
    error: Refused | None = None  # an admin event that was refused (e.g. "no host 'x'")
    next_wakeup: float | None = None  # when something next changes by time alone (ramps, sorry)
    # The services whose desired entry may have changed in this step: reconcile only these.
    touched: frozenset[ServiceKey] = frozenset()
    note: str | None = None  # an informational reply that is not an error ("nothing to do")
    messages: tuple[str, ...] = ()  # to log: admin state kept for removed hosts, or restored
    kept: tuple[KeptChange, ...] = ()  # depool-threshold switches, like `alerts` for sorry
