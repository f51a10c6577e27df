"""The daemon: one event queue, one owner of the engine, start-up, reload and shutdown (SPEC §9).

Checkers, the console, the config watcher and timers only put events on the queue. The owner task
(daemon.owner) takes them in batches, feeds them to the pure engine, commits the state changes,
acknowledges admin commands, and only then has the kernel follow: one convergence per batch.
This module starts and stops the parts (daemon.runtime), and is what the console's control
(daemon.control) reads and asks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Coroutine
from collections.abc import Iterable
from typing import Any

from ipvswm import instance_lock
from ipvswm import sdnotify
from ipvswm.alerts import Mailer
from ipvswm.checks.agent import AgentSet
from ipvswm.checks.checker import Checker
from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.execcheck import SLOTS as EXEC_SLOTS
from ipvswm.cluster.adapter import ClusterStartError
from ipvswm.cluster.adapter import ClusterStore
from ipvswm.config.agent import agent_polls
from ipvswm.config.model import Config
from ipvswm.config.watch import ConfigWatcher
from ipvswm.config.watch import file_signature
from ipvswm.console.server import ConsoleError
from ipvswm.console.server import ConsoleServer
from ipvswm.daemon.control import DaemonControl
from ipvswm.daemon.guard import check_start
from ipvswm.daemon.inbox import Inbox
from ipvswm.daemon.owner import Owner
from ipvswm.daemon.reload import Reloader
from ipvswm.daemon.requests import Batch
from ipvswm.daemon.requests import QueueItem
from ipvswm.daemon.requests import ResyncRequest
from ipvswm.daemon.requests import StopRequest
from ipvswm.daemon.requests import merge_changes
from ipvswm.daemon.runtime import Runtime
from ipvswm.daemon.runtime import first_read
from ipvswm.daemon.runtime import log_check_result
from ipvswm.daemon.runtime import open_cluster
from ipvswm.daemon.runtime import raise_fd_limit
from ipvswm.daemon.runtime import warn_if_public
from ipvswm.engine.engine import Engine
from ipvswm.engine.layout import unweighted_targets
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AgentResult
from ipvswm.events import CheckResult
from ipvswm.kernel.backends import make_backend
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.table import Table
from ipvswm.logs import LogControl
from ipvswm.logs import setup_logging
from ipvswm.metrics import Metrics
from ipvswm.metrics import MetricsServer
from ipvswm.store import StoreError
from ipvswm.store.writer import StoreWriter

log = logging.getLogger("ipvswm.daemon")

AUTO_RELOAD = "file changed"


class Daemon:
    """The running ipvswm: starts the parts, feeds the owner's queue, stops everything."""

    def __init__(
        self,
        config_path: str,
        config: Config,
        *,
        foreground: bool = True,
        backend: str | None = None,
        force: bool = False,
    ) -> None:
        self.config_path = config_path
        self.foreground = foreground
        self.backend_name = backend or config.options.ipvs_backend
        self.force = force  # start even if the file would empty the table (daemon.guard)
        self.started_at = time.time()
        # The version of the file `config` came from (taken now: start-up may take a while, and
        # an edit made meanwhile must still be noticed by the watcher).
        self.config_signature = file_signature(config_path)
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self.owner = Owner(config, self.queue)  # owns the config in force from here on
        self.metrics = Metrics()
        self.mailer = Mailer(config.options)
        self.reloader = Reloader(config_path, self._config, self.ready, self.queue, self.metrics)
        self.inbox = Inbox(self.queue, self, self.reloader)  # what the console asks for
        self.control = DaemonControl(self, self.inbox)
        self.runtime: Runtime | None = None  # the parts, once the kernel has been read
        # Opened one by one at start (closed by _shutdown whatever was reached):
        self.logs: LogControl | None = None
        self.store: StoreWriter | None = None
        self.cluster: ClusterStore | None = None
        self.sync: KernelSync | None = None
        self.console: ConsoleServer | None = None
        self.metrics_server: MetricsServer | None = None
        self.started = asyncio.Event()  # set once the state is loaded and the kernel read
        self.watchdog = sdnotify.Watchdog(alive=self._alive)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._instance_lock: int | None = None  # held (open) until the process exits

    # --- what the owner holds -------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The config in force (the owner's)."""
        return self.owner.config

    def _config(self) -> Config:
        return self.owner.config

    @property
    def changed(self) -> asyncio.Event:
        """Set after the next engine step or kernel change."""
        return self.owner.changed

    @property
    def last_resync(self) -> float | None:
        return self.owner.last_resync

    @property
    def engine(self) -> Engine | None:
        return self.runtime.engine if self.runtime is not None else None

    @property
    def checks(self) -> CheckSet | None:
        return self.runtime.checks if self.runtime is not None else None

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
        raise_fd_limit()  # after the "starting" line: a daemon's log begins with that one
        try:
            self._instance_lock = instance_lock.acquire(opts.db)
        except (instance_lock.InstanceLocked, OSError) as exc:
            log.error("cannot start: %s", exc)
            self.logs.close()
            return 1
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
            self._release_lock()
            return 1
        try:
            self.store = await StoreWriter.open(opts.db)
            snapshot = await self.store.load()
        except StoreError as exc:
            log.error("cannot open the state database: %s", exc)
            if self.store is not None:
                await self.store.close()
            await self.console.close()
            self.logs.close()
            self._release_lock()
            return 1
        if opts.cluster_etcd:
            self.cluster = open_cluster(opts, self.metrics, self.mailer, self.queue)
            if self.cluster is None:
                await self._shutdown()
                return 1
        self._install_signals()
        self.sync = KernelSync(
            make_backend(self.backend_name, opts.ipvsadm, opts.ipvs_timeout),
            self.stopping,
            snapshot.managed,
        )
        actual = await first_read(self.sync, self._stopping, self.metrics, opts.ipvs_resync_period)
        if actual is None:  # stopped before the kernel could be read
            await self._shutdown()
            return 0
        engine = Engine(self.config, time.time(), snapshot, actual)
        limit = self.config.options.config_max_removed_share
        refused = check_start(engine, actual, self.sync.managed, limit)
        if refused is not None and not self.force:
            log.error("cannot start: %s: %s", self.config_path, refused)
            await self._shutdown()
            return 1
        if refused is not None:
            log.warning("start-up forced (--force): %s", refused.partition("; ")[0])
        rt = self.runtime = self._runtime(engine, self.store, self.sync)
        self.owner.attach(rt)
        self.started.set()  # from here the console answers from the real state
        try:
            if not await self._catch_up_cluster():
                return 1  # a wrong password or certificate: a clear start-up error
            await self.owner.start(engine.startup_step())
            EXEC_SLOTS.set_limit(self.config.options.check_exec_max_concurrent)
            # Checks of pairs the start-up left without weight run first, at once.
            unweighted = unweighted_targets(self.config, self.kernel_table())
            rt.checks.update(self.config.check_targets(), unweighted)
            rt.agents.update(agent_polls(self.config))
            await self._start_services(rt)
            sdnotify.ready("running")
            log.info("ipvswm running: %s", self.control.summary())
            await self.owner.run()
        finally:  # checkers, sockets and the store are closed however the loop ends
            await self._shutdown()
        return 0

    def _runtime(self, engine: Engine, store: StoreWriter, sync: KernelSync) -> Runtime:
        """The parts the owner works with (checkers and agents not started yet)."""
        opts = self.config.options
        watcher = ConfigWatcher(
            self.config_path,
            opts.config_check_period,
            self._auto_reload,
            seen=self.config_signature,
            events=True,  # inotify: a rename or a writer's close applied at once
        )
        self.reloader.watcher = watcher
        return Runtime(
            engine=engine,
            store=store,
            sync=sync,
            checks=CheckSet(self._on_check_result),
            agents=AgentSet(self._on_agent_result),
            watcher=watcher,
            mailer=self.mailer,
            metrics=self.metrics,
            logs=self.logs,
            cluster=self.cluster,
            queue=self.queue,
            stopping=self.stopping,
            publish_metrics=bool(opts.metrics_listen),
        )

    async def _catch_up_cluster(self) -> bool:
        """Before the first kernel change: what the other directors changed meanwhile.

        False on an error retrying cannot cure (logged); an unreachable store is no error.
        """
        if self.cluster is None:
            return True
        try:
            update = await self.cluster.start()
        except ClusterStartError as exc:
            log.error("cannot use the cluster store %s: %s", self.config.options.cluster_etcd, exc)
            return False
        if update is not None:
            batch = Batch()
            self.owner.take_shared(update, time.time(), batch)
            self.owner.unsaved = merge_changes(self.owner.unsaved, batch.changes)
            await self.owner.flush()
        self.cluster.run()
        return True

    async def _start_services(self, rt: Runtime) -> None:
        opts = self.config.options
        rt.watcher.follow(opts)  # watches the file while Config.AutoCheck is on
        if opts.metrics_listen:
            warn_if_public(opts.metrics_listen)
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
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reloader.reload("SIGHUP")))

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    def stop(self, why: str = "request") -> None:
        """Begin a clean exit: no kernel operation is made from here on."""
        if not self._stopping.is_set():
            self._stopping.set()  # first: nothing below may keep the daemon from stopping
            self.queue.put_nowait(StopRequest())
            sdnotify.stopping()
            log.info("ipvswm stopping (%s): leaving the IPVS table as it is", why)

    async def _shutdown(self) -> None:
        rt = self.runtime
        if rt is not None:
            await self.owner.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if rt is not None:
            await rt.watcher.close()
            await rt.checks.close()
            await rt.agents.close()
        if self.console is not None:
            await self.console.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.mailer.close()
        await self.watchdog.close()
        if self.store is not None:
            await self.store.close()
        log.info("ipvswm stopped")
        if self.logs is not None:
            self.logs.close()
        self._release_lock()

    def _release_lock(self) -> None:
        """Close the lock file (an in-process restart, as in tests, may then take it again)."""
        if self._instance_lock is not None:
            os.close(self._instance_lock)
            self._instance_lock = None

    def _alive(self) -> bool:
        """For the systemd watchdog: the owner loop took a step recently (resyncs keep it busy)."""
        period = self.config.options.ipvs_resync_period
        return time.monotonic() - self.owner.last_step < 3 * period + 30

    # --- inputs ---------------------------------------------------------------------------

    def _on_check_result(self, result: CheckResult) -> None:
        self.metrics.check_result(result)
        log_check_result(result)
        if not self._stopping.is_set():
            self.queue.put_nowait(result)

    def _on_agent_result(self, result: AgentResult) -> None:
        if not self._stopping.is_set():
            self.queue.put_nowait(result)

    def stopping(self) -> bool:
        """Whether a stop has begun."""
        return self._stopping.is_set()

    def running(self) -> bool:
        """Whether the engine runs (the kernel table has been read)."""
        return self.runtime is not None

    def ready(self) -> bool:
        """Whether the kernel table has been read and the engine runs."""
        return self.runtime is not None and not self._stopping.is_set()

    async def _auto_reload(self) -> None:
        """The watcher saw a settled change: reload, unless Config.AutoCheck was turned off by
        the time this reload's turn comes (the watcher says)."""
        watcher = self.runtime.watcher if self.runtime is not None else None
        await self.reloader.reload(AUTO_RELOAD, wanted=lambda: watcher is None or watcher.on)

    async def _resync_timer(self) -> None:
        while True:
            await asyncio.sleep(max(self.config.options.ipvs_resync_period, 0.2))
            self.queue.put_nowait(ResyncRequest())

    # --- views for the console and metrics (control.DaemonView) ----------------------------

    def engine_snapshot(self) -> StateSnapshot:
        """The engine's state now (empty before the engine exists)."""
        return self.runtime.snapshot() if self.runtime is not None else StateSnapshot()

    def kernel_table(self) -> Table:
        """The last table read from or applied to the kernel."""
        if self.sync is None or self.sync.actual is None:
            return Table()
        return self.sync.actual

    def checkers(self) -> Iterable[Checker]:
        """Every running checker."""
        return self.runtime.checks.checkers() if self.runtime is not None else ()

    def kernel_counts(self) -> tuple[int, int]:
        """Backend calls made, and failed, so far."""
        return (self.sync.calls, self.sync.failures) if self.sync is not None else (0, 0)
