"""The kernel sync's managed set: the desired services plus removed ones until the kernel no
longer has them (persisted by the owner, so a VS removed by a reload is deleted after a restart)."""

from __future__ import annotations

from collections.abc import Sequence

from ipvswm.kernel.backend import ApplyResult
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.sync import accepted
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

WEB = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
GONE = ServiceKey(Protocol.TCP, "192.0.2.77", 80)
D1 = DestKey("198.51.100.1", 80)


class Backend:
    """A kernel that accepts everything (and a scheduler no model lists)."""

    name = "fake"

    def __init__(self, table: Table) -> None:
        self.table = table
        self.applied: list[Sequence[Op]] = []

    async def read(self) -> Table:
        return self.table

    async def apply(self, ops: Sequence[Op]) -> ApplyResult:
        self.applied.append(ops)
        self.table = accepted(self.table, ops)
        return ApplyResult(len(ops))


def _entry(key: ServiceKey, weight: int | None = None, scheduler: str = "wrr") -> ServiceEntry:
    dests = {} if weight is None else {D1: Destination(D1, weight=weight)}
    return ServiceEntry(Service(key, scheduler=scheduler), dests)


async def test_a_removed_service_of_the_state_db_is_deleted_then_forgotten() -> None:
    backend = Backend(Table({WEB: _entry(WEB, 5), GONE: _entry(GONE, 3)}))
    sync = KernelSync(backend, managed={GONE})  # type: ignore[arg-type]
    assert sync.manage({WEB}) == {WEB}  # the owner persists it before the kernel gets it
    outcome = await sync.converge(Table({WEB: _entry(WEB, 5)}))
    assert [type(op) for op in outcome.ops] == [DeleteService]
    assert sync.managed == {WEB}
    assert sync.managed_changes() == (frozenset(), frozenset({GONE}))  # to persist, once
    assert sync.managed_changes() == (frozenset(), frozenset())


async def test_a_removed_service_the_kernel_still_has_stays_managed() -> None:
    backend = Backend(Table({GONE: _entry(GONE, 3)}))
    sync = KernelSync(backend, managed={GONE}, stopping=lambda: True)  # type: ignore[arg-type]
    await sync.converge(Table())  # stopping: nothing applied, the kernel still has it
    assert sync.managed == {GONE}
    assert sync.managed_changes() == (frozenset(), frozenset())


async def test_desired_services_not_yet_managed_are_booked_by_the_convergence() -> None:
    sync = KernelSync(Backend(Table()))  # type: ignore[arg-type]
    await sync.converge(Table({WEB: _entry(WEB, 5)}))
    assert sync.managed_changes() == (frozenset({WEB}), frozenset())


def test_the_actual_table_follows_accepted_ops_without_validating_them() -> None:
    table = Table({WEB: _entry(WEB, 5)})
    busy = Destination(D1, weight=5, active=3, inactive=4)
    table = Table({WEB: ServiceEntry(table.services[WEB].service, {D1: busy})})
    ops: list[Op] = [
        EditDestination(WEB, Destination(D1, weight=9)),
        EditService(Service(WEB, scheduler="twos")),  # a scheduler of a newer kernel
        AddService(Service(GONE)),
        AddDestination(GONE, Destination(D1, weight=1, active=8)),
    ]
    after = accepted(table, ops)
    assert after.services[WEB].service.scheduler == "twos"
    assert after.services[WEB].destinations[D1] == Destination(D1, weight=9, active=3, inactive=4)
    assert after.services[GONE].destinations[D1] == Destination(D1, weight=1)
    assert table.services[WEB].destinations[D1] is busy  # the old table is not changed
    assert accepted(after, [DeleteService(GONE)]).services.keys() == {WEB}
