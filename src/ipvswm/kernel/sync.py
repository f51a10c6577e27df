"""Keeps the kernel equal to the desired table: cached actual table, diff, apply, resync."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from ipvswm.kernel.backend import ApplyResult, BackendError, FailureKind, KernelBackend
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.simulate import KernelRefused, apply_ops
from ipvswm.kernel.table import (
    AddDestination,
    AddService,
    DeleteDestination,
    DeleteService,
    EditDestination,
    EditService,
    Op,
    ServiceKey,
    Table,
)
from ipvswm.logs import KERNEL_OP

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
    """Owns the cached actual table; only the daemon's kernel applier calls it.

    `stopping` is checked before every apply: once the daemon stops, no operation is begun
    (SPEC §6); what was decided stays in the state DB and is applied at the next start.
    """

    def __init__(
        self, backend: KernelBackend, stopping: Callable[[], bool] = lambda: False
    ) -> None:
        self.backend = backend
        self.stopping = stopping
        self.actual: Table | None = None  # None until the first successful read
        self.calls = 0  # backend calls that could change the table
        self.failures = 0
        # The failures of the current episode, each logged once: a failing kernel or ipvsadm
        # would otherwise log every op of every attempt (92 lines in 12 s for 4 pairs).
        self.reported: set[str] = set()

    async def read(self) -> Table:
        """Re-read the whole table (raises BackendError)."""
        self.actual = await self.backend.read()
        return self.actual

    async def converge(
        self,
        desired: Table,
        managed: Collection[ServiceKey],
        keys: Collection[ServiceKey] | None = None,
        *,
        reason: str = "",
    ) -> SyncOutcome:
        """Apply what it takes to make `keys` (default: all managed) of the kernel equal `desired`.

        On any error the table is re-read and the diff applied once more; what still fails is
        reported (and corrected by the next resync).
        """
        if self.actual is None:
            try:
                await self.read()
            except BackendError as exc:
                return self._failed(exc)
        outcome = await self._converge_once(desired, managed, keys, reason)
        if outcome.ok or self.stopping():
            return outcome
        try:
            await self.read()
        except BackendError as exc:
            return self._failed(exc, outcome.ops)
        retry = await self._converge_once(desired, managed, keys, reason + " (after re-read)")
        return SyncOutcome(outcome.ops + retry.ops, retry.errors, retry.backend_failure)

    async def _converge_once(
        self,
        desired: Table,
        managed: Collection[ServiceKey],
        keys: Collection[ServiceKey] | None,
        reason: str,
    ) -> SyncOutcome:
        assert self.actual is not None
        if keys is None:
            ops = reconcile(desired, self.actual, managed)
        else:
            scope = set(keys)
            ops = reconcile(
                restrict(desired, scope),
                restrict(self.actual, scope),
                [k for k in managed if k in scope],
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
            try:
                self.actual = apply_ops(self.actual, ops)
            except KernelRefused:
                # The kernel took what the model would refuse (a scheduler this code does not
                # list, say): the kernel is right, so read what it holds.
                try:
                    await self.read()
                except BackendError as exc:
                    return self._failed(exc, tuple(ops))
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
