"""The one owner of the engine: takes queued events in batches, commits, then asks the applier.

Order within a batch (SPEC §6): an admin command is planned by the engine (a value, nothing
changed), its state change committed in its own transaction (in the store's writer thread: the
loop goes on meanwhile), and only then applied to the engine and acknowledged, before the kernel
is changed for it; if that commit fails nothing is applied and the command is refused. State
changes caused by checks (and the weights an admin command leads to) are committed once per
batch; if that fails they are kept and retried with the next batch, and the kernel still follows
the checks (a dead server must lose its weight even when the disk is full). The kernel sync's
managed-set bookkeeping rides along with the next commit.

The kernel follows in the applier task (daemon.applier): the owner never waits for the kernel, so
a hung ipvsadm delays neither the next commit nor its answer (issue 10 item 11).
"""

from __future__ import annotations

import asyncio
import logging
import time

from ipvswm.answers import Answer
from ipvswm.answers import Applied
from ipvswm.answers import Refused
from ipvswm.checks.execcheck import SLOTS as EXEC_SLOTS
from ipvswm.cluster.adapter import SharedUpdate
from ipvswm.config.agent import agent_polls
from ipvswm.config.diff import RESTART_OPTIONS
from ipvswm.config.diff import describe_diff
from ipvswm.config.model import Config
from ipvswm.daemon.applier import KernelApplier
from ipvswm.daemon.notices import DecisionLog
from ipvswm.daemon.notices import kept_notice
from ipvswm.daemon.notices import sorry_notice
from ipvswm.daemon.requests import AdminRequest
from ipvswm.daemon.requests import Batch
from ipvswm.daemon.requests import QueueItem
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.daemon.requests import ReloadRequest
from ipvswm.daemon.requests import ResyncRequest
from ipvswm.daemon.requests import StopRequest
from ipvswm.daemon.requests import merge_changes
from ipvswm.daemon.runtime import Runtime
from ipvswm.daemon.shared import take_late_shared
from ipvswm.daemon.shared import take_shared
from ipvswm.engine.engine import Engine
from ipvswm.engine.layout import unweighted_targets
from ipvswm.engine.outputs import KeptChange
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.outputs import Step
from ipvswm.engine.state import StateChanges
from ipvswm.events import ConfigLoaded
from ipvswm.events import EngineEvent
from ipvswm.events import Tick
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.sync import SyncOutcome
from ipvswm.kernel.table import Table

log = logging.getLogger("ipvswm.daemon")

INTERNAL_ERROR = "# internal error (logged)"

BATCH_CAP = 20_000
"""Queued items taken into one batch at most. A batch is one commit and one kernel convergence, so
a burst (every check of 50,000 pairs failing at once) costs a few of them, not one per item; the
cap bounds how long the loop runs before it commits, answers and lets the kernel follow."""


