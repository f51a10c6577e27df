"""The dry-run backend (simulated kernel, logged ops) and the backend factory."""

from __future__ import annotations

import logging

import pytest

from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.backends import make_backend
from ipvswm.kernel.dryrun import DryRunBackend
from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.netlink import NetlinkBackend
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.simulate import KernelRefused
from ipvswm.kernel.simulate import apply_ops
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

VIP = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
RS = DestKey("127.0.0.2", 80)
DESIRED = Table({VIP: ServiceEntry(Service(VIP, "wrr"), {RS: Destination(RS, Forward.MASQ, 10)})})


async def test_dry_run_applies_and_logs_ipvsadm_lines(caplog: pytest.LogCaptureFixture) -> None:
    backend = DryRunBackend()
    caplog.set_level(logging.INFO, logger="ipvswm.kernel.dryrun")
    result = await backend.apply(reconcile(DESIRED, await backend.read(), []))
    assert result.ok
    assert await backend.read() == DESIRED
    assert [r.getMessage() for r in caplog.records] == [
        "dry-run: -A -t 192.0.2.1:80 -s wrr",
        "dry-run: -a -t 192.0.2.1:80 -r 127.0.0.2:80 -m -w 10",
    ]


async def test_dry_run_reports_what_the_kernel_would_refuse() -> None:
    backend = DryRunBackend(DESIRED)
    missing = EditDestination(VIP, Destination(DestKey("127.0.0.9", 80)))
    twice = AddService(Service(VIP))
    result = await backend.apply([missing, twice, DeleteDestination(VIP, RS)])
    assert [(e.op, e.kind, e.message) for e in result.errors] == [
        (missing, FailureKind.KERNEL, "No such destination"),
        (twice, FailureKind.KERNEL, "Service already exists"),
    ]
    assert result.must_resync
    assert (await backend.read()).services[VIP].destinations == {}


async def test_dry_run_edit_keeps_connection_counts() -> None:
    busy = Destination(RS, Forward.MASQ, 10, active=5, inactive=6)
    backend = DryRunBackend(Table({VIP: ServiceEntry(Service(VIP), {RS: busy})}))
    await backend.apply([EditDestination(VIP, Destination(RS, Forward.MASQ, 1))])
    dest = (await backend.read()).destination(VIP, RS)
    assert dest is not None
    assert (dest.weight, dest.active, dest.inactive) == (1, 5, 6)


def test_simulator_refuses_like_the_kernel() -> None:
    with pytest.raises(KernelRefused, match="Service not defined"):
        apply_ops(Table(), [AddDestination(VIP, Destination(RS))])
    with pytest.raises(KernelRefused, match="Numerical result out of range"):
        apply_ops(DESIRED, [EditDestination(VIP, Destination(RS, lower=5))])
    with pytest.raises(KernelRefused, match="Scheduler or persistence engine not found"):
        apply_ops(Table(), [AddService(Service(VIP, "nope"))])


def test_make_backend() -> None:
    ipvsadm = make_backend("ipvsadm", "/sbin/ipvsadm")
    assert isinstance(ipvsadm, IpvsadmBackend)
    assert ipvsadm.binary == "/sbin/ipvsadm"
    assert isinstance(make_backend("netlink", "/sbin/ipvsadm"), NetlinkBackend)
    assert isinstance(make_backend("dry-run", "/sbin/ipvsadm"), DryRunBackend)
    assert {make_backend(n, "x").name for n in ("ipvsadm", "netlink", "dry-run")} == {
        "ipvsadm",
        "netlink",
        "dry-run",
    }
    with pytest.raises(ValueError, match="unknown IPVS backend"):
        make_backend("iptables", "x")
