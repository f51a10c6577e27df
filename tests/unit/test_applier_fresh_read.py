"""The kernel applier's fresh reads for `wait` (issue 11): a destination its resync re-adds gets
the kernel's trash counters back, so the waiters are told only after a read that shows them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import replace

from ipvswm.daemon.applier import READS_AFTER_ADD
from ipvswm.daemon.applier import KernelApplier
from ipvswm.kernel.backend import ApplyResult
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.sync import SyncOutcome
from ipvswm.kernel.sync import accepted
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

WEB = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
D1 = DestKey("198.51.100.1", 80)
DESIRED = Table({WEB: ServiceEntry(Service(WEB, "wrr"), {D1: Destination(D1, weight=10)})})


class TrashKernel:
    """A kernel whose D1 was deleted with 3 active connections: a re-add brings them back.

    With `lose` it deletes D1 again before every read (someone keeps removing it)."""

    name = "fake"

    def __init__(self, lose: bool = False) -> None:
        self.table = Table({WEB: ServiceEntry(Service(WEB, "wrr"), {})})
        self.lose = lose
        self.reads = 0

    async def read(self) -> Table:
        self.reads += 1
        if self.lose:
            self.table = Table({WEB: ServiceEntry(Service(WEB, "wrr"), {})})
        return self.table

    async def apply(self, ops: Sequence[Op]) -> ApplyResult:
        self.table = accepted(self.table, ops)
        entry = self.table.services[WEB]
        if any(isinstance(op, AddDestination) for op in ops):
            back = replace(entry.destinations[D1], active=3)
            self.table = Table({WEB: ServiceEntry(entry.service, {D1: back})})
        return ApplyResult(len(ops))


class Host:
    def plan(self) -> Table:
        return DESIRED

    def booked(self, outcome: SyncOutcome) -> None:
        pass

    async def resynced(self, failure: FailureKind | None) -> None:
        pass

    def applied(self) -> None:
        pass


async def _wait_once(kernel: TrashKernel) -> tuple[bool, KernelSync]:
    sync = KernelSync(kernel, managed=[WEB])
    await sync.read()
    stopping = False
    applier = KernelApplier(sync, Host(), lambda: stopping)
    applier.start()
    waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    applier.ask(waiters=[waiter], oldest_wait=time.monotonic())
    fresh = await asyncio.wait_for(waiter, 5)
    stopping = True
    await applier.close()
    return fresh, sync


def test_a_wait_sees_the_counters_of_a_destination_its_read_re_added() -> None:
    kernel = TrashKernel()
    fresh, sync = asyncio.run(_wait_once(kernel))
    assert fresh
    assert sync.actual is not None
    assert sync.actual.services[WEB].destinations[D1].active == 3  # read, not assumed 0
    assert kernel.reads == 1 + 2  # the start's read, the wait's, the one after the re-add


def test_a_destination_re_added_on_every_read_is_no_fresh_read() -> None:
    kernel = TrashKernel(lose=True)
    fresh, _ = asyncio.run(_wait_once(kernel))
    assert not fresh  # the wait looks again later instead of trusting an add
    assert kernel.reads == 1 + 1 + READS_AFTER_ADD
