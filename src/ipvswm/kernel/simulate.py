"""A pure IPVS table simulator with the kernel's semantics, for tests and the dry-run backend."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import replace

from ipvswm.kernel.backend import DEST_EXISTS
from ipvswm.kernel.backend import NO_SCHEDULER
from ipvswm.kernel.backend import NO_SUCH_DEST
from ipvswm.kernel.backend import NO_SUCH_SERVICE
from ipvswm.kernel.backend import OUT_OF_RANGE
from ipvswm.kernel.backend import SERVICE_EXISTS
from ipvswm.kernel.backend import SERVICE_NOT_DEFINED
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

# The schedulers and persistence engines a stock kernel knows (the kernel validates them).
SCHEDULERS = frozenset(
    {"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"}
)
PERSISTENCE_ENGINES = frozenset({"sip"})


class KernelRefused(Exception):
    """An op the kernel would refuse, with ipvsadm's message for it."""

    def __init__(self, op: Op, message: str) -> None:
        super().__init__(f"{message}: {op!r}")
        self.op = op
        self.message = message


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused op in a simulated batch."""

    op: Op
    message: str


def _check_service(service: Service) -> str | None:
    if service.scheduler not in SCHEDULERS:
        return NO_SCHEDULER
    pe = service.pe if service.persistent is not None else None
    if pe is not None and pe not in PERSISTENCE_ENGINES:
        return NO_SCHEDULER
    return None


def _check_thresholds(dest: Destination) -> str | None:
    # The kernel compares the raw values: a lower threshold with no upper one is out of range too.
    return OUT_OF_RANGE if dest.lower > dest.upper else None


class _Working:
    """A mutable copy of a table that ops are applied to one by one."""

    def __init__(self, table: Table) -> None:
        self.services: dict[ServiceKey, Service] = {}
        self.dests: dict[ServiceKey, dict[DestKey, Destination]] = {}
        for key, entry in table.services.items():
            self.services[key] = entry.service
            self.dests[key] = dict(entry.destinations)

    def apply(self, op: Op) -> str | None:
        """Apply one op; return the kernel's refusal message instead when it would refuse."""
        match op:
            case AddService(service=s):
                if s.key in self.services:
                    return SERVICE_EXISTS
                if (error := _check_service(s)) is not None:
                    return error
                self.services[s.key] = s
                self.dests[s.key] = {}
            case EditService(service=s):
                if s.key not in self.services:
                    return NO_SUCH_SERVICE
                if (error := _check_service(s)) is not None:
                    return error
                self.services[s.key] = s
            case DeleteService(key=k):
                if k not in self.services:
                    return NO_SUCH_SERVICE
                del self.services[k]
                del self.dests[k]
            case AddDestination(service=k, destination=d):
                dests = self.dests.get(k)
                if dests is None:
                    return SERVICE_NOT_DEFINED
                if (error := _check_thresholds(d)) is not None:
                    return error
                if d.key in dests:
                    return DEST_EXISTS
                dests[d.key] = replace(d, active=0, inactive=0)
            case EditDestination(service=k, destination=d):
                dests = self.dests.get(k)
                if dests is None:
                    return SERVICE_NOT_DEFINED
                if (error := _check_thresholds(d)) is not None:
                    return error
                old = dests.get(d.key)
                if old is None:
                    return NO_SUCH_DEST
                dests[d.key] = replace(d, active=old.active, inactive=old.inactive)
            case DeleteDestination(service=k, key=dk):
                dests = self.dests.get(k)
                if dests is None:
                    return SERVICE_NOT_DEFINED
                if dk not in dests:
                    return NO_SUCH_DEST
                del dests[dk]
        return None

    def table(self) -> Table:
        return Table({k: ServiceEntry(s, self.dests[k]) for k, s in self.services.items()})


def apply_ops_report(table: Table, ops: Iterable[Op]) -> tuple[Table, list[Refusal]]:
    """Apply ops like `ipvsadm -R` does: refused ops are skipped and reported, the rest applied."""
    work = _Working(table)
    refusals = [Refusal(op, msg) for op in ops if (msg := work.apply(op)) is not None]
    return work.table(), refusals


def apply_ops(table: Table, ops: Iterable[Op]) -> Table:
    """The table after applying ops. Raises KernelRefused at the first op the kernel refuses."""
    work = _Working(table)
    for op in ops:
        message = work.apply(op)
        if message is not None:
            raise KernelRefused(op, message)
    return work.table()
