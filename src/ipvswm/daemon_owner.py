"""The one owner of the engine: takes queued events in batches, commits, then asks the applier.

Order within a batch (SPEC §6): an admin command is planned by the engine (a value, nothing
changed), its state change committed in its own transaction, and only then applied to the engine
and acknowledged, before the kernel is changed for it; if that commit fails nothing is applied
and the command is refused. State changes caused by checks (and the weights an admin command
leads to) are committed once per batch; if that fails they are kept and retried with the next
batch, and the kernel still follows the checks (a dead server must lose its weight even when the
disk is full). The kernel sync's managed-set bookkeeping rides along with the next commit.

The kernel follows in the applier task (daemon_applier): the owner never waits for the kernel, so
a hung ipvsadm delays neither the next commit nor its answer (issue 10 item 11).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ipvswm.alerts import host_lines
from ipvswm.answers import Answer, Applied, Refused
from ipvswm.checks.execcheck import SLOTS as EXEC_SLOTS
from ipvswm.cluster.adapter import SharedUpdate
from ipvswm.cluster.keys import describe_event
from ipvswm.cluster.sharing import configured_here, late_changes
from ipvswm.config.agent import agent_polls
from ipvswm.config.diff import RESTART_OPTIONS, describe_diff
from ipvswm.config.model import Config
from ipvswm.console.control import ReloadOutcome
from ipvswm.daemon_applier import KernelApplier
from ipvswm.daemon_queue import (
    AdminRequest,
    Batch,
    QueueItem,
    ReloadRequest,
    ResyncRequest,
    StopRequest,
    merge_changes,
)
from ipvswm.engine.admin import NOTHING_TO_DO
from ipvswm.engine.engine import Engine
from ipvswm.engine.layout import unweighted_targets
from ipvswm.engine.outputs import Decision, KeptChange, SorryChange, Step
from ipvswm.engine.state import Phase, StateChanges
from ipvswm.events import ConfigLoaded, EngineEvent, ForgetHost, Tick
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.sync import SyncOutcome
from ipvswm.kernel.table import Table
from ipvswm.logs import CHECK_STATUS

if TYPE_CHECKING:
    from ipvswm.daemon import Daemon

log = logging.getLogger("ipvswm.daemon")

INTERNAL_ERROR = "# internal error (logged)"


class Owner:
    """Runs the owner loop of a daemon whose engine, store, sync and checks exist."""

    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon
        self.unsaved = StateChanges()  # committed with the next transaction
        self.ramp_steps: dict[tuple[str, str], int] = {}  # steps logged below level 1, per pair
        self._wakeup: asyncio.TimerHandle | None = None
        self.applier: KernelApplier | None = None  # from start(): the one task changing the kernel

    @property
    def engine(self) -> Engine:
        assert self.d.engine is not None
        return self.d.engine

    async def run(self) -> None:
        """Until a StopRequest: take every queued item, then finish the batch."""
        queue = self.d.queue
        while True:
            items = [await queue.get()]
            while not queue.empty() and len(items) < 20000:
                items.append(queue.get_nowait())
            batch = Batch()
            for item in items:
                try:
                    self._take(item, batch)
                except Exception:  # a bug must not stop the daemon: keep the last good state
                    log.exception("internal error on %s; continuing", type(item).__name__)
                    _fail_request(item)
            try:
                await self._finish(batch)
            except Exception:
                log.exception("internal error applying a step; the next resync corrects it")
                batch.fail_pending(INTERNAL_ERROR)
            self.d.last_step = time.monotonic()
            if batch.stop:
                self.flush()
                return

    async def close(self) -> None:
        """Stop the timer and the applier (what it has under way may end), then commit."""
        if self._wakeup is not None:
            self._wakeup.cancel()
        if self.applier is not None:
            await self.applier.close()
            self.flush()

    async def start(self, step: Step) -> None:
        """Take the engine's start-up step, then bring the kernel to the desired table."""
        for decision in step.decisions:
            log.info("%s", decision)
        for message in step.messages:
            log.info("%s", message)
        for alert in step.alerts:
            self._alert(alert)
        for kept in step.kept:
            self._kept(kept)
        assert self.d.sync is not None
        added = self.d.sync.manage(self.engine.service_keys())
        self.unsaved = merge_changes(
            merge_changes(self.unsaved, step.changes), StateChanges(managed_added=added)
        )
        self.applier = KernelApplier(self.d.sync, self, self.d.stopping)
        await self.applier.converge(None, "start-up")
        self.flush()
        self.applier.start()
        self._schedule_wakeup()

    # --- taking items ---------------------------------------------------------------------

    def _take(self, item: QueueItem, batch: Batch) -> None:
        now = time.time()
        if isinstance(item, StopRequest):
            batch.stop = True
        elif isinstance(item, ResyncRequest):
            if item.reply is None:
                batch.full_resync = True
            else:
                batch.resync_waiters.append(item.reply)
                batch.oldest_wait = min(batch.oldest_wait, item.asked)
        elif isinstance(item, AdminRequest):
            self._admin(item, now, batch)
        elif isinstance(item, ReloadRequest):
            batch.reloads.append((item.reply, self._apply_config(item.config, now, batch)))
        elif isinstance(item, SharedUpdate):
            self.take_shared(item, now, batch)
        else:
            self._step(item, now, batch)

    def _admin(self, item: AdminRequest, now: float, batch: Batch) -> None:
        """One admin command: planned, committed in its own transaction, then applied and
        acknowledged. If the commit fails nothing of the command is applied or logged."""
        try:
            plan = self.engine.plan(item.event, now)
        except Exception:  # a bug must not stop the daemon: log it, nothing was changed
            log.exception("engine failed on %s", type(item.event).__name__)
            _answer(item.reply, Refused(INTERNAL_ERROR))
            return
        if isinstance(plan, Refused):
            _answer(item.reply, plan)
            return
        # Everything decided so far goes into this transaction, in order: a later commit of the
        # batch's earlier changes must never overwrite what this command wrote.
        changes = merge_changes(merge_changes(self.unsaved, batch.changes), plan.changes)
        try:
            if changes and self.d.store is not None:
                self.d.store.save(changes)
        except Exception as exc:
            log.error("cannot save state: %s; admin command refused, nothing changed", exc)
            _answer(item.reply, Refused(f"state could not be saved, nothing changed: {exc}"))
            return
        self.unsaved = StateChanges()
        batch.changes = StateChanges()
        try:
            step = self.engine.apply(plan, now)
        except Exception:  # a bug: the command is committed; the next reload or restart heals
            log.exception("engine failed applying %s", type(item.event).__name__)
            _answer(item.reply, Refused(INTERNAL_ERROR))
            return
        self._absorb(step, batch)  # the weights it leads to ride with the batch's commit
        _answer(item.reply, Applied(step.note))

    def take_shared(self, update: SharedUpdate, now: float, batch: Batch) -> None:
        """Admin events another director committed to the cluster store: through the engine like
        a console's (this director's own checks still decide when a pair carries weight)."""
        cluster = self.d.cluster
        for change in update.changes:
            if change.forgotten and not configured_here(self.d.config, change):
                continue  # kept state here, if any: the ForgetHost that follows drops it
            step = self._step(change.event, now, batch)
            what = describe_event(change.event)
            if step.error is not None and isinstance(change.event, ForgetHost):
                log.info("from director %s: %s (nothing kept here)", change.node, what)
            elif step.error is not None:
                log.warning(
                    "from director %s: %s: not applied here (%s)",
                    change.node,
                    what,
                    step.error.reason,
                )
            elif step.note != NOTHING_TO_DO:
                log.info("from director %s: %s", change.node, what)
            if cluster is not None and change.at is not None and change.node != cluster.node:
                cluster.observe_lag(time.time() - change.at)
        if cluster is not None:
            cluster.applied(update)

    def _take_late_shared(self, old: Config, now: float, batch: Batch) -> None:
        """The shared state of hosts/pairs the reload added: in force at once, as at start-up."""
        assert self.d.cluster is not None
        cluster = self.d.cluster
        for change in late_changes(cluster.shared, cluster.local, old, self.d.config):
            step = self._step(change.event, now, batch)
            what, who = describe_event(change.event), change.node
            if step.error is not None:
                log.warning("cluster store: %s: not applied here (%s)", what, step.error.reason)
            elif step.note != NOTHING_TO_DO:
                log.info("cluster store: %s (shared by %s, added by the reload)", what, who)

    def _step(self, event: EngineEvent, now: float, batch: Batch) -> Step:
        try:
            step = self.engine.handle(event, now)
        except Exception:  # a bug must not stop the daemon: log it, keep the last good state
            log.exception("engine failed on %s", type(event).__name__)
            return Step(error=Refused(INTERNAL_ERROR))
        self._absorb(step, batch)
        return step

    def _absorb(self, step: Step, batch: Batch, keep_changes: bool = True) -> None:
        """Log a step's decisions, send its alerts, and take its changes into the batch."""
        if keep_changes:
            batch.changes = merge_changes(batch.changes, step.changes)
        batch.touched.update(step.touched)
        for decision in step.decisions:
            self._log_decision(decision)
        for message in step.messages:
            log.info("%s", message)
        for alert in step.alerts:
            self._alert(alert)
        for kept in step.kept:
            self._kept(kept)

    def _log_decision(self, decision: Decision) -> None:
        """Log a decision; a ramp's middle steps only at Log.Level 5, counted in its last line."""
        key = (decision.vs, decision.host)
        if decision.old_phase is Phase.RAMPING and decision.new_phase is Phase.RAMPING:
            self.ramp_steps[key] = self.ramp_steps.get(key, 0) + 1
            log.log(CHECK_STATUS, "%s", decision)
            return
        steps = self.ramp_steps.pop(key, 0)
        if steps and decision.old_phase is Phase.RAMPING:
            log.info("%s, after %d ramp step(s)", decision, steps)
        else:
            log.info("%s", decision)

    def _apply_config(self, config: Config, now: float, batch: Batch) -> ReloadOutcome:
        d = self.d
        assert d.checks is not None
        if config == d.config:  # e.g. only comments changed: nothing to do at any size
            log.info("config reload applied: nothing changed")
            d.metrics.reload(True)
            return ReloadOutcome(ok=True)
        actions = tuple(describe_diff(d.config, config))
        for name in RESTART_OPTIONS:
            if getattr(d.config.options, name) != getattr(config.options, name):
                log.warning("config reload: %s changed; it takes effect after a restart", name)
        # The engine cannot refuse a reload: an error here is a bug (logged by _step).
        step = self._step(ConfigLoaded(config, d.kernel_table()), now, batch)
        if step.error is not None:
            log.error("config reload failed (%s); keeping the running config", step.error.reason)
            d.metrics.reload(False)
            return ReloadOutcome(ok=False, errors=(INTERNAL_ERROR,))
        if d.sync is not None:  # managed from now on: committed before the kernel gets them
            managed = d.sync.manage(self.engine.service_keys())
            batch.changes = merge_changes(batch.changes, StateChanges(managed_added=managed))
        old, d.config = d.config, config
        if d.cluster is not None:
            self._take_late_shared(old, now, batch)
        targets = config.check_targets()
        EXEC_SLOTS.set_limit(config.options.check_exec_max_concurrent)
        # The checks of pairs this reload adds (not in the kernel yet) run first, at once.
        fresh = {t for t in targets if t not in d.checks}
        first = unweighted_targets(config, d.kernel_table(), fresh) if fresh else set()
        added, removed = d.checks.update(targets, first)
        d.metrics.retain_checks(targets)
        if d.agents is not None:
            d.agents.update(agent_polls(config))
        if d.logs is not None and old.options != config.options:
            d.logs.reconfigure(config.options)
        d.mailer.reconfigure(config.options)
        d.follow_auto_check()  # Config.AutoCheck turned on or off by this reload
        for action in actions:
            log.info("config reload: %s", action)
        log.info(
            "config reload applied: %d change(s), %d checker(s) started, %d stopped",
            len(actions),
            len(added),
            len(removed),
        )
        d.metrics.reload(True)
        return ReloadOutcome(ok=True, actions=actions)

    def _alert(self, alert: SorryChange) -> None:
        d = self.d
        vs = d.config.service(alert.vs)
        state = "ON" if alert.on else "OFF"
        who = alert.sorry_host or "(none configured)"
        log.info("vs %s: sorry server %s %s (%s)", alert.vs, who, state, alert.subject())
        if vs is not None and vs.email and alert.mail:
            lines = host_lines(d.config, d.engine_snapshot(), d.kernel_table(), alert.vs)
            d.mailer.notify(alert, vs, lines)

    def _kept(self, change: KeptChange) -> None:
        """Log (and with email=true mail) that the depool threshold keeps failing pairs in."""
        d = self.d
        if change.on:
            log.warning(
                "vs %s: depool threshold %g reached: failing pair(s) kept in service: %s",
                change.vs,
                change.threshold,
                ", ".join(change.kept),
            )
        else:
            log.info(
                "vs %s: depool threshold: no failing pair kept in any more (after %.1fs)",
                change.vs,
                change.after or 0.0,
            )
        vs = d.config.service(change.vs)
        if vs is not None and vs.email:
            lines = host_lines(d.config, d.engine_snapshot(), d.kernel_table(), change.vs)
            d.mailer.notify(change, vs, lines)

    # --- finishing a batch ----------------------------------------------------------------

    async def _finish(self, batch: Batch) -> None:
        self._commit(batch.changes)
        for future, outcome in batch.reloads:
            if not future.done():
                future.set_result(outcome)
        if batch.stop:
            batch.wake_resync_waiters(False)
            return
        self._publish_metrics()  # the decided state, while the kernel is being changed
        assert self.applier is not None
        asked = self.applier.ask(
            batch.touched,
            resync=batch.full_resync,
            waiters=batch.resync_waiters,
            oldest_wait=batch.oldest_wait,
        )
        self._schedule_wakeup()
        if not asked:  # else `changed` is set once the kernel followed (KernelApplier.applied)
            self.applied()

    def _commit(self, changes: StateChanges) -> None:
        """Commit this batch's changes with whatever earlier commits left unsaved."""
        pending = merge_changes(self.unsaved, changes)
        if not pending or self.d.store is None:
            self.unsaved = pending
        else:
            try:
                self.d.store.save(pending)
            except Exception as exc:
                log.error("cannot save state: %s; will retry with the next change", exc)
                self.unsaved = pending
            else:
                self.unsaved = StateChanges()
        if self.d.cluster is not None and not self.unsaved:
            self.d.cluster.persist()  # only after the engine's state it led to is committed

    def flush(self) -> None:
        """Commit what is still unsaved (at resync time and on exit)."""
        self._commit(StateChanges())

    def _publish_metrics(self) -> None:
        d = self.d
        if d.metrics_server is not None:
            d.metrics.update_state(d.config, d.engine_snapshot(), d.kernel_table())

    # --- for the kernel applier (ApplierHost) ------------------------------------------------

    def plan(self) -> Table:
        """The desired table, as decided now."""
        return self.engine.desired_table()

    def booked(self, outcome: SyncOutcome) -> None:
        """Count a convergence; book the managed set's changes (services the kernel no longer
        has) for the next commit."""
        if outcome.ops or outcome.errors:
            self.d.metrics.kernel_apply(len(outcome.ops), len(outcome.errors))
        if outcome.backend_failure is not None:
            self.d.metrics.backend_error(outcome.backend_failure)
        if self.d.sync is not None:
            added, removed = self.d.sync.managed_changes()
            if added or removed:
                booked = StateChanges(managed_added=added, managed_removed=removed)
                self.unsaved = merge_changes(self.unsaved, booked)

    def resynced(self, failure: FailureKind | None) -> None:
        """A full read ended: count a failure, or note the time and commit the bookkeeping."""
        if failure is not None:
            self.d.metrics.backend_error(failure)
            return
        self.d.last_resync = time.time()
        self.flush()

    def applied(self) -> None:
        """Publish the kernel as it now is and wake whoever waits for a change."""
        self._publish_metrics()
        old, self.d.changed = self.d.changed, asyncio.Event()
        old.set()

    def _schedule_wakeup(self) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        when = self.engine.next_wakeup()
        if when is None:
            return
        delay = max(when - time.time(), 0.0)
        self._wakeup = asyncio.get_running_loop().call_later(delay, self.d.queue.put_nowait, Tick())


def _answer(reply: asyncio.Future[Answer], answer: Answer) -> None:
    """Answer a console request (its session may have gone away meanwhile)."""
    if not reply.done():
        reply.set_result(answer)


def _fail_request(item: QueueItem) -> None:
    """Answer a request whose handling failed, so its caller never waits forever."""
    if isinstance(item, AdminRequest):
        _answer(item.reply, Refused(INTERNAL_ERROR))
    elif isinstance(item, ReloadRequest) and not item.reply.done():
        item.reply.set_result(ReloadOutcome(ok=False, errors=(INTERNAL_ERROR,)))
