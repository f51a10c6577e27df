"""The kernel applier: the one task that changes the kernel, apart from commit and acknowledge.

The owner commits a batch, answers its commands, and only then asks for the kernel to follow
(issue 10 item 11): a hung `ipvsadm -R` no longer holds back the next command's commit and answer.
This task converges the kernel to the latest desired table, read when a convergence begins; while
one is under way, newer requests coalesce into the next, and there are never two at once. Full
re-reads (resync, a `wait`'s fresh read) run here too: they share the cached actual table.

Once the daemon stops, no kernel operation is begun (SPEC §6, issue 10 item 14; `KernelSync`
checks the same flag before every apply). One already under way is let finish, bounded by the
backend's timeout: cutting an `ipvsadm -R` half-way could leave a destination deleted and not
re-added until the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol

from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.sync import SyncOutcome
from ipvswm.kernel.sync import describe_op
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

log = logging.getLogger("ipvswm.daemon")

STOP_GRACE = 15.0
"""Seconds an operation under way may take to end once the daemon stops (then it is cancelled);
more than an ipvsadm call's timeout, so a hung call is killed by its own timeout first."""

READS_AFTER_ADD = 2
"""Reads more for a `wait` when a resync added destinations after its read (their connection
counters are the kernel's to say); still adding after these, the waiters are told "no fresh
read" and look again later."""


class ApplierHost(Protocol):
    """What the applier needs from the owner of the engine (it never changes the engine)."""

    def plan(self) -> Table:
        """The desired table, as decided now."""
        ...

    def booked(self, outcome: SyncOutcome) -> None:
        """Take note of what a convergence did (managed services, counters)."""
        ...

    async def resynced(self, failure: FailureKind | None) -> None:
        """A full read ended (None: it worked)."""
        ...

    def applied(self) -> None:
        """One request was handled: the kernel is as recent as it gets for now."""
        ...


@dataclass(slots=True)
class Request:
    """What the applier was asked for since its last convergence began."""

    keys: set[ServiceKey] = field(default_factory=set)  # services whose desired entry changed
    resync: bool = False  # re-read the whole table and correct every difference
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)  # want a read begun after…
    oldest_wait: float = float("inf")  # …the earliest of their asking times (monotonic)

    def __bool__(self) -> bool:
        return bool(self.keys or self.resync or self.waiters)

    def wake(self, fresh: bool) -> None:
        """Tell the waiters whether a read begun after they asked worked."""
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(fresh)


class KernelApplier:
    """Converges the kernel to the owner's latest desired table, one convergence at a time."""

    def __init__(self, sync: KernelSync, host: ApplierHost, stopping: Callable[[], bool]) -> None:
        self.sync = sync
        self.host = host
        self.stopping = stopping
        self.last_read_begun = time.monotonic()
        self._pending = Request()
        self._wanted = asyncio.Event()
        self._added = False  # the last resync added a destination after its read
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the applier task (after the start-up convergence)."""
        self._task = asyncio.create_task(self._run(), name="kernel-applier")

    def ask(
        self,
        keys: Iterable[ServiceKey] = (),
        *,
        resync: bool = False,
        waiters: Iterable[asyncio.Future[bool]] = (),
        oldest_wait: float = float("inf"),
    ) -> bool:
        """Ask for these services to follow the desired table (and/or a read); False if nothing
        was asked. Never waits: what is asked while busy is done together next."""
        pending = self._pending
        pending.keys.update(keys)
        pending.resync = pending.resync or resync
        pending.waiters.extend(waiters)
        pending.oldest_wait = min(pending.oldest_wait, oldest_wait)
        if not pending:
            return False
        self._wanted.set()
        return True

    async def converge(self, keys: Collection[ServiceKey] | None, reason: str) -> None:
        """Converge in the caller's task (start-up, before the applier task runs)."""
        assert self._task is None, "the applier task is the only one to converge once it runs"
        await self._converge(keys, reason)

    async def close(self) -> None:
        """Stop: let what is under way end (at most STOP_GRACE s), begin nothing more."""
        task, self._task = self._task, None
        if task is not None:
            self._wanted.set()  # the task sees the stop and ends
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
            except TimeoutError:
                log.warning("kernel: an operation under way after %gs is abandoned", STOP_GRACE)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pending.wake(False)

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            if self.stopping():
                return
            request, self._pending = self._pending, Request()
            try:
                await self._handle(request)
            except Exception:  # a bug must not stop the kernel from ever following again
                log.exception("internal error applying to the kernel; the next resync corrects it")
            finally:
                request.wake(False)  # no-op for the waiters already told
                self.host.applied()

    async def _handle(self, request: Request) -> None:
        # A waiter needs a read begun after it asked (several waiters share one read).
        fresh = self.last_read_begun >= request.oldest_wait
        if request.resync or (request.waiters and not fresh):
            fresh = await self._resync()
            if not fresh and request.keys:
                await self._converge(request.keys, "")  # the read failed: use the cached table
            # A destination the resync added after its read shows 0 connections in the cached
            # table, but the kernel's trash may have given it its old ones back: read again.
            for _ in range(READS_AFTER_ADD):
                if not (fresh and request.waiters and self._added):
                    break
                fresh = await self._resync()
            else:
                fresh = fresh and not (request.waiters and self._added)
        elif request.keys:
            await self._converge(request.keys, "")
        request.wake(fresh)

    async def _converge(self, keys: Collection[ServiceKey] | None, reason: str) -> None:
        desired = self.host.plan()
        outcome = await self.sync.converge(desired, keys, reason=reason)
        self.host.booked(outcome)

    async def _resync(self) -> bool:
        """Re-read the table and correct every difference; False if the read failed."""
        begun = time.monotonic()
        # Decided before the read: what the owner decides while the read is under way is asked
        # for next, so only tampering and failed operations show as "the kernel differed".
        desired = self.host.plan()
        try:
            await self.sync.read()
        except BackendError as exc:
            log.error("resync: cannot read the IPVS table (%s): %s", exc.kind.value, exc.message)
            await self.host.resynced(exc.kind)
            return False
        self.last_read_begun = begun
        outcome = await self.sync.converge(desired, None, reason="resync")
        actual = self.sync.actual
        self._added = actual is not None and any(
            isinstance(op, AddDestination)
            and actual.destination(op.service, op.destination.key) is not None
            for op in outcome.ops
        )  # accepted: the cached table says 0 connections for it, no read said so
        if outcome.ops:
            log.warning(
                "resync: the kernel differed from the desired table; %d operation(s) to correct it",
                len(outcome.ops),
            )
            for op in outcome.ops:
                log.warning("resync: %s", describe_op(op))
        self.host.booked(outcome)
        await self.host.resynced(None)
        return True
