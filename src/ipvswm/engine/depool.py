"""The depool threshold (SPEC §4, §11): which failing pairs of a VS stay in service.

A VS with `depool_threshold=F` lets failing checks take its pairs out only while the pairs left
in service carry at least F of its *eligible target weight*: the sum of T over its pairs that no
operator has disabled and that are in service or were taken out by a failing check (a pair still
waiting for its first pass since start-up or since its enable has never been in service, so no
check took it out). Beyond that, failing pairs stay in at their target weight, in phase
FAILING_KEPT: the ones that failed last first, as many as it takes. Recomputed from scratch on
every change of the VS, so when some pairs recover the kept ones leave in order of failure (the
earliest failure first), and when an operator disables a healthy pair a failed one may come back.
Operator reasons are never limited: a disabled pair is simply not eligible.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass

from ipvswm.engine.layout import Layout
from ipvswm.engine.rules import depool_candidate
from ipvswm.engine.rules import kept_in
from ipvswm.engine.rules import taken_out
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase

# Weights are integers and F a short decimal: this only absorbs float error in F * total.
_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Member:
    """One pair of a VS as the threshold sees it."""

    pid: PairId
    target: int  # T: the override if set, else the configured weight
    weight: int  # what it carries now (counted unless it is a candidate)
    eligible: bool  # counts in the eligible target weight
    failed_at: float | None = None  # set exactly for the candidates (failing, may be kept in)


def required(members: Iterable[Member], threshold: float) -> float:
    """F x the eligible target weight."""
    return threshold * sum(m.target for m in members if m.eligible)


def carried(members: Iterable[Member], kept: set[PairId]) -> int:
    """The weight in service: eligible non-candidates as they are, plus the kept candidates."""
    total = 0
    for m in members:
        if m.failed_at is None:
            total += m.weight if m.eligible else 0
        elif m.pid in kept:
            total += m.target
    return total


def choose_kept(members: list[Member], threshold: float) -> set[PairId]:
    """The candidates to keep in: the latest failures first, until the threshold is met."""
    if threshold <= 0:
        return set()
    need = required(members, threshold) - _SLACK
    have = carried(members, set())
    order = {m.pid: i for i, m in enumerate(members)}
    candidates = sorted(
        (m for m in members if m.failed_at is not None and m.target > 0),
        key=lambda m: (-(m.failed_at or 0.0), order[m.pid]),
    )
    kept: set[PairId] = set()
    for m in candidates:
        if have >= need:
            break
        kept.add(m.pid)
        have += m.target
    return kept


@dataclass(frozen=True, slots=True)
class Rebalance:
    """What the threshold changes in one VS: new pair states (with their cause), and whether
    it keeps any failing pair in."""

    changes: list[tuple[PairId, PairState, str]]
    keeping: tuple[str, ...]  # host tags of the pairs kept in (adopted ones included)


def rebalance(
    layout: Layout,
    tag: str,
    pairs: Mapping[PairId, PairState],
    hosts: Mapping[str, HostState],
    fresh: Callable[[PairId], bool],
    now: float,
) -> Rebalance:
    """Apply the VS's threshold to the current states of its pairs."""
    threshold = layout.vss[tag].depool_threshold
    members: list[Member] = []
    for pid in layout.by_vs[tag]:
        st = pairs[pid]
        target = layout.pairs[pid].weight if st.override is None else st.override
        host = hosts.get(pid[1])
        free = not st.reasons and not (host is not None and host.reasons)
        candidate = free and fresh(pid) and depool_candidate(st)
        members.append(
            Member(
                pid,
                target,
                st.weight,
                eligible=free and (st.weight > 0 or st.failed_at is not None),
                failed_at=st.failed_at if candidate else None,
            )
        )
    keep = choose_kept(members, threshold)
    changes: list[tuple[PairId, PairState, str]] = []
    keeping: list[str] = []
    for m in members:
        st = pairs[m.pid]
        if m.failed_at is None:
            if st.phase is Phase.FAILING_KEPT:
                keeping.append(m.pid[1])  # adopted after a restart: kept until its check says
            continue
        if m.pid in keep:
            keeping.append(m.pid[1])
            new = kept_in(st, m.target)
            cause = f"{_failed(st)}; kept in by the depool threshold ({threshold:g})"
        else:
            new = taken_out(st, now)
            why = f"the others carry the depool threshold ({threshold:g})"
            cause = f"{_failed(st)}; {why if threshold > 0 else 'depool threshold off'}"
        if new != st:
            changes.append((m.pid, new, cause))
    return Rebalance(changes, tuple(keeping))


def _failed(state: PairState) -> str:
    return f"check failed: {state.check_cause}" if state.check_cause else "check failed"
