"""The console's and the metrics' view of the running daemon (a console.control.Control)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING

from ipvswm import __version__
from ipvswm.answers import Answer
from ipvswm.config.diff import describe_diff
from ipvswm.config.guard import problems
from ipvswm.config.model import Config
from ipvswm.console.commands import STARTING
from ipvswm.console.control import CheckView, ReloadOutcome
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent, CheckStatus
from ipvswm.kernel.table import Table

if TYPE_CHECKING:
    from ipvswm.daemon import Daemon


class DaemonControl:
    """Read-only views straight from the owner's objects; every mutation goes through the queue."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def config(self) -> Config:
        return self._daemon.config

    def snapshot(self) -> StateSnapshot:
        return self._daemon.engine_snapshot()

    def kernel(self) -> Table:
        return self._daemon.kernel_table()

    def checks(self) -> list[CheckView]:
        daemon = self._daemon
        if daemon.checks is None:
            return []
        feeds: dict[object, list[str]] = {}
        for pair in daemon.config.pairs():
            if pair.check is not None:
                feeds.setdefault(pair.check, []).append(f"{pair.vs}/{pair.host}")
        views = []
        for checker in daemon.checks.checkers():
            last = checker.last_result
            views.append(
                CheckView(
                    target=str(checker.target),
                    status=checker.status,
                    last_started=last.started if last is not None else None,
                    last_duration=(last.ended - last.started) if last is not None else None,
                    cause=last.cause if last is not None else "",
                    pairs=tuple(feeds.get(checker.target, ())),
                    no_verdict=checker.local_errors,
                )
            )
        views.sort(key=lambda v: v.target)
        return views

    async def submit(self, event: AdminEvent, local: bool = False) -> Answer:
        return await self._daemon.submit(event, local)

    def cluster_view(self) -> dict[str, object] | None:
        """For `show cluster`: None without a cluster store."""
        cluster = self._daemon.cluster
        return cluster.view() if cluster is not None else None

    async def forget(self, host: str, local: bool = False) -> Answer:
        return await self._daemon.forget(host, local)

    async def reload(self, force: bool = False) -> ReloadOutcome:
        return await self._daemon.reload_from_file("console", force)

    async def config_diff(self) -> ReloadOutcome:
        result = await self._daemon.parse_config()
        if result.config is None:
            return ReloadOutcome(ok=False, errors=tuple(result.messages()))
        actions = tuple(describe_diff(self.config(), result.config))
        return ReloadOutcome(
            ok=True, actions=actions, refusal=self._daemon.reload_refusal(result.config)
        )

    async def config_check(self) -> ReloadOutcome:
        result = await self._daemon.parse_config()
        errors = result.messages() if result.config is None else problems(result.config)
        return ReloadOutcome(ok=not errors, errors=tuple(errors))

    def set_log_level(self, level: int) -> None:
        if self._daemon.logs is not None:
            self._daemon.logs.set_level(level)

    def log_level_in_force(self) -> int | None:
        logs = self._daemon.logs
        return logs.log_level if logs is not None else None

    def status(self) -> dict[str, object]:
        daemon = self._daemon
        config = daemon.config
        sync = daemon.sync
        checks = self.checks()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started": daemon.started_at,
            "uptime": round(time.time() - daemon.started_at, 3),
            "config": daemon.config_path,
            "backend": daemon.backend_name,
            "virtual_services": len(config.services),
            "hosts": len(config.hosts),
            "pairs": sum(1 for _ in config.pairs()),
            "checkers": len(checks),
            "checks_passing": sum(1 for c in checks if c.status is CheckStatus.PASS),
            "kernel_calls": sync.calls if sync is not None else 0,
            "kernel_failures": sync.failures if sync is not None else 0,
            "last_resync": daemon.last_resync,
        }

    async def refresh_kernel(self) -> bool:
        return await self._daemon.refresh_kernel()

    def ready(self) -> bool:
        return self._daemon.ready()

    async def wait_ready(self, within: float) -> str | None:
        daemon = self._daemon
        if not daemon.started.is_set() and not daemon.stopping():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(daemon.started.wait(), within)
        if daemon.stopping():
            return "# the daemon is stopping"
        if daemon.engine is None:
            return STARTING
        return None

    async def wait_change(self) -> None:
        await self._daemon.changed.wait()

    # --- used by the daemon itself -----------------------------------------------------------

    def summary(self) -> str:
        status = self.status()
        return (
            f"{status['virtual_services']} virtual services, {status['hosts']} hosts, "
            f"{status['pairs']} pairs, {status['checkers']} checkers"
        )

    def status_document(self) -> dict[str, object]:
        """The /status JSON document."""
        from ipvswm.dashboard import cluster_status
        from ipvswm.metrics import status_document

        document = dict(status_document(self.config(), self.snapshot(), self.kernel()))
        document["daemon"] = self.status()
        document["cluster"] = cluster_status(self._daemon.cluster)
        return document
