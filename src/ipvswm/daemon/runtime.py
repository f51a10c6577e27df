"""The parts of a running daemon, built once at start, and the process set-up around them."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from dataclasses import dataclass

from ipvswm.alerts import Mailer
from ipvswm.checks.agent import AgentSet
from ipvswm.checks.checkset import CheckSet
from ipvswm.cluster.adapter import ClusterStartError
from ipvswm.cluster.adapter import ClusterStore
from ipvswm.cluster.memory import Memory
from ipvswm.config.model import GlobalOptions
from ipvswm.config.resolve import split_host_port
from ipvswm.config.watch import ConfigWatcher
from ipvswm.console.authority import is_loopback
from ipvswm.daemon.requests import QueueItem
from ipvswm.engine.engine import Engine
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import CheckResult
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.table import Table
from ipvswm.logs import CHECK_RESULT
from ipvswm.logs import CHECK_STATUS
from ipvswm.logs import LogControl
from ipvswm.metrics import Metrics
from ipvswm.store.writer import StoreWriter

log = logging.getLogger("ipvswm.daemon")


@dataclass(slots=True, eq=False)
class Runtime:
    """Engine, store, kernel sync, checks, agents, watcher, mailer, metrics, logs and cluster:
    built once the kernel has been read (Daemon.run), never replaced, used by the owner."""

    engine: Engine
    store: StoreWriter
    sync: KernelSync
    checks: CheckSet
    agents: AgentSet
    watcher: ConfigWatcher
    mailer: Mailer
    metrics: Metrics
    logs: LogControl | None
    cluster: ClusterStore | None
    queue: asyncio.Queue[QueueItem]
    stopping: Callable[[], bool]
    publish_metrics: bool  # Metrics.Listen is set: the gauges follow every change

    def snapshot(self) -> StateSnapshot:
        """The engine's state now."""
        return self.engine.snapshot()

    def kernel(self) -> Table:
        """The last table read from or applied to the kernel."""
        return self.sync.actual if self.sync.actual is not None else Table()


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


def open_cluster(
    opts: GlobalOptions, metrics: Metrics, mailer: Mailer, queue: asyncio.Queue[QueueItem]
) -> ClusterStore | None:
    """The cluster store adapter (Cluster.Etcd); None on a start-up error (logged)."""
    try:
        return ClusterStore(
            opts,
            Memory(opts.db),
            queue.put_nowait,
            registry=metrics.registry,
            alert=mailer.notify_text,
        )
    except (ClusterStartError, OSError) as exc:
        log.error("cannot use the cluster store %s: %s", opts.cluster_etcd, exc)
        return None


async def first_read(
    sync: KernelSync, stopping: asyncio.Event, metrics: Metrics, resync_period: float
) -> Table | None:
    """Read the kernel table, retrying (and logging) until it works or a stop begins."""
    delay = 1.0
    while not stopping.is_set():
        try:
            return await sync.read()
        except BackendError as exc:
            metrics.backend_error(exc.kind)
            log.error(
                "cannot read the IPVS table with backend %s (%s): %s; retrying in %.0fs",
                sync.backend.name,
                exc.kind.value,
                exc.message,
                delay,
            )
        try:
            await asyncio.wait_for(stopping.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, max(resync_period, 1.0))
    return None


def log_check_result(result: CheckResult) -> None:
    """A check's result at Log.Level 5 (a change of status) and 6 (every result)."""
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
