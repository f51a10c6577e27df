"""Accumulates what one engine step produces, then freezes it into a Step."""

from __future__ import annotations

import heapq
from dataclasses import replace

from ipvswm.answers import Refused
from ipvswm.engine.outputs import Decision
from ipvswm.engine.outputs import KeptChange
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.outputs import Step
from ipvswm.engine.state import HostState
from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import StateChanges
from ipvswm.engine.state import VsState
from ipvswm.kernel.table import ServiceKey


class StepBuilder:
    """The mutable draft of a Step."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.alerts: list[SorryChange] = []
        self.hosts: dict[str, HostState | None] = {}
        self.pairs: dict[PairId, PairState | None] = {}
        self.vss: dict[str, VsState | None] = {}
        self.kept: dict[str, KeptHost | None] = {}
        self.messages: list[str] = []  # what the owner logs (kept and restored admin state)
        self.touched: set[ServiceKey] = set()
        self.recheck: set[str] = set()  # VS tags whose sorry state must be re-derived
        self.limit: set[str] = set()  # VS tags whose depool threshold must be re-applied
        self.kept_changes: list[KeptChange] = []  # depool-threshold switches
        self._decided: dict[tuple[str, str], int] = {}  # (vs, host) -> index in decisions
        self.error: Refused | None = None
        self.note: str | None = None

    def begin(self) -> None:
        """A new event: decisions from now on merge only with each other (see `decide`)."""
        self._decided = {}

    def decide(self, decision: Decision) -> None:
        """Record a decision; a second one for the same pair within one event replaces the first,
        keeping its old weight and phase, so a pair that the depool threshold settles after its
        own rules is logged once, from where it was to where it ends (or not at all)."""
        key = (decision.vs, decision.host)
        index = self._decided.get(key)
        if index is None:
            self._decided[key] = len(self.decisions)
            self.decisions.append(decision)
            return
        first = self.decisions[index]
        self.decisions[index] = replace(
            decision, old_weight=first.old_weight, old_phase=first.old_phase
        )

    def changes(self) -> StateChanges:
        """The state changes gathered so far."""
        return StateChanges(
            hosts=dict(self.hosts),
            pairs=dict(self.pairs),
            vss=dict(self.vss),
            kept=dict(self.kept),
        )

    def build(self, next_wakeup: float | None) -> Step:
        """The finished step."""
        return Step(
            decisions=tuple(
                d
                for d in self.decisions
                if d.old_weight != d.new_weight or d.old_phase is not d.new_phase
            ),
            alerts=tuple(self.alerts),
            changes=self.changes(),
            error=self.error,
            next_wakeup=next_wakeup,
            touched=frozenset(self.touched),
            note=self.note,
            messages=tuple(self.messages),
            kept=tuple(self.kept_changes),
        )


class RampSchedule:
    """When each ramping pair's weight next changes: a lazy heap (stale entries skipped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, PairId]] = []
        self._next: dict[PairId, float] = {}

    def set(self, pid: PairId, when: float | None) -> None:
        """Schedule (or, with None, cancel) the pair's next change."""
        if when is None:
            self._next.pop(pid, None)
            return
        if self._next.get(pid) == when:
            return
        self._next[pid] = when
        heapq.heappush(self._heap, (when, pid))

    def due(self, now: float) -> list[PairId]:
        """Pop every pair whose change time has come."""
        out: list[PairId] = []
        while self._heap and self._heap[0][0] <= now:
            when, pid = heapq.heappop(self._heap)
            if self._next.get(pid) == when:
                del self._next[pid]
                out.append(pid)
        return out

    def next(self) -> float | None:
        """The earliest pending change."""
        while self._heap:
            when, pid = self._heap[0]
            if self._next.get(pid) == when:
                return when
            heapq.heappop(self._heap)
        return None
