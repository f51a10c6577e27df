"""The engine's state records: what is persisted (SPEC §6) and what the console shows."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field

from ipvswm.events import CheckStatus
from ipvswm.kernel.table import ServiceKey


class Phase(enum.Enum):
    """Where a pair stands in the rules of SPEC §4."""

    DISABLED = "DISABLED"
    AWAIT_PASS = "AWAIT_PASS"
    RAMPING = "RAMPING"
    ENABLED = "ENABLED"
    FAILING_KEPT = "FAILING_KEPT"  # its check fails, but the depool threshold keeps it in
    DRAINING = "DRAINING"  # its agent says drain (or maint, 0%): weight 0, not a failure


PairId = tuple[str, str]
"""(vs tag, host tag)."""


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """The latest news from one checker, shared by every pair it feeds."""

    status: CheckStatus = CheckStatus.UNKNOWN
    cause: str = ""
    last_pass_started: float | None = None
    last_started: float | None = None
    last_ended: float | None = None
    weight_pct: int | None = None  # what the check set (exec: dynamic), None: full weight


@dataclass(frozen=True, slots=True)
class HostState:
    """Host-level admin state: `set host H off|on` without a VS list."""

    reasons: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PairState:
    """Everything the engine remembers about one pair. Times are wall-clock seconds."""

    reasons: frozenset[str] = frozenset()  # pair-level reasons
    enabled_at: float | None = None  # last time the pair (or its host) was enabled
    down_since: float | None = None
    ramp_duration: float | None = None  # a pending or running ramp's duration
    ramp_deadline: float | None = None  # set while a ramp runs
    override: int | None = None
    check_status: CheckStatus = CheckStatus.UNKNOWN
    check_cause: str = ""
    last_pass_started: float | None = None  # start time of the most recent passing check
    last_check_started: float | None = None
    last_check_ended: float | None = None
    weight: int = 0  # the desired weight last computed
    phase: Phase = Phase.AWAIT_PASS
    # When a failing check would have taken the pair out of service (it carried weight); kept
    # until it is back in service or disabled. Orders the pairs the depool threshold keeps in.
    failed_at: float | None = None


@dataclass(frozen=True, slots=True)
class VsState:
    """Per virtual service: its sorry server (in or not, since when) and depool-threshold state."""

    sorry_on: bool = False
    sorry_since: float | None = None
    kept_since: float | None = None  # since when the depool threshold keeps failing pairs in


@dataclass(frozen=True, slots=True)
class KeptPair:
    """The admin state of a pair removed by a reload: restored if the pair comes back."""

    reasons: frozenset[str] = frozenset()
    override: int | None = None
    ramp_duration: float | None = None  # an explicit (`on … in N`) or pending ramp


@dataclass(frozen=True, slots=True)
class KeptHost:
    """The kept admin state of a host's removed parts (host-level reasons, pairs by VS tag).

    Kept for `Config.ForgetAfter` seconds after the last removal, or until `forget host H`.
    """

    removed_at: float = 0.0  # wall-clock time of the last removal
    reasons: frozenset[str] = frozenset()  # host-level reasons, if the host itself was removed
    pairs: dict[str, KeptPair] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.reasons or self.pairs)


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    """The whole persistent state, as loaded from or saved to the store."""

    hosts: dict[str, HostState] = field(default_factory=dict)
    pairs: dict[PairId, PairState] = field(default_factory=dict)
    vss: dict[str, VsState] = field(default_factory=dict)
    managed: frozenset[ServiceKey] = frozenset()
    kept: dict[str, KeptHost] = field(default_factory=dict)  # by host tag


@dataclass(frozen=True, slots=True)
class StateChanges:
    """What one engine step changed: written to the store in one transaction.

    A key mapped to None was removed (e.g. a host or pair gone from the config).
    """

    hosts: dict[str, HostState | None] = field(default_factory=dict)
    pairs: dict[PairId, PairState | None] = field(default_factory=dict)
    vss: dict[str, VsState | None] = field(default_factory=dict)
    managed_added: frozenset[ServiceKey] = frozenset()
    managed_removed: frozenset[ServiceKey] = frozenset()
    kept: dict[str, KeptHost | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.hosts
            or self.pairs
            or self.vss
            or self.managed_added
            or self.managed_removed
            or self.kept
        )
