"""The daemon: one event queue, one owner of the engine, start-up, reload and shutdown (SPEC §9).

Checkers, the console, the config watcher and timers only put events on the queue. The owner task
takes them in batches, feeds them to the pure engine, commits the state changes, acknowledges admin
commands, and only then converges the kernel: one batch of operations per engine step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Coroutine
from typing import Any

from ipvswm import sdnotify
from ipvswm.alerts import Mailer, host_lines
from ipvswm.checks.checkset import CheckSet
from ipvswm.config.diff import RESTART_OPTIONS, describe_diff
from ipvswm.config.model import Config
from ipvswm.config.parser import ParseResult, parse_file
from ipvswm.config.watch import ConfigWatcher
from ipvswm.console.control import ReloadOutcome
from ipvswm.console.server import ConsoleError, ConsoleServer
from ipvswm.daemon_control import DaemonControl
from ipvswm.daemon_queue import (
    AdminRequest,
    Batch,
    QueueItem,
    ReloadRequest,
    ResyncRequest,
    StopRequest,
    merge_changes,
)
from ipvswm.engine.engine import Engine
from ipvswm.engine.outputs import SorryChange, Step
from ipvswm.engine.state import StateChanges, StateSnapshot
from ipvswm.events import AdminEvent, CheckResult, ConfigLoaded, EngineEvent, Tick
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backends import make_backend
from ipvswm.kernel.sync import KernelSync, describe_op
from ipvswm.kernel.table import ServiceKey, Table
from ipvswm.logs import CHECK_RESULT, CHECK_STATUS, LogControl, setup_logging
from ipvswm.metrics import Metrics, MetricsServer
from ipvswm.store import Store, StoreError

log = logging.getLogger(__name__)


class Daemon:
    """The running ipvswm: wires config, engine, store, checkers, kernel, console and alerts."""

    def __init__(
        self,
        config_path: str,
        config: Config,
        *,
        foreground: bool = True,
        backend: str | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.foreground = foreground
        self.backend_name = backend or config.options.ipvs_backend
        self.started_at = time.time()
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self.engine: Engine | None = None
        self.sync: KernelSync | None = None
        self.checks: CheckSet | None = None
        self.store: Store | None = None
        self.logs: LogControl | None = None
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.mailer = Mailer(config.options)
        self.control = DaemonControl(self)
        self.console: ConsoleServer | None = None
        self.watcher: ConfigWatcher | None = None
        self.changed = asyncio.Event()
        self.last_resync: float | None = None
        self.last_step = time.monotonic()
        self.watchdog = sdnotify.Watchdog(alive=self._alive)
        self._stopping = asyncio.Event()
        self._wakeup: asyncio.TimerHandle | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status."""
        opts = self.config.options
        self.logs = setup_logging(opts, foreground=self.foreground)
        log.info(
            "ipvswm starting: pid %d, config %s, backend %s",
            os.getpid(),
            self.config_path,
            self.backend_name,
        )
        self.console = ConsoleServer(
            self.control,
            tcp=(opts.management_socket_ip, opts.management_socket_port)
            if opts.management_socket_port
            else None,
            unix_path=opts.management_socket_path or None,
            fifo_path=opts.management_fifo_path or None,
        )
        try:
            await self.console.start()
        except (ConsoleError, OSError) as exc:
            log.error("cannot start the management console (another ipvswm running?): %s", exc)
            self.logs.close()
            return 1
        try:
            self.store = Store(opts.db)
            snapshot = self.store.load()
        except StoreError as exc:
            log.error("cannot open the state database: %s", exc)
            await self.console.close()
            self.logs.close()
            return 1
        self._install_signals()
        self.sync = KernelSync(make_backend(self.backend_name, opts.ipvsadm))
        actual = await self._first_read()
        if actual is None:  # stopped before the kernel could be read
            await self._shutdown()
            return 0
        self.engine = Engine(self.config, time.time(), snapshot, actual)
        start = Batch()
        self._absorb(self.engine.startup_step(), start)
        self._save(merge_changes(start.changes, self.engine.record_applied(actual)))
        await self._converge(None, "start-up")
        self.checks = CheckSet(self._on_check_result)
        self.checks.update(self.config.check_targets())
        await self._start_services()
        self._schedule_wakeup()
        sdnotify.ready("running")
        log.info("ipvswm running: %s", self.control.summary())
        await self._owner_loop()
        await self._shutdown()
        return 0

    async def _first_read(self) -> Table | None:
        """Read the kernel table, retrying (and logging) until it works or we are stopped."""
        assert self.sync is not None
        delay = 1.0
        while not self._stopping.is_set():
            try:
                return await self.sync.read()
            except BackendError as exc:
                log.error(
                    "cannot read the IPVS table with backend %s (%s): %s; retrying in %.0fs",
                    self.sync.backend.name,
                    exc.kind.value,
                    exc.message,
                    delay,
                )
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, max(self.config.options.ipvs_resync_period, 1.0))
        return None

    async def _start_services(self) -> None:
        opts = self.config.options
        if opts.config_auto_check:
            self.watcher = ConfigWatcher(
                self.config_path, opts.config_check_period, self._auto_reload
            )
            self.watcher.start()
        if opts.metrics_listen:
            self.metrics_server = MetricsServer(self.metrics, self.control.status_document)
            try:
                await self.metrics_server.start(opts.metrics_listen)
            except OSError as exc:
                log.error("cannot listen for metrics on %s: %s", opts.metrics_listen, exc)
                self.metrics_server = None
        await self.mailer.start()
        await self.watchdog.start()
        self._tasks.append(asyncio.create_task(self._resync_timer(), name="resync-timer"))

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload_from_file("SIGHUP")))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def stop(self, why: str = "request") -> None:
        """Begin a clean exit: no kernel operation is made from here on."""
        if not self._stopping.is_set():
            log.info("ipvswm stopping (%s): leaving the IPVS table as it is", why)
            sdnotify.stopping()
            self._stopping.set()
            self.queue.put_nowait(StopRequest())

    async def _shutdown(self) -> None:
        if self._wakeup is not None:
            self._wakeup.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.watcher is not None:
            await self.watcher.close()
        if self.checks is not None:
            await self.checks.close()
        if self.console is not None:
            await self.console.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        await self.mailer.close()
        await self.watchdog.close()
        if self.store is not None:
            self.store.close()
        log.info("ipvswm stopped")
        if self.logs is not None:
            self.logs.close()

    def _alive(self) -> bool:
        """For the systemd watchdog: the owner loop took a step recently (resyncs keep it busy)."""
        return time.monotonic() - self.last_step < 3 * self.config.options.ipvs_resync_period + 30

    # --- inputs ---------------------------------------------------------------------------

    def _on_check_result(self, result: CheckResult) -> None:
        self.metrics.check_result(result)
        if result.changed:
            log.log(
                CHECK_STATUS,
                "check %s: %s%s",
                result.target,
                result.status.value.upper(),
                f" ({result.cause})" if result.cause else "",
            )
        log.log(
            CHECK_RESULT,
            "check %s: %s in %.3fs%s",
            result.target,
            "pass" if result.passed else "fail",
            result.ended - result.started,
            f" ({result.cause})" if result.cause else "",
        )
        if not self._stopping.is_set():
            self.queue.put_nowait(result)

    async def submit(self, event: AdminEvent) -> str | None:
        """Apply an admin event; returns once its state change is committed."""
        if self.engine is None:
            return "# the daemon is starting: the kernel table has not been read yet"
        reply: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(AdminRequest(event, reply))
        return await reply

    async def refresh_kernel(self) -> None:
        """Have the owner re-read (and resync) the kernel table; returns once it is read."""
        if self.engine is None or self._stopping.is_set():
            return
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(ResyncRequest(reply))
        await reply

    def parse_config(self) -> ParseResult:
        return parse_file(self.config_path)

    async def reload_from_file(self, why: str) -> ReloadOutcome:
        """Parse the file (off the loop: names may be resolved) and apply it if valid."""
        if self.watcher is not None:
            self.watcher.mark_current()  # before parsing: a write during the parse is seen next
        result = await asyncio.to_thread(parse_file, self.config_path)
        if result.config is None:
            errors = tuple(str(e) for e in result.errors)
            for text in errors:
                log.error("config reload (%s) rejected: %s", why, text)
            log.error("config reload (%s): nothing applied, keeping the last good config", why)
            self.metrics.reload(False)
            return ReloadOutcome(ok=False, errors=errors)
        if self.engine is None or self._stopping.is_set():
            return ReloadOutcome(ok=False, errors=("# the daemon is not running",))
        sdnotify.reloading()
        reply: asyncio.Future[ReloadOutcome] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(ReloadRequest(result.config, reply))
        outcome = await reply
        sdnotify.ready("running")
        return outcome

    async def _auto_reload(self) -> None:
        await self.reload_from_file("file changed")

    async def _resync_timer(self) -> None:
        while True:
            await asyncio.sleep(max(self.config.options.ipvs_resync_period, 0.2))
            self.queue.put_nowait(ResyncRequest())

    # --- the owner ------------------------------------------------------------------------

    async def _owner_loop(self) -> None:
        while True:
            items = [await self.queue.get()]
            while not self.queue.empty() and len(items) < 20000:
                items.append(self.queue.get_nowait())
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
                batch.fail_pending("# internal error (logged)")
            self.last_step = time.monotonic()
            if batch.stop:
                return

    def _take(self, item: QueueItem, batch: Batch) -> None:
        assert self.engine is not None
        now = time.time()
        if isinstance(item, StopRequest):
            batch.stop = True
        elif isinstance(item, ResyncRequest):
            batch.full_resync = True
            if item.reply is not None:
                batch.resync_waiters.append(item.reply)
        elif isinstance(item, AdminRequest):
            step = self._step(item.event, now, batch)
            batch.acks.append((item.reply, step.error if step.error else None))
        elif isinstance(item, ReloadRequest):
            batch.reloads.append((item.reply, self._apply_config(item.config, now, batch)))
        else:
            self._step(item, now, batch)

    def _step(self, event: EngineEvent, now: float, batch: Batch) -> Step:
        assert self.engine is not None
        try:
            step = self.engine.handle(event, now)
        except Exception:  # a bug must not stop the daemon: log it, keep the last good state
            log.exception("engine failed on %s", type(event).__name__)
            return Step(error="# internal error (logged)")
        self._absorb(step, batch)
        return step

    def _absorb(self, step: Step, batch: Batch) -> None:
        """Log a step's decisions, send its alerts, and add its changes to the batch."""
        batch.changes = merge_changes(batch.changes, step.changes)
        batch.touched.update(step.touched)
        for decision in step.decisions:
            log.info("%s", decision)
        for alert in step.alerts:
            self._alert(alert)

    def _apply_config(self, config: Config, now: float, batch: Batch) -> ReloadOutcome:
        assert self.checks is not None
        if config == self.config:  # e.g. only comments changed: nothing to do at any size
            log.info("config reload applied: nothing changed")
            self.metrics.reload(True)
            return ReloadOutcome(ok=True)
        actions = tuple(describe_diff(self.config, config))
        for name in RESTART_OPTIONS:
            if getattr(self.config.options, name) != getattr(config.options, name):
                log.warning("config reload: %s changed; it takes effect after a restart", name)
        old, self.config = self.config, config
        self._step(ConfigLoaded(config), now, batch)
        added, removed = self.checks.update(config.check_targets())
        if self.logs is not None and old.options != config.options:
            self.logs.reconfigure(config.options)
        self.mailer.reconfigure(config.options)
        for action in actions:
            log.info("config reload: %s", action)
        log.info(
            "config reload applied: %d change(s), %d checker(s) started, %d stopped",
            len(actions),
            len(added),
            len(removed),
        )
        self.metrics.reload(True)
        return ReloadOutcome(ok=True, actions=actions)

    def _alert(self, alert: SorryChange) -> None:
        vs = self.config.service(alert.vs)
        state = "ON" if alert.on else "OFF"
        log.info(
            "vs %s: sorry server %s %s (%s)", alert.vs, alert.sorry_host, state, alert.subject()
        )
        if vs is not None and vs.email:
            lines = host_lines(self.config, self.engine_snapshot(), self.kernel_table(), alert.vs)
            self.mailer.notify(alert, vs, lines)

    async def _finish(self, batch: Batch) -> None:
        self._save(batch.changes, batch.acks)
        for future, outcome in batch.reloads:
            if not future.done():
                future.set_result(outcome)
        if batch.stop:
            return
        self._publish_metrics()  # the decided state, while the kernel is being changed
        if batch.full_resync:
            await self._resync()
            batch.wake_resync_waiters()
        elif batch.touched:
            await self._converge(batch.touched, "")
        self._schedule_wakeup()
        self._publish_metrics()  # and the kernel as it now is
        old, self.changed = self.changed, asyncio.Event()
        old.set()

    def _publish_metrics(self) -> None:
        if self.metrics_server is not None:
            self.metrics.update_state(self.config, self.engine_snapshot(), self.kernel_table())

    def _save(
        self,
        changes: StateChanges,
        acks: list[tuple[asyncio.Future[str | None], str | None]] | None = None,
    ) -> None:
        """Commit state changes, then acknowledge the admin commands they carry."""
        failure: str | None = None
        if changes and self.store is not None:
            try:
                self.store.save(changes)
            except Exception as exc:
                log.error("cannot save state to %s: %s", self.config.options.db, exc)
                failure = f"# state could not be saved: {exc}"
        for future, error in acks or []:
            if not future.done():
                future.set_result(error or failure)

    async def _converge(self, keys: set[ServiceKey] | None, reason: str) -> None:
        assert self.engine is not None and self.sync is not None
        outcome = await self.sync.converge(
            self.engine.desired_table(),
            self.engine.managed(),
            keys,
            reason=reason,
        )
        if outcome.ops or outcome.errors:
            self.metrics.kernel_apply(len(outcome.ops), len(outcome.errors))
        if self.sync.actual is not None:
            self._save(self.engine.record_applied(self.sync.actual))
            self._save(self.engine.confirm_absent(self.sync.actual))

    async def _resync(self) -> None:
        assert self.sync is not None and self.engine is not None
        try:
            await self.sync.read()
        except BackendError as exc:
            log.error("resync: cannot read the IPVS table (%s): %s", exc.kind.value, exc.message)
            return
        self.last_resync = time.time()
        outcome = await self.sync.converge(
            self.engine.desired_table(), self.engine.managed(), None, reason="resync"
        )
        if outcome.ops:
            log.warning(
                "resync: the kernel differed from the desired table; %d operation(s) to correct it",
                len(outcome.ops),
            )
            for op in outcome.ops:
                log.warning("resync: %s", describe_op(op))
            self.metrics.kernel_apply(len(outcome.ops), len(outcome.errors))
        if self.sync.actual is not None:
            self._save(self.engine.record_applied(self.sync.actual))

    def _schedule_wakeup(self) -> None:
        assert self.engine is not None
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        when = self.engine.next_wakeup()
        if when is None:
            return
        delay = max(when - time.time(), 0.0)
        self._wakeup = asyncio.get_running_loop().call_later(delay, self.queue.put_nowait, Tick())

    # --- views for the console and metrics ------------------------------------------------

    def engine_snapshot(self) -> StateSnapshot:
        """The engine's state now (empty before the engine exists)."""
        return self.engine.snapshot() if self.engine is not None else StateSnapshot()

    def kernel_table(self) -> Table:
        """The last table read from or applied to the kernel."""
        if self.sync is None or self.sync.actual is None:
            return Table()
        return self.sync.actual


def _fail_request(item: QueueItem) -> None:
    """Answer a request whose handling failed, so its caller never waits forever."""
    if isinstance(item, AdminRequest) and not item.reply.done():
        item.reply.set_result("# internal error (logged)")
    elif isinstance(item, ReloadRequest) and not item.reply.done():
        item.reply.set_result(ReloadOutcome(ok=False, errors=("# internal error (logged)",)))
