"""The ipvsadm backend end to end against the emulator (or IPVSWM_TEST_IPVSADM, a real ipvsadm)."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from tests.support.emulator import Emulator

pytestmark = pytest.mark.integration

VIP = ServiceKey(Protocol.TCP, "192.0.2.10", 80)
VIP6 = ServiceKey(Protocol.TCP, "2001:db8::10", 443)
MARK = ServiceKey(Protocol.FWMARK, "0.0.0.0", 4242)
UDP = ServiceKey(Protocol.UDP, "192.0.2.11", 53)
OURS = (VIP, VIP6, MARK, UDP)
RS1 = DestKey("127.0.0.2", 8080)
RS2 = DestKey("127.0.0.3", 8080)
RS6 = DestKey("2001:db8::20", 8443)


@pytest.fixture
def emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    e = Emulator(tmp_path)
    for name, value in e.env.items():
        monkeypatch.setenv(name, value)  # the backend passes its environment on
    yield e
    if e.real:  # leave a real table as we found it: only our 192.0.2.0/24 / 2001:db8:: services
        for key in OURS:
            e.run("-D", *_spec(key))


def _spec(key: ServiceKey) -> list[str]:
    if key.protocol is Protocol.FWMARK:
        return ["-f", str(key.port)]
    addr = f"[{key.address}]" if key.ipv6 else key.address
    return ["-t" if key.protocol is Protocol.TCP else "-u", f"{addr}:{key.port}"]


def ours(table: Table) -> Table:
    return Table({k: v for k, v in table.services.items() if k in OURS})


def desired(weight: int = 5) -> Table:
    return Table(
        {
            VIP: ServiceEntry(
                Service(VIP, "wrr"),
                {
                    RS1: Destination(RS1, Forward.MASQ, weight),
                    RS2: Destination(RS2, Forward.MASQ, 0, upper=100, lower=10),
                },
            ),
            VIP6: ServiceEntry(
                Service(VIP6, "wlc", persistent=600, netmask="64"),
                {RS6: Destination(RS6, Forward.MASQ, 3)},
            ),
            MARK: ServiceEntry(
                Service(MARK, "sh", flags=("sh-fallback", "sh-port")),
                {DestKey("127.0.0.4", 0): Destination(DestKey("127.0.0.4", 0), Forward.ROUTE, 2)},
            ),
            UDP: ServiceEntry(Service(UDP, "rr", one_packet=True), {}),
        }
    )


async def test_add_edit_and_read_back(emu: Emulator) -> None:
    backend = IpvsadmBackend(emu.binary)
    actual = ours(await backend.read())
    assert actual == Table()
    ops = reconcile(desired(), actual, OURS)
    result = await backend.apply(ops)
    assert result.ok, result.errors
    assert result.ops == len(ops)
    after = ours(await backend.read())
    assert after == desired()
    assert reconcile(desired(), after, OURS) == []
    # A weight change is one -e line with the full option set.
    if not emu.real:
        emu.clear_log()
    ops = reconcile(desired(weight=9), after, OURS)
    assert ops == [EditDestination(VIP, Destination(RS1, Forward.MASQ, 9))]
    assert (await backend.apply(ops)).ok
    assert ours(await backend.read()) == desired(weight=9)
    if not emu.real:
        batch = emu.changing_invocations()
        assert len(batch) == 1
        assert batch[0].stdin == "-e -t 192.0.2.10:80 -r 127.0.0.2:8080 -m -w 9\n"


async def test_connection_counts_are_read(emu: Emulator) -> None:
    emu.require_emulator()
    backend = IpvsadmBackend(emu.binary)
    assert (await backend.apply(reconcile(desired(), Table(), OURS))).ok
    emu.set_connections(str(VIP), str(RS1), 7, 42)
    dest = (await backend.read()).destination(VIP, RS1)
    assert dest is not None
    assert (dest.active, dest.inactive, dest.weight) == (7, 42, 5)


async def test_a_refused_line_is_reported_with_its_op_and_the_rest_applied(emu: Emulator) -> None:
    backend = IpvsadmBackend(emu.binary)
    assert (await backend.apply([AddService(Service(VIP, "wrr"))])).ok
    bad = EditDestination(VIP, Destination(RS2, Forward.MASQ, 4))  # no such destination
    good = AddDestination(VIP, Destination(RS1, Forward.MASQ, 3))
    refused_service = EditService(Service(UDP, "rr"))  # no such service
    last = AddService(Service(MARK, "rr"))
    result = await backend.apply([bad, good, refused_service, last])
    assert result.must_resync
    assert [(e.op, e.kind, e.message) for e in result.errors] == [
        (bad, FailureKind.KERNEL, "No such destination"),
        (refused_service, FailureKind.KERNEL, "No such service"),
    ]
    truth = ours(await backend.read())
    assert set(truth.services) == {VIP, MARK}
    assert truth.services[VIP].destinations == {RS1: Destination(RS1, Forward.MASQ, 3)}


async def test_invalid_op_is_not_sent_and_does_not_abort_the_batch(emu: Emulator) -> None:
    backend = IpvsadmBackend(emu.binary)
    too_heavy = AddDestination(VIP, Destination(RS1, Forward.MASQ, 70000))
    result = await backend.apply([AddService(Service(VIP, "wrr")), too_heavy, DeleteService(VIP)])
    assert [(e.op, e.kind) for e in result.errors] == [(too_heavy, FailureKind.ARGUMENT)]
    assert VIP not in (await backend.read()).services


async def test_missing_or_non_executable_binary(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as info:
        await IpvsadmBackend(str(tmp_path / "nope")).read()
    assert info.value.kind is FailureKind.MISSING
    plain = tmp_path / "ipvsadm"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(BackendError) as info:
        await IpvsadmBackend(str(plain)).apply([DeleteService(VIP)])
    assert info.value.kind is FailureKind.MISSING


async def test_no_ipvs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = Emulator(tmp_path, no_ipvs=True)
    emu.require_emulator()
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    backend = IpvsadmBackend(emu.binary)
    for call in (backend.read(), backend.apply([DeleteService(VIP)])):
        with pytest.raises(BackendError) as info:
            await call
        assert info.value.kind is FailureKind.NO_IPVS
        assert "Can't initialize ipvs" in info.value.message


async def test_a_hung_binary_is_killed_after_the_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleeper.pid"
    script = tmp_path / "ipvsadm"
    # The sleep is a grandchild that holds the pipes: the whole group must die.
    script.write_text(f"#!/bin/sh\nsleep 60 &\necho $! > {pidfile}\nwait\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    backend = IpvsadmBackend(str(script), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        await backend.apply([DeleteService(VIP)])
    assert info.value.kind is FailureKind.TIMEOUT
    assert time.monotonic() - started < 5
    sleeper = int(pidfile.read_text())
    for _ in range(200):
        if not _alive(sleeper):
            break
        await asyncio.sleep(0.01)
    assert not _alive(sleeper), "the sleeping grandchild survived"


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for a reaper does not count)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
