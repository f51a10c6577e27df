"""The console's and the metrics' view of the running daemon (a console.control.Control).

It depends on two narrow seams, not on the daemon: a read-only `DaemonView` of what runs, and
`DaemonRequests`, the few ways to ask for a change (each goes through the owner's one queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable
from typing import Protocol

from ipvswm import __version__
from ipvswm.answers import Answer
from ipvswm.answers import Refused
from ipvswm.checks.checker import Checker
from ipvswm.cluster.adapter import ClusterStore
from ipvswm.config.diff import describe_diff
from ipvswm.config.guard import problems
from ipvswm.config.model import Config
from ipvswm.config.parser import ParseResult
from ipvswm.console.control import CheckView
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.dashboard import cluster_status
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent
from ipvswm.events import CheckStatus
from ipvswm.kernel.table import Table
from ipvswm.logs import LogControl
from ipvswm.metrics import status_document
from ipvswm.vocabulary import STARTING
from ipvswm.vocabulary import STOPPING


class DaemonView(Protocol):
    """What the control reads of the running daemon (it never changes any of it)."""

    @property
    def config(self) -> Config: ...
    @property
    def config_path(self) -> str: ...
    @property
    def backend_name(self) -> str: ...
    @property
    def started_at(self) -> float: ...
    @property
    def started(self) -> asyncio.Event: ...
    @property
    def changed(self) -> asyncio.Event: ...
    @property
    def last_resync(self) -> float | None: ...
    @property
    def cluster(self) -> ClusterStore | None: ...
    @property
    def logs(self) -> LogControl | None: ...

    def engine_snapshot(self) -> StateSnapshot: ...
    def kernel_table(self) -> Table: ...
    def checkers(self) -> Iterable[Checker]: ...
    def kernel_counts(self) -> tuple[int, int]: ...  # backend calls, failed calls
    def running(self) -> bool: ...  # the engine runs (the kernel table has been read)
    def stopping(self) -> bool: ...


class DaemonRequests(Protocol):
    """How the control asks the daemon for a change or a fresh look."""

    async def submit(self, event: AdminEvent, local: bool = False) -> Answer: ...
    async def forget(self, host: str, local: bool = False) -> Answer: ...
    async def reload_from_file(self, why: str, force: bool = False) -> ReloadOutcome: ...
    async def parse_config(self) -> ParseResult: ...
    def reload_refusal(self, config: Config) -> str | None: ...
    async def refresh_kernel(self) -> bool: ...


class DaemonControl:
    """Read-only views straight from the owner's objects; every mutation goes through the queue."""

    def __init__(self, view: DaemonView, requests: DaemonRequests) -> None:
        self._view = view
        self._requests = requests

    def config(self) -> Config:
        return self._view.config

    def snapshot(self) -> StateSnapshot:
        return self._view.engine_snapshot()

    def kernel(self) -> Table:
        return self._view.kernel_table()

    def checks(self) -> list[CheckView]:
        feeds: dict[object, list[str]] = {}
        for pair in self._view.config.pairs():
            if pair.check is not None:
                feeds.setdefault(pair.check, []).append(f"{pair.vs}/{pair.host}")
        views = []
        for checker in self._view.checkers():
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
        return await self._requests.submit(event, local)

    def cluster_view(self) -> dict[str, object] | None:
        """For `show cluster`: None without a cluster store."""
        cluster = self._view.cluster
        return cluster.view() if cluster is not None else None

    async def forget(self, host: str, local: bool = False) -> Answer:
        return await self._requests.forget(host, local)

    async def reload(self, force: bool = False) -> ReloadOutcome:
        return await self._requests.reload_from_file("console", force)

    async def config_diff(self) -> ReloadOutcome:
        result = await self._requests.parse_config()
        if result.config is None:
            return ReloadOutcome(ok=False, errors=tuple(result.messages()))
        actions = tuple(describe_diff(self.config(), result.config))
        return ReloadOutcome(
            ok=True, actions=actions, refusal=self._requests.reload_refusal(result.config)
        )

    async def config_check(self) -> ReloadOutcome:
        result = await self._requests.parse_config()
        errors = result.messages() if result.config is None else problems(result.config)
        return ReloadOutcome(ok=not errors, errors=tuple(errors))

    def set_log_level(self, level: int) -> None:
        if self._view.logs is not None:
            self._view.logs.set_level(level)

    def log_level_in_force(self) -> int | None:
        logs = self._view.logs
        return logs.log_level if logs is not None else None

    def status(self) -> dict[str, object]:
        view = self._view
        config = view.config
        checks = self.checks()
        calls, failures = view.kernel_counts()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started": view.started_at,
            "uptime": round(time.time() - view.started_at, 3),
            "config": view.config_path,
            "backend": view.backend_name,
            "virtual_services": len(config.services),
            "hosts": len(config.hosts),
            "pairs": sum(1 for _ in config.pairs()),
            "checkers": len(checks),
            "checks_passing": sum(1 for c in checks if c.status is CheckStatus.PASS),
            "kernel_calls": calls,
            "kernel_failures": failures,
            "last_resync": view.last_resync,
        }

    async def refresh_kernel(self) -> bool:
        return await self._requests.refresh_kernel()

    def ready(self) -> bool:
        return self._view.running() and not self._view.stopping()

    async def wait_ready(self, within: float) -> Refused | None:
        view = self._view
        if not view.started.is_set() and not view.stopping():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(view.started.wait(), within)
        if view.stopping():
            return Refused(STOPPING)
        if not view.running():
            return Refused(STARTING)
        return None

    async def wait_change(self) -> None:
        await self._view.changed.wait()

    # --- used by the daemon itself -----------------------------------------------------------

    def summary(self) -> str:
        status = self.status()
        return (
            f"{status['virtual_services']} virtual services, {status['hosts']} hosts, "
            f"{status['pairs']} pairs, {status['checkers']} checkers"
        )

    def status_document(self) -> dict[str, object]:
        """The /status JSON document."""
        document = dict(status_document(self.config(), self.snapshot(), self.kernel()))
        document["daemon"] = self.status()
        document["cluster"] = cluster_status(self._view.cluster)
        return document
