"""Keeps the kernel equal to the desired table: cached actual table, managed set, diff, apply.

The sync owns the kernel-side bookkeeping: the actual table (read, then kept up to date with the
operations the kernel accepted) and the managed set (the services this daemon manages: the
desired ones plus removed ones not yet confirmed gone from the kernel, persisted so that a VS
removed by a reload is still deleted after a restart). The owner persists the set's changes
(`manage`, `managed_changes`); nothing of it goes back into the engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace

from ipvswm.kernel.backend import ApplyResult
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.backend import KernelBackend
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from ipvswm.loglevels import KERNEL_OP

log = logging.getLogger(__name__)


def restrict(table: Table, keys: Iterable[ServiceKey]) -> Table:
    """The part of a table that holds these services."""
    return Table({k: table.services[k] for k in keys if k in table.services})


def describe_op(op: Op) -> str:
    """A one-line, operator-readable form of an operation."""
    name = type(op).__name__
    if isinstance(op, AddDestination | EditDestination):
        d = op.destination
        return f"{name} {op.service} {d.key} weight {d.weight} ({d.forward.name.lower()})"
    if isinstance(op, DeleteDestination):
        return f"{name} {op.service} {op.key}"
    if isinstance(op, AddService | EditService):
        s = op.service
        return f"{name} {s.key} scheduler {s.scheduler}"
    return f"{name} {op.key}"


def accepted(table: Table, ops: Iterable[Op]) -> Table:
    """The table after ops the kernel accepted, as the kernel holds it: nothing is validated
    (the kernel is right: a scheduler this code does not know is the kernel's business).

    Only the services the ops touch are copied; new destinations start with no connections.
    """
    services = dict(table.services)
    dests: dict[ServiceKey, dict[DestKey, Destination]] = {}

    def of(key: ServiceKey) -> dict[DestKey, Destination] | None:
        if key not in dests and key in services:
            dests[key] = dict(services[key].destinations)
        return dests.get(key)

    for op in ops:
        if isinstance(op, AddService):
            services[op.service.key] = ServiceEntry(op.service, {})
            dests[op.service.key] = {}
        elif isinstance(op, EditService):
            if (found := of(op.service.key)) is not None:
                services[op.service.key] = ServiceEntry(op.service, found)
        elif isinstance(op, DeleteService):
            services.pop(op.key, None)
            dests.pop(op.key, None)
        elif (found := of(op.service)) is None:
            continue
        elif isinstance(op, AddDestination):
            found[op.destination.key] = replace(op.destination, active=0, inactive=0)
        elif isinstance(op, EditDestination):
            dest, old = op.destination, found.get(op.destination.key)
            if old is not None:  # its connections stay
                dest = replace(dest, active=old.active, inactive=old.inactive)
            found[dest.key] = dest
        else:
            found.pop(op.key, None)
    for key, found in dests.items():
        if key in services:
            services[key] = ServiceEntry(services[key].service, found)
    return Table(services)


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What one convergence did."""

    ops: tuple[Op, ...] = ()
    errors: tuple[str, ...] = ()
    backend_failure: FailureKind | None = None  # the backend failed as a whole

    @property
    def ok(self) -> bool:
        return not self.errors


class KernelSync:
    """Owns the cached actual table and the managed set; only the daemon's kernel applier
    converges (the owner reads `actual`, and persists the managed set's changes).

    `stopping` is checked before every apply: once the daemon stops, no operation is begun
    (SPEC §6); what was decided stays in the state DB and is applied at the next start.
    """

    def __init__(
        self,
        backend: KernelBackend,
        stopping: Callable[[], bool] = lambda: False,
        managed: Iterable[ServiceKey] = (),
    ) -> None:
        self.backend = backend
        self.stopping = stopping
        self.actual: Table | None = None  # None until the first successful read
        # The services this daemon manages (the state DB's, at start): the desired ones plus
        # removed ones not yet confirmed gone from the kernel.
        self.managed: set[ServiceKey] = set(managed)
        self._added: set[ServiceKey] = set()  # changes of `managed` not yet persisted
        self._removed: set[ServiceKey] = set()
        self.calls = 0  # backend calls that could change the table
        self.failures = 0
        # The failures of the current episode, each logged once: a failing kernel or ipvsadm
        # would otherwise log every op of every attempt (92 lines in 12 s for 4 pairs).
        self.reported: set[str] = set()

    async def read(self) -> Table:
        """Re-read the whole table (raises BackendError)."""
        self.actual = await self.backend.read()
        return self.actual

    def manage(self, keys: Iterable[ServiceKey]) -> frozenset[ServiceKey]:
        """Manage these (desired) services from now on; returns those not managed before, for
        the caller to persist before the kernel gets them (a crash then still deletes them)."""
        new = frozenset(k for k in keys if k not in self.managed)
        self.managed.update(new)
        return new

    def managed_changes(self) -> tuple[frozenset[ServiceKey], frozenset[ServiceKey]]:
        """The managed set's changes since the last call that `manage` did not return: services
        added by a convergence, and removed ones confirmed gone from the kernel (to persist)."""
        added, removed = frozenset(self._added), frozenset(self._removed)
        self._added.clear()
        self._removed.clear()
        return added, removed

    async def converge(
        self,
        desired: Table,
        keys: Collection[ServiceKey] | None = None,
        *,
        reason: str = "",
    ) -> SyncOutcome:
        """Apply what it takes to make `keys` (default: all managed) of the kernel equal `desired`.

        The desired services are managed from now on; removed ones are forgotten once the
        kernel no longer has them. On any error the table is re-read and the diff applied once
        more; what still fails is reported (and corrected by the next resync).
        """
        added = self.manage(desired.services)
        self._added.update(added)
        self._removed.difference_update(added)
        try:
            return await self._converge(desired, keys, reason)
        finally:
            self._confirm_absent(desired)

    def _confirm_absent(self, desired: Table) -> None:
        """Forget the removed services the kernel no longer has."""
        if self.actual is None:
            return
        actual = self.actual.services
        gone = {k for k in self.managed if k not in desired.services and k not in actual}
        if gone:
            self.managed -= gone
            self._removed |= gone
            self._added -= gone

    async def _converge(
        self, desired: Table, keys: Collection[ServiceKey] | None, reason: str
    ) -> SyncOutcome:
        if self.actual is None:
            try:
                await self.read()
            except BackendError as exc:
                return self._failed(exc)
        outcome = await self._converge_once(desired, keys, reason)
        if outcome.ok or self.stopping():
            return outcome
        try:
            await self.read()
        except BackendError as exc:
            return self._failed(exc, outcome.ops)
        retry = await self._converge_once(desired, keys, reason + " (after re-read)")
        return SyncOutcome(outcome.ops + retry.ops, retry.errors, retry.backend_failure)

    async def _converge_once(
        self, desired: Table, keys: Collection[ServiceKey] | None, reason: str
    ) -> SyncOutcome:
        assert self.actual is not None
        if keys is None:
            ops = reconcile(desired, self.actual, self.managed)
        else:
            scope = set(keys)
            ops = reconcile(
                restrict(desired, scope),
                restrict(self.actual, scope),
                [k for k in scope if k in self.managed],
            )
        if not ops:
            self._recovered(keys)
            return SyncOutcome()
        if self.stopping():
            log.info("kernel: %d operation(s) not applied: the daemon is stopping", len(ops))
            return SyncOutcome()
        for op in ops:
            # Removals are always logged: they are how unknown destinations leave a managed VS.
            level = logging.INFO if isinstance(op, DeleteDestination | DeleteService) else KERNEL_OP
            log.log(level, "kernel: %s%s", describe_op(op), f" [{reason}]" if reason else "")
        self.calls += 1
        try:
            result: ApplyResult = await self.backend.apply(ops)
        except BackendError as exc:
            return self._failed(exc, tuple(ops))
        if result.ok:
            self.actual = accepted(self.actual, ops)
            self._recovered(keys)
            return SyncOutcome(tuple(ops))
        self.failures += 1
        errors = tuple(
            f"{describe_op(e.op) if e.op is not None else 'batch'}: {e.message}"
            for e in result.errors
        )
        for text in errors:
            self._report(logging.WARNING, f"kernel operation failed: {text}")
        return SyncOutcome(tuple(ops), errors)

    def _failed(self, exc: BackendError, ops: tuple[Op, ...] = ()) -> SyncOutcome:
        self.failures += 1
        self._report(
            logging.ERROR,
            f"kernel backend {self.backend.name} failed ({exc.kind.value}): {exc}",
        )
        return SyncOutcome(ops, (f"{exc.kind.value}: {exc.message}",), exc.kind)

    def _report(self, level: int, text: str) -> None:
        """Log a failure once per episode (until a convergence succeeds)."""
        if text in self.reported:
            log.debug("%s (again)", text)
            return
        self.reported.add(text)
        log.log(level, "%s", text)

    def _recovered(self, keys: Collection[ServiceKey] | None) -> None:
        """A whole-table convergence succeeded: the failure episode (if any) is over."""
        if keys is None and self.reported:
            log.info("kernel: operations succeed again (%d failure(s) ended)", len(self.reported))
            self.reported.clear()
