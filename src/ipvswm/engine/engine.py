"""The decision engine (SPEC §4): events in, decisions and the desired table out; no I/O.

Two ways in. `handle(event, now)` for what happens (check results, agent polls, time, a reload):
the engine changes and says what changed. `plan(event, now)` then `apply(plan, now)` for what
an operator asks (admin commands, `forget host`): the plan is a value (what to commit, or why
not), computed without changing anything, so the owner commits it first and applies it only
once the commit worked; a failed commit leaves the engine as it was.
"""

from __future__ import annotations

from dataclasses import replace

from ipvswm.answers import Refused
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.engine.admin import AdminPlan
from ipvswm.engine.admin import plan_admin
from ipvswm.engine.builder import StepBuilder
from ipvswm.engine.kept import describe
from ipvswm.engine.outputs import Step
from ipvswm.engine.reload import Reloading
from ipvswm.engine.rules import check_cause
from ipvswm.engine.rules import ramp_cause
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import StateChanges
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import TargetCheck
from ipvswm.events import AdminEvent
from ipvswm.events import AgentResult
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import ConfigLoaded
from ipvswm.events import EngineEvent
from ipvswm.events import ForgetHost
from ipvswm.events import Tick
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table


class Engine(Reloading):
    """Decides every pair's weight and phase and every VS's sorry server (SPEC §4)."""

    # --- public API ---------------------------------------------------------------------------

    def handle(self, event: EngineEvent, now: float) -> Step:
        """Feed one event; returns what changed (the start-up changes come with the first call).

        An admin event is planned and applied at once (a change another director committed);
        a refused one changes nothing and comes back as the step's `error`.
        """
        refused: Refused | None = None
        if isinstance(event, AdminEvent | ForgetHost):
            planned = self.plan(event, now)
            if not isinstance(planned, Refused):
                return self.apply(planned, now)
            refused = planned
        b = self._begin(now)
        self._steps += 1
        b.error = refused
        if isinstance(event, CheckResult):
            self._on_check(event, now, b)
        elif isinstance(event, Tick):
            for pid in self._ramps.due(now):
                if pid in self._pairs:
                    self._settle(pid, self._pairs[pid], now, ramp_cause, b)
        elif isinstance(event, AgentResult):
            for pid in self._agents.take(event):
                self._settle(pid, self._pairs[pid], now, self._agents.cause(event), b)
        elif isinstance(event, ConfigLoaded):
            self._reload(event.config, event.kernel, now, b)
        self._close(b, now)
        return b.build(self.next_wakeup())

    def plan(self, event: AdminEvent | ForgetHost, now: float) -> AdminPlan | Refused:
        """What an admin event would change, with the state changes to commit before `apply`,
        or why it is refused. Changes nothing."""
        if isinstance(event, ForgetHost):
            entry = self._kept.entries.get(event.host)
            keep_for = self._layout.config.options.config_forget_after
            if entry is None or self._kept.expired(event.host, now, keep_for):
                return Refused(f"no kept admin state for host '{event.host}'")
            changes = StateChanges(kept={event.host: None})
            note = f"forgot {describe(entry)}"
            return AdminPlan("", note=note, forget=event.host, changes=changes, made=self._steps)
        planned = plan_admin(event, self._layout, self._hosts, self._pairs, now)
        if isinstance(planned, Refused):
            return planned
        pairs: dict[PairId, PairState | None] = {
            pid: base for pid, base in planned.pairs.items() if base != self._pairs[pid]
        }
        hosts = dict([planned.host]) if planned.host is not None else {}
        changes = StateChanges(hosts=dict(hosts), pairs=pairs)
        return replace(planned, changes=changes, made=self._steps)

    def apply(self, plan: AdminPlan, now: float) -> Step:
        """Apply a plan of `plan` (committed by the caller) to the state it was made on."""
        if plan.made != self._steps:
            raise ValueError("an admin plan applied to another state than the one it was made on")
        b = self._begin(now)
        self._steps += 1
        b.note = plan.note
        if plan.forget is not None:
            self._kept.forget(plan.forget, b)
        if plan.host is not None:
            tag, host_state = plan.host
            self._hosts[tag] = b.hosts[tag] = host_state
        for pid, base in plan.pairs.items():
            self._settle(pid, base, now, plan.cause, b)
        self._close(b, now)
        return b.build(self.next_wakeup())

    def startup_step(self) -> Step:
        """The start-up step (decisions, state to persist) if not yet taken; otherwise it comes
        with the first handle(). Empty once delivered."""
        b = self._pending if self._pending is not None else StepBuilder()
        self._pending = None
        return b.build(self.next_wakeup())

    def desired_table(self) -> Table:
        """The services of the config with their destinations and desired weights."""
        return Table(dict(self._desired()))

    def snapshot(self) -> StateSnapshot:
        """The whole state as the store saves it and the console shows it; `managed` is the
        desired services (the kernel sync manages these and removed ones until they are gone)."""
        return StateSnapshot(
            hosts=dict(self._hosts),
            pairs=dict(self._pairs),
            vss=dict(self._vss),
            managed=frozenset(self._layout.keys.values()),
            kept=dict(self._kept.entries),
        )

    def config(self) -> Config:
        """The config in force."""
        return self._layout.config

    def service_key(self, vs_tag: str) -> ServiceKey:
        """The kernel identity of a VS (KeyError if there is no such VS)."""
        return self._layout.keys[vs_tag]

    def service_keys(self) -> frozenset[ServiceKey]:
        """The kernel identities of the config's VSs (the desired services)."""
        return frozenset(self._layout.keys.values())

    def pairs_for_target(self, target: CheckTarget) -> tuple[PairId, ...]:
        """The pairs a checker feeds."""
        return tuple(self._layout.pairs_of(target))

    def next_wakeup(self) -> float | None:
        """The earliest time something changes by time alone (a ramp step, or the deadline of a
        cold VS's sorry decision), if any."""
        times = [t for t in (self._ramps.next(), self._first.next()) if t is not None]
        return min(times) if times else None

    # --- events -------------------------------------------------------------------------------

    def _on_check(self, result: CheckResult, now: float, b: StepBuilder) -> None:
        tid = self._layout.target_ids.get(result.target)
        if tid is None:
            return  # a checker of an older config still reporting
        pids = self._layout.by_tid[tid]
        old = self._checks.get(tid, TargetCheck())
        last_pass = old.last_pass_started
        if result.passed and (last_pass is None or result.started > last_pass):
            last_pass = result.started
        self._checks[tid] = TargetCheck(
            result.status, result.cause, last_pass, result.started, result.ended, result.weight_pct
        )
        # Only pairs this result can change are re-evaluated: O(1) for a steady checker.
        todo: set[PairId] = set()
        if result.status is not old.status or result.weight_pct != old.weight_pct:
            todo.update(pids)
        elif result.passed:
            todo.update(self._awaiting[tid])
        if result.status is not CheckStatus.UNKNOWN:
            todo.update(self._stale[tid])
            self._stale[tid].clear()
            b.recheck.update(self._notices.reported(tid))
        if not todo:
            return
        ordered = pids if len(todo) == len(pids) else sorted(todo)

        def cause(new: PairState) -> str:
            return check_cause(result.status, result.cause, new)

        for pid in ordered:
            self._settle(pid, self._pairs[pid], now, cause, b)
