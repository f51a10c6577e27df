"""The engine's working state and the core every event goes through: settle a pair, record what
changed, close a step (depool thresholds, sorry servers). Pure; built once at start-up.

Time only ever comes from the `now` argument (wall-clock seconds, the clock of check results).
The engine is owned by one task; nothing here is thread-safe or needs to be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ipvswm.config.model import Config
from ipvswm.engine.agent import AgentBook
from ipvswm.engine.builder import RampSchedule
from ipvswm.engine.builder import StepBuilder
from ipvswm.engine.depool import rebalance
from ipvswm.engine.kept import KeptBook
from ipvswm.engine.layout import Layout
from ipvswm.engine.outputs import Decision
from ipvswm.engine.outputs import KeptChange
from ipvswm.engine.rules import Context
from ipvswm.engine.rules import depool_candidate
from ipvswm.engine.rules import evaluate
from ipvswm.engine.rules import kept_in
from ipvswm.engine.rules import ramp_next_change
from ipvswm.engine.rules import scaled_weight
from ipvswm.engine.rules import significant
from ipvswm.engine.sorry import FirstRound
from ipvswm.engine.sorry import SorryNotices
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import TargetCheck
from ipvswm.engine.state import VsState
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

_NO_HOST = HostState()
Cause = str | Callable[[PairState], str]


class Core:
    """Every pair's, host's and VS's state under one config, and the rules that move it."""

    def __init__(
        self,
        config: Config,
        now: float,
        snapshot: StateSnapshot | None = None,
        kernel: Table | None = None,
    ) -> None:
        snap = snapshot if snapshot is not None else StateSnapshot()
        self._steps = 0  # steps taken: a plan is applied only to the state it was made on
        layout = self._layout = Layout(config)
        self._hosts = {tag: st for tag, st in snap.hosts.items() if tag in layout.hosts}
        self._pairs: dict[PairId, PairState] = {}
        self._vss: dict[str, VsState] = {}
        self._vs_sum: dict[str, int] = dict.fromkeys(layout.vss, 0)
        self._notices = SorryNotices(layout)
        self._first = FirstRound()  # cold VSs whose sorry server waits for their first checks
        # Per check target id (see Layout.target_ids):
        self._checks: dict[int, TargetCheck] = {}
        self._stale: list[set[PairId]] = [set(pids) for pids in layout.by_tid]  # not fresh yet
        self._awaiting: list[set[PairId]] = [set() for _ in layout.by_tid]  # in AWAIT_PASS
        self._adopted: dict[PairId, int] = {}  # the kernel's weight, kept until a first check
        self._agents = AgentBook(layout, snap.pairs)  # what each pair's agent says
        self._ramps = RampSchedule()
        self._entries: dict[ServiceKey, ServiceEntry] = {}  # the desired table, by service
        self._dirty: set[str] = set(layout.vss)  # VSs whose entry must be rebuilt
        b = StepBuilder()
        b.hosts.update((tag, None) for tag in snap.hosts if tag not in layout.hosts)
        b.pairs.update((pid, None) for pid in snap.pairs if pid not in layout.pairs)
        b.vss.update((tag, None) for tag in snap.vss if tag not in layout.vss)
        # Admin state of hosts and pairs removed (also while the daemon was down) is kept.
        self._kept = KeptBook(snap.kept)
        self._kept.expire(now, config.options.config_forget_after, b)
        for tag, host_state in snap.hosts.items():
            if tag not in layout.hosts:
                self._kept.keep_host(tag, host_state, now, b)
        for pid, pair_state in snap.pairs.items():
            if pid not in layout.pairs:
                self._kept.keep_pair(pid, pair_state, now, b)
        for tag in layout.hosts:
            if tag not in self._hosts:
                self._restore_host(tag, b)
        for tag in layout.vss:
            self._vss[tag] = snap.vss.get(tag, VsState())
        for tid, pids in enumerate(layout.by_tid):
            known = [snap.pairs[p] for p in pids if p in snap.pairs]
            if known:
                st = max(known, key=lambda s: s.last_check_started or float("-inf"))
                self._checks[tid] = TargetCheck(
                    st.check_status,
                    st.check_cause,
                    st.last_pass_started,
                    st.last_check_started,
                    st.last_check_ended,
                )
        for pid, pair in layout.pairs.items():
            old = snap.pairs.get(pid) or self._kept.restore_pair(pid, PairState(), b)
            self._adopted[pid] = layout.adoption(pid, self._vss[pair.vs], kernel)
            self._pairs[pid] = old
            self._vs_sum[pair.vs] += old.weight
            self._settle(pid, old, now, "adopted from kernel" if pair.check else "start", b)
        for tag, key in layout.keys.items():
            if kernel is None or key not in kernel.services:
                self._first.wait(layout, tag, now)  # served by nobody yet: no flapping sorry
        b.recheck.update(layout.vss)
        self._close(b, now)
        b.touched.update(layout.keys.values())
        # Delivered with the first step: the daemon persists and logs it then.
        self._pending: StepBuilder | None = b

    def _begin(self, now: float) -> StepBuilder:
        """The builder of a new step (with the start-up changes if not yet delivered)."""
        b = self._pending if self._pending is not None else StepBuilder()
        self._pending = None
        b.begin()
        if self._kept.due(now):
            self._kept.expire(now, self._layout.config.options.config_forget_after, b)
        return b

    def _restore_host(self, tag: str, b: StepBuilder) -> None:
        restored = self._kept.restore_host(tag, b)
        if restored is not None:
            self._hosts[tag] = b.hosts[tag] = restored

    def _desired(self) -> dict[ServiceKey, ServiceEntry]:
        """The desired entries, those of the VSs changed since last time rebuilt."""
        for tag in self._dirty:
            sorry_on = self._vss[tag].sorry_on
            self._entries[self._layout.keys[tag]] = self._layout.entry(tag, self._pairs, sorry_on)
        self._dirty.clear()
        return self._entries

    def _settle(
        self, pid: PairId, base: PairState, now: float, cause: Cause, b: StepBuilder
    ) -> None:
        """Re-evaluate one pair from a base state and record what changed."""
        pair = self._layout.pairs[pid]
        state, fresh, pct = base, True, None
        tid = self._layout.tids.get(pid)
        if tid is not None:
            info = self._checks.get(tid)
            if info is not None:
                pct = info.weight_pct
                state = replace(
                    state,
                    check_status=info.status,
                    check_cause=info.cause,
                    last_pass_started=info.last_pass_started,
                    last_check_started=info.last_started,
                    last_check_ended=info.last_ended,
                )
            fresh = pid not in self._stale[tid]
        target = pair.weight if state.override is None else state.override
        # The override sets T, a check's percentage scales it, then the agent (engine.agent).
        state, target = self._agents.before(pid, state, scaled_weight(target, pct))
        opts = self._layout.config.options
        ctx = Context(
            target=target,
            host_reasons=self._hosts.get(pair.host, _NO_HOST).reasons,
            checked=pair.check is not None or self._agents.failing(pid),
            fresh=fresh,
            adopted=self._adopted.get(pid, 0),
            trigger_time=opts.ramping_trigger_time,
            ramp_duration=opts.ramping_duration,
        )
        new = self._agents.after(pid, evaluate(state, ctx, now), fresh)
        if not fresh and new.phase is Phase.DISABLED:
            self._adopted[pid] = 0  # the kernel will have 0 from now on
        old = self._pairs[pid]
        if self._layout.vss[pair.vs].depool_threshold > 0 or old.phase is Phase.FAILING_KEPT:
            b.limit.add(pair.vs)  # _close re-applies the threshold to the whole VS
            if old.phase is Phase.FAILING_KEPT and fresh and depool_candidate(new):
                new = kept_in(new, target)  # still failing: kept unless the VS needs it no more
        self._record(pid, new, cause, b, now, target if fresh else None)

    def _record(
        self,
        pid: PairId,
        new: PairState,
        cause: Cause,
        b: StepBuilder,
        now: float,
        target: int | None,
    ) -> None:
        """Make `new` the pair's state and record what changed; `target` (None while not fresh)
        times its ramp."""
        pair = self._layout.pairs[pid]
        tid = self._layout.tids.get(pid)
        old = self._pairs[pid]
        self._pairs[pid] = new
        if new.weight != old.weight or new.phase is not old.phase:
            text = cause if isinstance(cause, str) else cause(new)
            b.decide(
                Decision(pair.vs, pair.host, old.weight, new.weight, old.phase, new.phase, text)
            )
            if new.weight != old.weight:
                self._vs_sum[pair.vs] += new.weight - old.weight
                self._dirty.add(pair.vs)
                b.touched.add(self._layout.keys[pair.vs])
                b.recheck.add(pair.vs)
        if significant(new) != significant(old):
            b.pairs[pid] = new
        if tid is not None:
            if new.phase is Phase.AWAIT_PASS:
                self._awaiting[tid].add(pid)
            else:
                self._awaiting[tid].discard(pid)
        when = None
        if target is not None and new.phase is Phase.RAMPING and new.ramp_deadline is not None:
            when = ramp_next_change(target, new.ramp_deadline, now)
        self._ramps.set(pid, when)

    def _close(self, b: StepBuilder, now: float) -> None:
        """Apply depool thresholds, then derive the sorry state of every VS whose weight sum
        may have changed."""
        for tag in sorted(b.limit):
            self._limit(tag, now, b)
        b.limit.clear()
        b.recheck.update(self._first.due(now))
        for tag in sorted(b.recheck):
            if self._first.holds(tag, self._notices.unchecked(tag), now):
                continue  # decided once its first round of checks has reported
            need = self._vs_sum[tag] == 0
            st = self._vss[tag]
            sorry = self._layout.sorry[tag]
            label = "" if sorry is None else sorry.label
            if need != st.sorry_on:
                since = now if need else None
                self._vss[tag] = b.vss[tag] = replace(st, sorry_on=need, sorry_since=since)
                self._dirty.add(tag)
                b.touched.add(self._layout.keys[tag])
                b.alerts.append(self._notices.switch(tag, st, need, now, label))
            else:
                confirmed = self._notices.confirm(tag, st, now, label)
                if confirmed is not None:
                    b.alerts.append(confirmed)
        b.recheck.clear()

    def _limit(self, tag: str, now: float, b: StepBuilder) -> None:
        """Re-apply a VS's depool threshold; announce when it starts or stops keeping pairs."""
        layout = self._layout

        def fresh(pid: PairId) -> bool:
            tid = layout.tids.get(pid)
            return tid is None or pid not in self._stale[tid]

        plan = rebalance(layout, tag, self._pairs, self._hosts, fresh, now)
        for pid, new, cause in plan.changes:
            self._record(pid, new, cause, b, now, None)  # kept or out: no ramp to schedule
        st = self._vss[tag]
        threshold = layout.vss[tag].depool_threshold
        if plan.keeping and st.kept_since is None:
            self._vss[tag] = b.vss[tag] = replace(st, kept_since=now)
            b.kept_changes.append(KeptChange(tag, True, now, threshold, plan.keeping))
        elif not plan.keeping and st.kept_since is not None:
            self._vss[tag] = b.vss[tag] = replace(st, kept_since=None)
            after = max(now - st.kept_since, 0.0)
            b.kept_changes.append(KeptChange(tag, False, now, threshold, after=after))
