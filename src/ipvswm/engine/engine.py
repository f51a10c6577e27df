"""The decision engine (SPEC §4): events in, decisions and the desired table out; no I/O.

Time only ever comes from the `now` argument (wall-clock seconds, the clock of check results).
The engine is owned by one task; nothing here is thread-safe or needs to be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ipvswm.config.model import CheckTarget, Config
from ipvswm.engine import admin, agent, kept
from ipvswm.engine.builder import RampSchedule, StepBuilder
from ipvswm.engine.checkpoint import copy_attributes
from ipvswm.engine.depool import rebalance
from ipvswm.engine.kept import pair_admin
from ipvswm.engine.layout import Layout
from ipvswm.engine.outputs import Decision, KeptChange, Step
from ipvswm.engine.rules import (
    Context,
    check_cause,
    depool_candidate,
    evaluate,
    kept_in,
    ramp_cause,
    ramp_next_change,
    scaled_weight,
    significant,
)
from ipvswm.engine.sorry import SorryNotices
from ipvswm.engine.state import (
    HostState,
    KeptHost,
    PairId,
    PairState,
    Phase,
    StateChanges,
    StateSnapshot,
    TargetCheck,
    VsState,
)
from ipvswm.events import CheckResult, CheckStatus, ConfigLoaded, EngineEvent, ForgetHost, Tick
from ipvswm.kernel.table import ServiceEntry, ServiceKey, Table

_NO_HOST = HostState()
FORGET_NOTE = (
    "its admin state is kept and restored if it comes back within Config.ForgetAfter"
    " ('forget host {0}' drops it)"
)
Cause = str | Callable[[PairState], str]


class Engine:
    """Decides every pair's weight and phase and every VS's sorry server (SPEC §4)."""

    def __init__(
        self,
        config: Config,
        now: float,
        snapshot: StateSnapshot | None = None,
        kernel: Table | None = None,
    ) -> None:
        snap = snapshot if snapshot is not None else StateSnapshot()
        layout = self._layout = Layout(config)
        self._hosts = {tag: st for tag, st in snap.hosts.items() if tag in layout.hosts}
        self._pairs: dict[PairId, PairState] = {}
        self._vss: dict[str, VsState] = {}
        self._vs_sum: dict[str, int] = dict.fromkeys(layout.vss, 0)
        self._notices = SorryNotices(layout)
        # Per check target id (see Layout.target_ids):
        self._checks: dict[int, TargetCheck] = {}
        self._stale: list[set[PairId]] = [set(pids) for pids in layout.by_tid]  # not fresh yet
        self._awaiting: list[set[PairId]] = [set() for _ in layout.by_tid]  # in AWAIT_PASS
        self._adopted: dict[PairId, int] = {}
        self._agents = agent.AgentBook(layout, snap.pairs)  # what each pair's agent says
        self._ramps = RampSchedule()
        self._entries: dict[ServiceKey, ServiceEntry] = {}
        self._dirty: set[str] = set(layout.vss)
        self._managed: set[ServiceKey] = set(snap.managed)
        self._applied_seen: dict[str, ServiceEntry | None] = {}
        b = StepBuilder()
        b.hosts.update((tag, None) for tag in snap.hosts if tag not in layout.hosts)
        b.pairs.update((pid, None) for pid in snap.pairs if pid not in layout.pairs)
        b.vss.update((tag, None) for tag in snap.vss if tag not in layout.vss)
        # Admin state of hosts and pairs removed (also while the daemon was down) is kept.
        self._kept: dict[str, KeptHost] = dict(snap.kept)
        self._kept_due: float | None = None  # when the oldest kept entry expires (cache)
        self._expire(now, b)
        for tag, host_state in snap.hosts.items():
            if tag not in layout.hosts:
                self._keep_host(tag, host_state, now, b)
        for pid, pair_state in snap.pairs.items():
            if pid not in layout.pairs:
                self._keep_pair(pid, pair_state, now, b)
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
            old = snap.pairs.get(pid) or self._restore_pair(pid, PairState(), b)
            self._adopted[pid] = layout.adoption(pid, self._vss[pair.vs], old, kernel)
            self._pairs[pid] = old
            self._vs_sum[pair.vs] += old.weight
            self._settle(pid, old, now, "adopted from kernel" if pair.check else "start", b)
        self._sync_managed(b)
        b.recheck.update(layout.vss)
        self._close(b, now)
        b.touched.update(layout.keys.values())
        # Delivered with the first handle(): the daemon persists and logs it then.
        self._pending: StepBuilder | None = b

    # --- public API ---------------------------------------------------------------------------

    def checkpoint(self) -> Engine:
        """A copy of the working state to `rollback` to (e.g. when a commit fails)."""
        return copy_attributes(self)

    def rollback(self, checkpoint: Engine) -> None:
        """Back to the state of `checkpoint` (which must not be used afterwards)."""
        vars(self).update(vars(checkpoint))

    def handle(self, event: EngineEvent, now: float) -> Step:
        """Feed one event; returns what changed (the start-up changes come with the first call)."""
        b = self._pending if self._pending is not None else StepBuilder()
        self._pending = None
        b.begin()
        if self._kept and (self._kept_due is None or now >= self._kept_due):
            self._expire(now, b)
        if isinstance(event, CheckResult):
            self._on_check(event, now, b)
        elif isinstance(event, Tick):
            for pid in self._ramps.due(now):
                if pid in self._pairs:
                    self._settle(pid, self._pairs[pid], now, ramp_cause, b)
        elif isinstance(event, agent.AgentResult):
            for pid in self._agents.take(event):
                self._settle(pid, self._pairs[pid], now, self._agents.cause(event), b)
        elif isinstance(event, ConfigLoaded):
            self._reload(event.config, event.kernel, now, b)
        elif isinstance(event, ForgetHost):
            self._forget(event.host, b)
        else:
            plan = admin.plan(event, self._layout, self._hosts, self._pairs, now)
            if isinstance(plan, str):
                b.error = plan
            else:
                b.note = plan.note
                if plan.host is not None:
                    tag, host_state = plan.host
                    self._hosts[tag] = b.hosts[tag] = host_state
                for pid, base in plan.pairs.items():
                    self._settle(pid, base, now, plan.cause, b)
        self._close(b, now)
        return b.build(self.next_wakeup())

    def startup_step(self) -> Step:
        """The start-up step (decisions, state to persist, managed services) if not yet taken;
        otherwise it comes with the first handle(). Empty once delivered."""
        b = self._pending if self._pending is not None else StepBuilder()
        self._pending = None
        return b.build(self.next_wakeup())

    def desired_table(self) -> Table:
        """The services of the config with their destinations and desired weights."""
        for tag in self._dirty:
            sorry_on = self._vss[tag].sorry_on
            self._entries[self._layout.keys[tag]] = self._layout.entry(tag, self._pairs, sorry_on)
        self._dirty.clear()
        return Table(dict(self._entries))

    def managed(self) -> frozenset[ServiceKey]:
        """The desired services plus removed ones not yet confirmed gone from the kernel."""
        return frozenset(self._managed)

    def confirm_absent(self, actual: Table) -> StateChanges:
        """Forget removed services that the kernel no longer has."""
        desired = set(self._layout.keys.values())
        gone = {k for k in self._managed - desired if k not in actual.services}
        self._managed -= gone
        return StateChanges(managed_removed=frozenset(gone))

    def record_applied(self, actual: Table) -> StateChanges:
        """Remember each pair's weight in the kernel; returns only the pairs whose weight changed.

        A service entry that is the very object seen last time is skipped, so a caller that
        keeps unchanged entries makes this cost only the changed services.
        """
        out: dict[PairId, PairState | None] = {}
        layout = self._layout
        for tag, key in layout.keys.items():
            entry = actual.services.get(key)
            if tag in self._applied_seen and self._applied_seen[tag] is entry:
                continue
            self._applied_seen[tag] = entry
            for pid in layout.by_vs[tag]:
                dest = None if entry is None else entry.destinations.get(layout.dests[pid])
                weight = None if dest is None else dest.weight
                st = self._pairs[pid]
                if st.applied_weight != weight:
                    self._pairs[pid] = out[pid] = replace(st, applied_weight=weight)
        return StateChanges(pairs=out)

    def snapshot(self) -> StateSnapshot:
        """The whole state as the store saves it and the console shows it."""
        return StateSnapshot(
            hosts=dict(self._hosts),
            pairs=dict(self._pairs),
            vss=dict(self._vss),
            managed=frozenset(self._managed),
            kept=dict(self._kept),
        )

    def config(self) -> Config:
        """The config in force."""
        return self._layout.config

    def service_key(self, vs_tag: str) -> ServiceKey:
        """The kernel identity of a VS (KeyError if there is no such VS)."""
        return self._layout.keys[vs_tag]

    def pairs_for_target(self, target: CheckTarget) -> tuple[PairId, ...]:
        """The pairs a checker feeds."""
        return tuple(self._layout.pairs_of(target))

    def next_wakeup(self) -> float | None:
        """The earliest time a weight changes by time alone (a ramp step), if any."""
        return self._ramps.next()

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

    def _reload(self, config: Config, kernel: Table | None, now: float, b: StepBuilder) -> None:
        if config == self._layout.config:
            return  # e.g. only comments changed: every pair keeps its state as it is
        old, new = self._layout, Layout(config)
        before = self.desired_table().services
        gone_vss = {t for t in old.vss if t not in new.vss or old.keys[t] != new.keys[t]}
        for pid, pair in old.pairs.items():
            if pid not in new.pairs or pid[0] in gone_vss:
                st = self._pairs.pop(pid)
                self._keep_pair(pid, st, now, b)
                self._adopted.pop(pid, None)
                self._ramps.set(pid, None)
                b.pairs[pid] = None
                if pair.vs not in gone_vss:
                    self._vs_sum[pair.vs] -= st.weight
        for tag in gone_vss:
            del self._vss[tag], self._vs_sum[tag]
            b.vss[tag] = None
        for tag in old.hosts:
            if tag not in new.hosts and (host_state := self._hosts.pop(tag, None)) is not None:
                b.hosts[tag] = None
                self._keep_host(tag, host_state, now, b)
        for tag in new.hosts:
            if tag not in self._hosts:
                self._restore_host(tag, b)
        stale: list[set[PairId]] = []
        checks: dict[int, TargetCheck] = {}
        for target, tid in new.target_ids.items():
            old_tid = old.target_ids.get(target)
            if old_tid is None:
                stale.append(set())
                continue
            stale.append(self._stale[old_tid] & set(new.by_tid[tid]))
            if old_tid in self._checks:
                checks[tid] = self._checks[old_tid]
        born = [tag for tag in new.vss if tag not in self._vss]
        for tag in born:
            self._vss[tag] = VsState()
            self._vs_sum[tag] = 0
        causes: dict[PairId, str] = {}
        for pid, pair in new.pairs.items():
            if pid not in self._pairs:
                if kernel is None or kernel.destination(new.keys[pair.vs], new.dests[pid]) is None:
                    # A new pair, enabled now: it waits for a pass that starts after the reload,
                    # even if its checker already runs for another pair.
                    self._pairs[pid] = self._restore_pair(pid, PairState(enabled_at=now), b)
                    continue
                # In the kernel already: adopted as at start-up (no enable time, so a pass of
                # the live server that began before the reload counts).
                self._pairs[pid] = self._restore_pair(pid, PairState(), b)
                self._adopted[pid] = new.adoption(pid, self._vss[pair.vs], PairState(), kernel)
                causes[pid] = "adopted from kernel"
                if pair.check is not None:
                    stale[new.tids[pid]].add(pid)
            elif pair.check is not None and pair.check != old.pairs[pid].check:
                stale[new.tids[pid]].add(pid)  # keep its weight until the new checker reports
                same_dest = old.dests[pid] == new.dests[pid]
                self._adopted[pid] = self._pairs[pid].weight if same_dest else 0
        self._notices.reload(old, new, born)
        for tag in born:
            # A VS the kernel has is managed from now on; its sorry state starts as the kernel's.
            in_kernel = kernel is not None and new.keys[tag] in kernel.services
            if in_kernel and not sum(self._adopted.get(pid, 0) for pid in new.by_vs[tag]):
                self._vss[tag] = b.vss[tag] = VsState(True, now)
                self._notices.quiet_start(tag)
        self._layout = layout = new
        self._agents = agent.AgentBook(new, self._pairs, self._agents)
        self._checks = checks
        self._stale = stale
        self._awaiting = [set() for _ in new.by_tid]
        self._applied_seen.clear()
        for pid in new.pairs:
            self._settle(pid, self._pairs[pid], now, causes.get(pid, "config reload"), b)
        self._sync_managed(b)
        b.recheck.update(layout.vss)
        self._close(b, now)
        self._entries = {}
        self._dirty = set(layout.vss)
        after = self.desired_table().services
        b.touched.update(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))

    # --- kept admin state of removed hosts and pairs (engine.kept) -----------------------------

    def _set_kept(self, host: str, entry: KeptHost | None, b: StepBuilder) -> None:
        if entry:
            self._kept[host] = entry
        elif self._kept.pop(host, None) is None and host not in b.kept:
            return
        b.kept[host] = entry or None
        self._kept_due = None

    def _keep_pair(self, pid: PairId, state: PairState, now: float, b: StepBuilder) -> None:
        admin = pair_admin(state)
        if admin is not None:
            self._set_kept(pid[1], kept.with_pair(self._kept.get(pid[1]), pid[0], admin, now), b)
            b.messages.append(f"vs {pid[0]} host {pid[1]} removed: {FORGET_NOTE.format(pid[1])}")

    def _keep_host(self, tag: str, state: HostState, now: float, b: StepBuilder) -> None:
        if state.reasons:
            self._set_kept(tag, kept.with_host(self._kept.get(tag), state, now), b)
            b.messages.append(f"host {tag} removed: {FORGET_NOTE.format(tag)}")

    def _restore_pair(self, pid: PairId, base: PairState, b: StepBuilder) -> PairState:
        vs, host = pid
        entry = self._kept.get(host)
        if entry is None or vs not in entry.pairs:
            return base
        admin = entry.pairs[vs]
        self._set_kept(
            host, replace(entry, pairs={k: v for k, v in entry.pairs.items() if k != vs}), b
        )
        b.messages.append(
            f"vs {vs} host {host} is back: its kept admin state is restored"
            f" ({kept.describe(KeptHost(pairs={vs: admin}))})"
        )
        return kept.restore_pair(base, admin)

    def _restore_host(self, tag: str, b: StepBuilder) -> None:
        entry = self._kept.get(tag)
        if entry is None or not entry.reasons:
            return
        self._hosts[tag] = b.hosts[tag] = HostState(entry.reasons)
        self._set_kept(tag, replace(entry, reasons=frozenset()), b)
        b.messages.append(
            f"host {tag} is back: its kept host reasons are restored"
            f" ({','.join(sorted(entry.reasons))})"
        )

    def _expire(self, now: float, b: StepBuilder) -> None:
        """Forget kept entries older than Config.ForgetAfter."""
        keep_for = self._layout.config.options.config_forget_after
        for tag, entry in list(self._kept.items()):
            if entry.removed_at + keep_for <= now:
                self._set_kept(tag, None, b)
                b.messages.append(
                    f"host {tag}: kept admin state forgotten after Config.ForgetAfter="
                    f"{keep_for:g}s ({kept.describe(entry)})"
                )
        self._kept_due = min((e.removed_at for e in self._kept.values()), default=now) + keep_for

    def _forget(self, host: str, b: StepBuilder) -> None:
        """`forget host H`: drop the kept admin state of H's removed parts."""
        entry = self._kept.get(host)
        if entry is None:
            b.error = f"# no kept admin state for host '{host}'"
            return
        self._set_kept(host, None, b)
        b.note = f"forgot {kept.describe(entry)}"
        b.messages.append(f"host {host}: kept admin state forgotten ({kept.describe(entry)})")

    # --- the core -----------------------------------------------------------------------------

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
        for tag in sorted(b.recheck):
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

    def _sync_managed(self, b: StepBuilder) -> None:
        for key in self._layout.keys.values():
            if key not in self._managed:
                self._managed.add(key)
                b.managed_added.add(key)
