"""What goes through the daemon's one queue, what one pass of the owner loop accumulates, and what
a reload answers (the console imports these: it depends on the daemon's vocabulary, not the
reverse)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from dataclasses import field

from ipvswm.answers import Answer
from ipvswm.cluster.adapter import SharedUpdate
from ipvswm.config.model import Config
from ipvswm.engine.state import StateChanges
from ipvswm.events import AdminEvent
from ipvswm.events import AgentResult
from ipvswm.events import CheckResult
from ipvswm.events import ForgetHost
from ipvswm.events import Tick
from ipvswm.kernel.table import ServiceKey


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a `config reload` did: the actions taken, or the errors that stopped it."""

    ok: bool
    actions: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    refusal: str | None = None  # why a reload needs `force` (config.guard), if it does


@dataclass(slots=True)
class AdminRequest:
    """An admin event with the future its console session awaits (resolved after commit)."""

    event: AdminEvent | ForgetHost
    reply: asyncio.Future[Answer]


@dataclass(slots=True)
class ReloadRequest:
    """A parsed, valid config to apply, with the future the caller awaits."""

    config: Config
    reply: asyncio.Future[ReloadOutcome]


@dataclass(slots=True)
class ResyncRequest:
    """Re-read the whole kernel table and correct every difference."""

    reply: asyncio.Future[bool] | None = None  # resolved once read: True if the read worked
    asked: float = field(default_factory=time.monotonic)  # a read begun after this will do


@dataclass(slots=True)
class StopRequest:
    """Leave the owner loop (no kernel operation)."""


QueueItem = (
    CheckResult | AdminRequest | ReloadRequest | ResyncRequest | StopRequest | Tick | SharedUpdate
) | AgentResult


def merge_changes(into: StateChanges, more: StateChanges) -> StateChanges:
    """Both sets of changes as one transaction; later values win."""
    if not into:
        return more
    if not more:
        return into
    return StateChanges(
        hosts={**into.hosts, **more.hosts},
        pairs={**into.pairs, **more.pairs},
        vss={**into.vss, **more.vss},
        managed_added=(into.managed_added - more.managed_removed) | more.managed_added,
        managed_removed=(into.managed_removed - more.managed_added) | more.managed_removed,
        kept={**into.kept, **more.kept},
    )


@dataclass(slots=True)
class Batch:
    """What one pass of the owner loop accumulated."""

    changes: StateChanges = field(default_factory=StateChanges)
    touched: set[ServiceKey] = field(default_factory=set)
    reloads: list[tuple[asyncio.Future[ReloadOutcome], ReloadOutcome]] = field(default_factory=list)
    full_resync: bool = False
    resync_waiters: list[asyncio.Future[bool]] = field(default_factory=list)
    oldest_wait: float = float("inf")  # the earliest `asked` of the waiters
    stop: bool = False

    def fail_pending(self, message: str) -> None:
        """Answer every request of this batch that has no answer yet."""
        for reload_future, _ in self.reloads:
            if not reload_future.done():
                reload_future.set_result(ReloadOutcome(ok=False, errors=(message,)))
        self.wake_resync_waiters(False)

    def wake_resync_waiters(self, read: bool) -> None:
        """Tell whoever asked for a kernel read whether a fresh one happened."""
        for waiter in self.resync_waiters:
            if not waiter.done():
                waiter.set_result(read)