class Owner:
    """The one owner of the engine and of the config in force; runs the owner loop.

    It exists from the daemon's construction (the config in force, the change event), and runs
    once `attach` gave it the parts (engine, store, kernel sync, checks, ...)."""

    def __init__(self, config: Config, queue: asyncio.Queue[QueueItem]) -> None:
        self.config = config  # the config in force: replaced by a reload, here only
        self.queue = queue
        self.changed = asyncio.Event()  # set (and replaced) after every step and kernel change
        self.last_step = time.monotonic()  # when the loop last finished a batch (watchdog)
        self.last_resync: float | None = None  # when a full kernel read last worked
        self.unsaved = StateChanges()  # committed with the next transaction
        self.decisions = DecisionLog()  # a ramp's steps counted per pair
        self._wakeup: asyncio.TimerHandle | None = None
        self.applier: KernelApplier | None = None  # from start(): the one task changing the kernel
        self._rt: Runtime | None = None
        self._commit_lock = asyncio.Lock()  # one commit at a time, in the order decided

    def attach(self, runtime: Runtime) -> None:
        """The parts this owner works with, once built (after the first kernel read)."""
        self._rt = runtime

    @property
    def rt(self) -> Runtime:
        assert self._rt is not None, "the owner runs once attached"
        return self._rt

    @property
    def engine(self) -> Engine:
        return self.rt.engine

    async def run(self) -> None:
        """Until a StopRequest: take every queued item, then finish the batch."""
        queue = self.queue
        while True:
            items = [await queue.get()]
            while not queue.empty() and len(items) < BATCH_CAP:
                items.append(queue.get_nowait())
            batch = Batch()
            for item in items:
                try:
                    await self._take(item, batch)
                except Exception:  # a bug must not stop the daemon: keep the last good state
                    log.exception("internal error on %s; continuing", type(item).__name__)
                    _fail_request(item)
            try:
                await self._finish(batch)
            except Exception:
                log.exception("internal error applying a step; the next resync corrects it")
                batch.fail_pending(INTERNAL_ERROR)
            self.last_step = time.monotonic()
            if batch.stop:
                await self.flush()
                return

    async def close(self) -> None:
        """Stop the timer and the applier (what it has under way may end), then commit."""
        if self._wakeup is not None:
            self._wakeup.cancel()
        if self.applier is not None:
            await self.applier.close()
            await self.flush()

    async def start(self, step: Step) -> None:
        """Take the engine's start-up step, then bring the kernel to the desired table."""
        self._report(step)
        added = self.rt.sync.manage(self.engine.service_keys())
        self.unsaved = merge_changes(
            merge_changes(self.unsaved, step.changes), StateChanges(managed_added=added)
        )
        self.applier = KernelApplier(self.rt.sync, self, self.rt.stopping)
        await self.applier.converge(None, "start-up")
        await self.flush()
        self.applier.start()
        self._schedule_wakeup()

    # --- taking items ---------------------------------------------------------------------

    async def _take(self, item: QueueItem, batch: Batch) -> None:
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
            await self._admin(item, now, batch)
        elif isinstance(item, ReloadRequest):
            batch.reloads.append((item.reply, self._apply_config(item.config, now, batch)))
        elif isinstance(item, SharedUpdate):
            self.take_shared(item, now, batch)
        else:
            self._step(item, now, batch)

    async def _admin(self, item: AdminRequest, now: float, batch: Batch) -> None:
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
        failed = await self._save_admin(batch, plan.changes)
        if failed is not None:
            log.error("cannot save state: %s; admin command refused, nothing changed", failed)
            _answer(item.reply, Refused(f"state could not be saved, nothing changed: {failed}"))
            return
        try:
            step = self.engine.apply(plan, now)
        except Exception:  # a bug: the command is committed; the next reload or restart heals
            log.exception("engine failed applying %s", type(item.event).__name__)
            _answer(item.reply, Refused(INTERNAL_ERROR))
            return
        self._absorb(step, batch)  # the weights it leads to ride with the batch's commit
        _answer(item.reply, Applied(step.note))

    def take_shared(self, update: SharedUpdate, now: float, batch: Batch) -> None:
        """Admin events another director committed to the cluster store (daemon.shared)."""
        take_shared(update, self.config, self.rt.cluster, lambda e: self._step(e, now, batch))

    def _take_late_shared(self, old: Config, now: float, batch: Batch) -> None:
        """The shared state of hosts/pairs the reload added (daemon.shared)."""
        assert self.rt.cluster is not None
        take_late_shared(old, self.config, self.rt.cluster, lambda e: self._step(e, now, batch))

    def _step(self, event: EngineEvent, now: float, batch: Batch) -> Step:
        try:
            step = self.engine.handle(event, now)
        except Exception:  # a bug must not stop the daemon: log it, keep the last good state
            log.exception("engine failed on %s", type(event).__name__)
            return Step(error=Refused(INTERNAL_ERROR))
        self._absorb(step, batch)
        return step

    def _absorb(self, step: Step, batch: Batch) -> None:
        """Take a step's changes into the batch; log its decisions, send its alerts."""
        batch.changes = merge_changes(batch.changes, step.changes)
        batch.touched.update(step.touched)
        self._report(step)

    def _report(self, step: Step) -> None:
        """Log a step's decisions and messages; send its alerts."""
        for decision in step.decisions:
            self.decisions.log(decision)
        for message in step.messages:
            log.info("%s", message)
        for alert in step.alerts:
            self._alert(alert)
        for kept in step.kept:
            self._kept(kept)

    def _apply_config(self, config: Config, now: float, batch: Batch) -> ReloadOutcome:
        rt = self.rt
        if config == self.config:  # e.g. only comments changed: nothing to do at any size
            log.info("config reload applied: nothing changed")
            rt.metrics.reload(True)
            return ReloadOutcome(ok=True)
        actions = tuple(describe_diff(self.config, config))
        for name in RESTART_OPTIONS:
            if getattr(self.config.options, name) != getattr(config.options, name):
                log.warning("config reload: %s changed; it takes effect after a restart", name)
        # The engine cannot refuse a reload: an error here is a bug (logged by _step).
        step = self._step(ConfigLoaded(config, rt.kernel()), now, batch)
        if step.error is not None:
            log.error("config reload failed (%s); keeping the running config", step.error.reason)
            rt.metrics.reload(False)
            return ReloadOutcome(ok=False, errors=(INTERNAL_ERROR,))
        # Managed from now on: committed before the kernel gets them.
        managed = rt.sync.manage(self.engine.service_keys())
        batch.changes = merge_changes(batch.changes, StateChanges(managed_added=managed))
        old, self.config = self.config, config
        if rt.cluster is not None:
            self._take_late_shared(old, now, batch)
        targets = config.check_targets()
        EXEC_SLOTS.set_limit(config.options.check_exec_max_concurrent)
        # The checks of pairs this reload adds (not in the kernel yet) run first, at once.
        fresh = {t for t in targets if t not in rt.checks}
        first = unweighted_targets(config, rt.kernel(), fresh) if fresh else set()
        added, removed = rt.checks.update(targets, first)
        rt.metrics.retain_checks(targets)
        rt.agents.update(agent_polls(config))
        if rt.logs is not None and old.options != config.options:
            rt.logs.reconfigure(config.options)
        rt.mailer.reconfigure(config.options)
        rt.watcher.follow(config.options)  # Config.AutoCheck turned on or off by this reload
        for action in actions:
            log.info("config reload: %s", action)
        log.info(
            "config reload applied: %d change(s), %d checker(s) started, %d stopped",
            len(actions),
            len(added),
            len(removed),
        )
        rt.metrics.reload(True)
        return ReloadOutcome(ok=True, actions=actions)

    def _alert(self, alert: SorryChange) -> None:
        sorry_notice(alert, self.config, self.rt.snapshot(), self.rt.kernel(), self.rt.mailer)

    def _kept(self, change: KeptChange) -> None:
        kept_notice(change, self.config, self.rt.snapshot(), self.rt.kernel(), self.rt.mailer)

    # --- finishing a batch ----------------------------------------------------------------

    async def _finish(self, batch: Batch) -> None:
        await self._commit(batch.changes)
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

    async def _commit(self, changes: StateChanges) -> None:
        """Commit this batch's changes with whatever earlier commits left unsaved."""
        async with self._commit_lock:
            pending, self.unsaved = merge_changes(self.unsaved, changes), StateChanges()
            if pending:
                try:
                    await self.rt.store.save(pending)
                except Exception as exc:
                    log.error("cannot save state: %s; will retry with the next change", exc)
                    # What was booked meanwhile is newer: it wins over the failed changes.
                    self.unsaved = merge_changes(pending, self.unsaved)
        if self.rt.cluster is not None and not self.unsaved:
            self.rt.cluster.persist()  # only after the engine's state it led to is committed

    async def _save_admin(self, batch: Batch, changes: StateChanges) -> Exception | None:
        """Commit an admin command's planned changes with everything decided before them, in
        order (a later commit of the batch's earlier changes must never overwrite what it
        wrote). The error if the commit failed (then the caller applies nothing of it)."""
        async with self._commit_lock:
            unsaved, self.unsaved = self.unsaved, StateChanges()  # booked meanwhile: newer
            try:
                await self.rt.store.save(
                    merge_changes(merge_changes(unsaved, batch.changes), changes)
                )
            except Exception as exc:
                self.unsaved = merge_changes(unsaved, self.unsaved)
                return exc
            batch.changes = StateChanges()
            return None

    async def flush(self) -> None:
        """Commit what is still unsaved (at resync time and on exit)."""
        await self._commit(StateChanges())

    def _publish_metrics(self) -> None:
        rt = self.rt
        if rt.publish_metrics:
            rt.metrics.update_state(self.config, rt.snapshot(), rt.kernel())

    # --- for the kernel applier (ApplierHost) ------------------------------------------------

    def plan(self) -> Table:
        """The desired table, as decided now."""
        return self.engine.desired_table()

    def booked(self, outcome: SyncOutcome) -> None:
        """Count a convergence; book the managed set's changes (services the kernel no longer
        has) for the next commit."""
        if outcome.ops or outcome.errors:
            self.rt.metrics.kernel_apply(len(outcome.ops), len(outcome.errors))
        if outcome.backend_failure is not None:
            self.rt.metrics.backend_error(outcome.backend_failure)
        added, removed = self.rt.sync.managed_changes()
        if added or removed:
            booked = StateChanges(managed_added=added, managed_removed=removed)
            self.unsaved = merge_changes(self.unsaved, booked)

    async def resynced(self, failure: FailureKind | None) -> None:
        """A full read ended: count a failure, or note the time and commit the bookkeeping."""
        if failure is not None:
            self.rt.metrics.backend_error(failure)
            return
        self.last_resync = time.time()
        await self.flush()

    def applied(self) -> None:
        """Publish the kernel as it now is and wake whoever waits for a change."""
        self._publish_metrics()
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    def _schedule_wakeup(self) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        when = self.engine.next_wakeup()
        if when is None:
            return
        delay = max(when - time.time(), 0.0)
        self._wakeup = asyncio.get_running_loop().call_later(delay, self.queue.put_nowait, Tick())


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
