"""The per-pair rules of SPEC §4: from a pair's state, context and the time to weight and phase."""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import replace

from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.events import CheckStatus

# Remaining ramp time is rounded to this many decimals so that float noise in `D - now`
# (e.g. 8.999999999 instead of 9) never bumps the ceiling: the curve must be exactly the original's.
_TIME_DECIMALS = 9
# With large weights the curve changes many times a second; sample it at most this often.
MIN_RAMP_STEP = 0.1
_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Context:
    """What the rules need about a pair besides its own state."""

    target: int  # T: the override if set, else the configured weight
    host_reasons: frozenset[str]
    checked: bool  # False for a check `-` (always passing)
    fresh: bool  # a check result (PASS or FAIL) arrived since start or since the target changed
    adopted: int  # the kernel's weight, used while not fresh
    trigger_time: float  # Ramping.TriggerTime
    ramp_duration: float  # Ramping.Duration


def ramp_weight(target: int, deadline: float, now: float) -> int:
    """The original's ramp curve: ceil(T / (max(D - now, 0) + 1))."""
    remaining = round(max(deadline - now, 0.0), _TIME_DECIMALS)
    return math.ceil(target / (remaining + 1.0))


def ramp_next_change(target: int, deadline: float, now: float) -> float | None:
    """When a ramp's weight (or phase) next changes by time alone; None once it is over."""
    if now >= deadline:
        return None
    weight = ramp_weight(target, deadline, now)
    if weight <= 0 or weight >= target:
        return deadline
    # ceil(T / (D - t + 1)) exceeds w just after t = D + 1 - T / w.
    change = deadline + 1.0 - target / weight + _EPSILON
    return min(max(change, now + MIN_RAMP_STEP), deadline)


MAX_WEIGHT = 65535


def scaled_weight(target: int, pct: int | None) -> int:
    """T scaled by a check's weight percentage: ceil(T x p / 100), at least 1 while p > 0."""
    if pct is None or target <= 0:
        return target
    if pct <= 0:
        return 0
    return min(max(math.ceil(target * pct / 100), 1), MAX_WEIGHT)


def awaiting_pass(state: PairState) -> bool:
    """Rule 2: no PASS status, or the last pass started before the last enable or the outage."""
    if state.check_status is not CheckStatus.PASS or state.last_pass_started is None:
        return True
    started = state.last_pass_started
    if state.enabled_at is not None and started < state.enabled_at:
        return True
    return state.down_since is not None and started < state.down_since


def evaluate(state: PairState, ctx: Context, now: float) -> PairState:
    """Apply rules 1-5 (and adoption while not fresh) to a pair; returns its new state."""
    if ctx.host_reasons or state.reasons:
        return replace(
            state,
            weight=0,
            phase=Phase.DISABLED,
            down_since=now if state.down_since is None else state.down_since,
            ramp_duration=None,
            ramp_deadline=None,
            failed_at=None,  # an operator took it out: no check did
        )
    if ctx.checked and not ctx.fresh:
        return replace(state, weight=ctx.adopted, phase=_adopted_phase(state, ctx))
    if ctx.checked and awaiting_pass(state):
        failed_at = state.failed_at
        if failed_at is None and state.weight > 0 and state.check_status is CheckStatus.FAIL:
            failed_at = now  # a failing check takes it out of service (or would: see depool)
        return replace(
            state,
            weight=0,
            phase=Phase.AWAIT_PASS,
            down_since=now if state.down_since is None else state.down_since,
            ramp_deadline=None,  # the duration stays: the ramp restarts from the beginning
            failed_at=failed_at,
        )
    duration = state.ramp_duration
    deadline = state.ramp_deadline
    if deadline is None:
        # Rule 3: the pair may carry weight again (or simply still does).
        down = state.down_since
        if duration is None and down is not None and now - down >= ctx.trigger_time:
            duration = ctx.ramp_duration
        if duration is not None:
            deadline = now + duration
    if deadline is not None and now < deadline and ctx.target > 0:
        return replace(
            state,
            weight=ramp_weight(ctx.target, deadline, now),
            phase=Phase.RAMPING,
            down_since=None,
            ramp_duration=duration,
            ramp_deadline=deadline,
            failed_at=None,
        )
    return replace(
        state,
        weight=ctx.target,
        phase=Phase.ENABLED,
        down_since=None,
        ramp_duration=None,
        ramp_deadline=None,
        failed_at=None,
    )


def depool_candidate(state: PairState) -> bool:
    """Whether the depool threshold may keep the pair in: out (or kept) by a failing check only."""
    return (
        state.failed_at is not None
        and state.check_status is CheckStatus.FAIL
        and state.phase in (Phase.AWAIT_PASS, Phase.FAILING_KEPT)
    )


def kept_in(state: PairState, target: int) -> PairState:
    """A failing pair kept in service by the depool threshold: it carries its target weight.

    It is not down (so no ramp on recovery) and any ramp it had is over.
    """
    return replace(
        state,
        weight=target,
        phase=Phase.FAILING_KEPT,
        down_since=None,
        ramp_duration=None,
        ramp_deadline=None,
    )


def taken_out(state: PairState, now: float) -> PairState:
    """A failing pair the depool threshold no longer keeps: out of service from now (rule 2)."""
    if state.phase is Phase.AWAIT_PASS:
        return state
    return replace(state, weight=0, phase=Phase.AWAIT_PASS, down_since=now, ramp_deadline=None)


def _adopted_phase(state: PairState, ctx: Context) -> Phase:
    """The phase shown while a pair keeps the kernel's weight until its first check."""
    if ctx.adopted > 0:
        if state.phase is Phase.FAILING_KEPT:
            return Phase.FAILING_KEPT  # kept in before a restart: still is until its check says
        return Phase.RAMPING if state.ramp_deadline is not None else Phase.ENABLED
    if state.phase is Phase.ENABLED and ctx.target == 0:
        return Phase.ENABLED
    return Phase.AWAIT_PASS


def significant(state: PairState) -> tuple[object, ...]:
    """The fields whose change is persisted (not every check's timestamps, nor its cause)."""
    return (
        state.reasons,
        state.enabled_at,
        state.down_since,
        state.ramp_duration,
        state.ramp_deadline,
        state.override,
        state.check_status,
        state.weight,
        state.phase,
        state.failed_at,
    )


def check_cause(status: CheckStatus, cause: str, new: PairState) -> str:
    """The cause of a decision taken on a check result."""
    if new.phase is Phase.AWAIT_PASS:
        if status is CheckStatus.FAIL:
            return f"check failed: {cause}" if cause else "check failed"
        if status is CheckStatus.UNKNOWN:
            return "no check status yet"
        return "awaiting a pass that started after the enable"
    if new.phase is Phase.RAMPING:
        return f"check passed, ramp {new.ramp_duration or 0:g}s"
    if new.phase is Phase.DISABLED:
        return "disabled"
    if new.phase is Phase.FAILING_KEPT:
        failed = f"check failed: {cause}" if cause else "check failed"
        return f"{failed}; kept in by the depool threshold"
    return "check passed"


def ramp_cause(new: PairState) -> str:
    """The cause of a decision taken as time passed."""
    return "ramp" if new.phase is Phase.RAMPING else "ramp done"
