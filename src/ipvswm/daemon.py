"""The daemon: one event queue, one owner of the engine, start-up, reload and shutdown (SPEC §9).

Checkers, the console, the config watcher and timers only put events on the queue. The owner task
takes them in batches, feeds them to the pure engine, commits the state changes, acknowledges admin
commands, and only then converges the kernel: one batch of operations per engine step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import time
from collections.abc import Coroutine
from typing import Any

from ipvswm import instance_lock, sdnotify
from ipvswm.alerts import Mailer
from ipvswm.answers import Answer, Applied, Refused
from ipvswm.checks.agent import AgentSet
from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.execcheck import SLOTS as EXEC_SLOTS
from ipvswm.cluster.adapter import ClusterStartError, ClusterStore
from ipvswm.cluster.memory import Memory
from ipvswm.config.agent import agent_polls
from ipvswm.config.guard import refusal
from ipvswm.config.model import Config
from ipvswm.config.parser import ParseResult, parse_bytes, unreadable
from ipvswm.config.reader import ConfigReadError, read_config_bytes
from ipvswm.config.resolve import split_host_port
from ipvswm.config.watch import ConfigWatcher, Signature, file_signature
from ipvswm.console.authority import is_loopback
from ipvswm.console.control import ReloadOutcome
from ipvswm.console.server import ConsoleError, ConsoleServer
from ipvswm.daemon_control import DaemonControl
from ipvswm.daemon_guard import check_start
from ipvswm.daemon_owner import Owner
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
from ipvswm.engine.layout import unweighted_targets
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent, AgentResult, CheckResult, ForgetHost
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backends import make_backend
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.table import Table
from ipvswm.logs import CHECK_RESULT, CHECK_STATUS, LogControl, setup_logging
from ipvswm.metrics import Metrics, MetricsServer
from ipvswm.offload import run_detached
from ipvswm.store import Store, StoreError

log = logging.getLogger(__name__)

AUTO_RELOAD = "file changed"
STARTING = "the daemon is starting: the kernel table has not been read yet"
STOPPING = "the daemon is stopping"


class Daemon:
    """The running ipvswm: wires config, engine, store, checkers, kernel, console and alerts."""

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
        self.config = config
        self.foreground = foreground
        self.backend_name = backend or config.options.ipvs_backend
        self.force = force  # start even if the file would empty the table (daemon_guard)
        self.started_at = time.time()
        # The version of the file `config` came from (taken now: start-up may take a while, and
        # an edit made meanwhile must still be noticed by the watcher).
        self.config_signature = file_signature(config_path)
        self._reload_lock = asyncio.Lock()  # one reload at a time: never an older file last
        self.queue: asyncio.Queue[QueueItem] = asyncio.Queue()
        self.engine: Engine | None = None
        self.sync: KernelSync | None = None
        self.checks: CheckSet | None = None
        self.agents: AgentSet | None = None  # agent feedback pollers (config.agent)
        self.store: Store | None = None
        self.logs: LogControl | None = None
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.mailer = Mailer(config.options)
        self.control = DaemonControl(self)
        self.console: ConsoleServer | None = None
        self.watcher: ConfigWatcher | None = None
        self.changed = asyncio.Event()
        self.started = asyncio.Event()  # set once the state is loaded and the kernel read
        self.last_resync: float | None = None
        self.last_step = time.monotonic()
        self.watchdog = sdnotify.Watchdog(alive=self._alive)
        self._stopping = asyncio.Event()
        self.owner: Owner | None = None
        self.cluster: ClusterStore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._instance_lock: int | None = None  # held (open) until the process exits

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
            self.store = Store(opts.db)
            snapshot = self.store.load()
        except StoreError as exc:
            log.error("cannot open the state database: %s", exc)
            await self.console.close()
            self.logs.close()
            self._release_lock()
            return 1
        if opts.cluster_etcd and not await self._open_cluster():
            await self._shutdown()
            return 1
        self._install_signals()
        self.sync = KernelSync(
            make_backend(self.backend_name, opts.ipvsadm, opts.ipvs_timeout),
            self.stopping,
            snapshot.managed,
        )
        actual = await self._first_read()
        if actual is None:  # stopped before the kernel could be read
            await self._shutdown()
            return 0
        self.engine = Engine(self.config, time.time(), snapshot, actual)
        limit = self.config.options.config_max_removed_share
        refused = check_start(self.engine, actual, self.sync.managed, limit)
        if refused is not None and not self.force:
            log.error("cannot start: %s: %s", self.config_path, refused)
            await self._shutdown()
            return 1
        if refused is not None:
            log.warning("start-up forced (--force): %s", refused.partition("; ")[0])
        self.owner = Owner(self)
        self.started.set()  # from here the console answers from the real state
        try:
            if not await self._catch_up_cluster():
                return 1  # a wrong password or certificate: a clear start-up error
            await self.owner.start(self.engine.startup_step())
            self.checks = CheckSet(self._on_check_result)
            EXEC_SLOTS.set_limit(self.config.options.check_exec_max_concurrent)
            # Checks of pairs the start-up left without weight run first, at once.
            unweighted = unweighted_targets(self.config, self.kernel_table())
            self.checks.update(self.config.check_targets(), unweighted)
            self.agents = AgentSet(self._on_agent_result)
            self.agents.update(agent_polls(self.config))
            await self._start_services()
            sdnotify.ready("running")
            log.info("ipvswm running: %s", self.control.summary())
            await self.owner.run()
        finally:  # checkers, sockets and the store are closed however the loop ends
            await self._shutdown()
        return 0

    async def _open_cluster(self) -> bool:
        """Open the cluster store adapter (Cluster.Etcd); False on a start-up error (logged)."""
        opts = self.config.options
        try:
            self.cluster = ClusterStore(
                opts,
                Memory(opts.db),
                self.queue.put_nowait,
                registry=self.metrics.registry,
                alert=self.mailer.notify_text,
            )
        except (ClusterStartError, OSError) as exc:
            log.error("cannot use the cluster store %s: %s", opts.cluster_etcd, exc)
            return False
        return True

    async def _catch_up_cluster(self) -> bool:
        """Before the first kernel change: what the other directors changed meanwhile.

        False on an error retrying cannot cure (logged); an unreachable store is no error.
        """
        if self.cluster is None or self.owner is None:
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
            self.owner.flush()
        self.cluster.run()
        return True

    def vss_of(self, host: str) -> tuple[str, ...]:
        """The VSs a host is on (for an override without a VS list)."""
        found = self.config.host(host)
        return tuple(vs for vs, _ in found.weights) if found is not None else ()

    async def _first_read(self) -> Table | None:
        """Read the kernel table, retrying (and logging) until it works or we are stopped."""
        assert self.sync is not None
        delay = 1.0
        while not self._stopping.is_set():
            try:
                return await self.sync.read()
            except BackendError as exc:
                self.metrics.backend_error(exc.kind)
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
        self.follow_auto_check()
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
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload_from_file("SIGHUP")))

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
        if self.owner is not None:
            await self.owner.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.watcher is not None:
            await self.watcher.close()
        if self.checks is not None:
            await self.checks.close()
        if self.agents is not None:
            await self.agents.close()
        if self.console is not None:
            await self.console.close()
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.mailer.close()
        await self.watchdog.close()
        if self.store is not None:
            self.store.close()
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

    def _on_agent_result(self, result: AgentResult) -> None:
        if not self._stopping.is_set():
            self.queue.put_nowait(result)

    async def submit(self, event: AdminEvent, local: bool = False) -> Answer:
        """Apply an admin event; returns once its state change is committed (or refused).

        With a cluster store, the event is committed there first (unless `local`), so an
        unreachable store refuses it and nothing changes.
        """
        if self.engine is None:
            return Refused(STARTING)
        if self._stopping.is_set():
            return Refused(STOPPING)
        if self.cluster is not None and not local:
            refused = await self.cluster.commit(event, self.vss_of)
            if refused is not None:
                return refused
        reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(AdminRequest(event, reply))
        answer = await reply
        if self.cluster is not None and local and isinstance(answer, Applied):
            self.cluster.note_local(event, self.vss_of)
        return answer

    async def forget(self, host: str, local: bool = False) -> Answer:
        """`forget host H`: drop the kept admin state of H's removed parts, once committed
        (with a cluster store, there first, unless `local`)."""
        if self.engine is None:
            return Refused(STARTING)
        if self._stopping.is_set():
            return Refused(STOPPING)
        if self.cluster is not None and not local:
            refused = await self.cluster.commit_forget(host, self.config, self.engine_snapshot())
            if refused is not None:
                return refused
        reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(AdminRequest(ForgetHost(host), reply))
        return await reply

    async def refresh_kernel(self) -> bool:
        """Have the owner re-read (and resync) the kernel table; True once a fresh read worked."""
        if self.engine is None or self._stopping.is_set():
            return False
        reply: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(ResyncRequest(reply))
        return await reply

    def stopping(self) -> bool:
        """Whether a stop has begun."""
        return self._stopping.is_set()

    def ready(self) -> bool:
        """Whether the kernel table has been read and the engine runs."""
        return self.engine is not None and not self._stopping.is_set()

    async def parse_config(self) -> ParseResult:
        """Read and parse the config file off the event loop (see `read_config`)."""
        return (await read_config(self.config_path))[1]

    def reload_refusal(self, config: Config) -> str | None:
        """Why `config` may replace the running one only with `force` (config.guard), or None."""
        return refusal(self.config, config)

    async def reload_from_file(self, why: str, force: bool = False) -> ReloadOutcome:
        """Parse the file (off the loop: names may be resolved) and apply it if valid and safe.

        One at a time: a slow parse of an older version can never be applied after a newer one.
        Never raises: whatever goes wrong is logged at ERROR here, whichever trigger asked
        (a SIGHUP's task has nobody to report to).
        """
        try:
            async with self._reload_lock:
                if why == AUTO_RELOAD and not self.config.options.config_auto_check:
                    # Queued behind the reload that turned Config.AutoCheck off: not wanted now.
                    return ReloadOutcome(ok=True)
                return await self._reload(why, force)
        except Exception:
            log.exception("config reload (%s) failed unexpectedly; keeping the running config", why)
            self.metrics.reload(False)
            return ReloadOutcome(ok=False, errors=("# internal error (logged)",))

    async def _reload(self, why: str, force: bool) -> ReloadOutcome:
        signature, result = await read_config(self.config_path)
        if self.watcher is not None:
            self.watcher.mark_seen(signature)  # taken before the read: a later write is seen
        if result.config is None:
            errors = tuple(result.messages())
            for text in errors:  # at most MAX_ERRORS lines, then "... and N more"
                log.error("config reload (%s) rejected: %s", why, text)
            log.error("config reload (%s): nothing applied, keeping the last good config", why)
            self.metrics.reload(False)
            return ReloadOutcome(ok=False, errors=errors)
        if self.engine is None or self._stopping.is_set():
            return ReloadOutcome(ok=False, errors=("# the daemon is not running",))
        refused = self.reload_refusal(result.config)
        if refused is not None:
            if not force:
                log.error("config reload (%s) refused: %s: %s", why, self.config_path, refused)
                self.metrics.reload(False)
                return ReloadOutcome(ok=False, errors=(f"refused: {refused}",), refusal=refused)
            log.warning("config reload (%s) forced: %s", why, refused.partition("; ")[0])
        sdnotify.reloading()
        reply: asyncio.Future[ReloadOutcome] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(ReloadRequest(result.config, reply))
        outcome = await reply
        sdnotify.ready("running")
        return outcome

    def follow_auto_check(self) -> None:
        """Watch the config file while `Config.AutoCheck` is on (at start and after a reload)."""
        opts = self.config.options
        if opts.config_auto_check and self.watcher is None:
            self.watcher = ConfigWatcher(
                self.config_path,
                opts.config_check_period,
                self._auto_reload,
                seen=self.config_signature,
                events=True,  # inotify: a rename or a writer's close applied at once
            )
            self.watcher.start()
        # Turned off: the watcher stays (closing it could cancel the very reload that turned it
        # off, when that reload was automatic) and `_auto_reload` ignores what it notices.

    async def _auto_reload(self) -> None:
        await self.reload_from_file(AUTO_RELOAD)  # ignored once Config.AutoCheck is off

    async def _resync_timer(self) -> None:
        while True:
            await asyncio.sleep(max(self.config.options.ipvs_resync_period, 0.2))
            self.queue.put_nowait(ResyncRequest())

    # --- views for the console and metrics ------------------------------------------------

    def engine_snapshot(self) -> StateSnapshot:
        """The engine's state now (empty before the engine exists)."""
        return self.engine.snapshot() if self.engine is not None else StateSnapshot()

    def kernel_table(self) -> Table:
        """The last table read from or applied to the kernel."""
        if self.sync is None or self.sync.actual is None:
            return Table()
        return self.sync.actual


CONFIG_READ_TIMEOUT = 30.0
"""Seconds a config read may take before the reload gives up on it (a hung mount)."""


async def read_config(path: str) -> tuple[Signature, ParseResult]:
    """The file's signature and parse, each in a thread that never delays the daemon's exit.

    Only a regular file is read (config.reader), so a FIFO cannot block; a stat or read that
    still hangs in the kernel is abandoned after CONFIG_READ_TIMEOUT seconds, which frees the
    reload lock. The signature is taken before the read: a write during the parse is seen next.
    """

    def read() -> tuple[Signature, bytes | str]:
        signature = file_signature(path)
        try:
            return signature, read_config_bytes(path)
        except ConfigReadError as exc:
            return signature, str(exc)

    try:
        signature, data = await run_detached(read, "config-read", CONFIG_READ_TIMEOUT)
    except TimeoutError:
        message = (
            f"cannot read config file: no answer within {CONFIG_READ_TIMEOUT:g}s"
            " (a hung mount?); the read is abandoned"
        )
        return None, unreadable(path, message)
    if isinstance(data, str):
        return signature, unreadable(path, data)
    return signature, await run_detached(lambda: parse_bytes(data, path), "config-parse")


def warn_if_public(listen: str) -> None:
    """/status and /metrics have no authentication: say so when they are not on loopback."""
    host = split_host_port(listen)[0]
    if host != "localhost" and not is_loopback(host):
        log.warning(
            "Metrics.Listen %s is not a loopback address: /status and /metrics (every host, "
            "weight and check) are readable by anyone who can reach it, without authentication",
            listen,
        )


def raise_fd_limit() -> None:
    """Every check holds a socket: use the whole hard limit of open files, not the soft 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)
            return
        log.info("open-files limit raised from %d to %d", soft, hard)
