"""What the kernel refuses (or accepts beyond the model) never kills the daemon, and is logged once
per episode; both backends validate alike (issue 10 item 6, issue 11 §3)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from ipvswm.config.parser import parse_text
from ipvswm.kernel.backend import ApplyResult
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.ipvsadm_format import OTHER_FAMILY
from ipvswm.kernel.ipvsadm_format import validate_op
from ipvswm.kernel.netlink import _apply_ops
from ipvswm.kernel.sync import KernelSync
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

VS = ServiceKey(Protocol.TCP, "192.0.2.10", 80)


class KernelBackend:
    """A kernel that accepts every op (any scheduler name) and holds what it was given."""

    name = "fake"

    def __init__(self) -> None:
        self.table = Table({})
        self.fail: BackendError | None = None

    async def read(self) -> Table:
        if self.fail:
            raise self.fail
        return self.table

    async def apply(self, ops: Sequence[Op]) -> ApplyResult:
        if self.fail:
            raise self.fail
        services = dict(self.table.services)
        for op in ops:
            assert isinstance(op, AddService)
            services[op.service.key] = ServiceEntry(op.service, {})
        self.table = Table(services)
        return ApplyResult(len(ops))


def desired(scheduler: str) -> Table:
    return Table({VS: ServiceEntry(Service(VS, scheduler=scheduler), {})})


async def test_a_scheduler_the_model_does_not_list_is_taken_from_the_kernel() -> None:
    backend = KernelBackend()
    sync = KernelSync(backend)  # type: ignore[arg-type]
    outcome = await sync.converge(desired("twos"))  # raised KernelRefused before
    assert outcome.ok
    assert sync.actual == backend.table
    assert (await sync.converge(desired("twos"))).ops == ()


async def test_a_failing_backend_is_logged_once_per_episode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = KernelBackend()
    backend.fail = BackendError(FailureKind.OTHER, "ipvsadm: exit 2")
    sync = KernelSync(backend)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, "ipvswm.kernel.sync"):
        for _ in range(10):
            assert not (await sync.converge(desired("wrr"))).ok
        assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [
            logging.ERROR
        ]
        backend.fail = None
        assert (await sync.converge(desired("wrr"))).ok
        assert "operations succeed again" in caplog.records[-1].getMessage()
        backend.fail = BackendError(FailureKind.OTHER, "ipvsadm: exit 2")
        await sync.converge(desired("rr"))
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == [
        logging.ERROR,
        logging.ERROR,
    ]


def test_check_config_warns_about_an_unknown_scheduler(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "ipvswm.config.parser"):
        result = parse_text(
            "! www 192.0.2.1:80 / scheduler=bogus\nweb1 192.0.2.10 www=1\n", "t.conf"
        )
    assert result.config is not None
    assert any(
        "scheduler 'bogus' is not one this version knows" in r.getMessage() for r in caplog.records
    )


def test_another_family_is_refused_except_for_tunnels() -> None:
    v6 = Destination(DestKey("2001:db8::5", 80), Forward.MASQ, weight=1)
    assert validate_op(AddDestination(VS, v6)) == OTHER_FAMILY
    tun = Destination(DestKey("2001:db8::5", 80), Forward.TUNNEL, weight=1)
    assert validate_op(AddDestination(VS, tun)) is None


class RecordingWire:
    """Stands in for `netlink_wire.Wire`: records the requests; the kernel accepts them all."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def apply(self, requests: Sequence[tuple[int, bytes]]) -> list[int]:
        self.sent += requests
        return [0] * len(requests)


def test_netlink_validates_like_ipvsadm() -> None:
    sock = RecordingWire()
    heavy = Destination(DestKey("198.51.100.2", 80), Forward.MASQ, weight=70000)
    v6 = Destination(DestKey("2001:db8::5", 80), Forward.MASQ, weight=1)
    good = Destination(DestKey("198.51.100.3", 80), Forward.MASQ, weight=5)
    errors = _apply_ops(
        sock, [AddDestination(VS, heavy), AddDestination(VS, v6), AddDestination(VS, good)]
    )
    assert [(e.kind, e.message) for e in errors] == [
        (FailureKind.ARGUMENT, "illegal weight specified"),
        (FailureKind.ARGUMENT, OTHER_FAMILY),
    ]
    assert len(sock.sent) == 1  # only the valid op reached the kernel


def test_check_config_warns_that_dr_and_tun_ignore_a_real_server_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = (
        "! www 192.0.2.1:80:8080 / method=dr\n"
        "! tunnel 192.0.2.2:80 / method=tun\n"
        "! nat 192.0.2.3:80:8080 /\n"
        "web1 192.0.2.10 www=1\n"
        "web2 192.0.2.11:8081 tunnel=1 nat=1\n"
        "web3 192.0.2.12:80 tunnel=1\n"
    )
    with caplog.at_level(logging.WARNING, "ipvswm.config.parser"):
        result = parse_text(text, "t.conf")
    assert result.config is not None
    assert [r.getMessage() for r in caplog.records] == [
        "t.conf:1: virtual service 'www': real-server port 8080 is ignored with method=dr "
        "(the kernel keeps the VS port 80)",
        "t.conf:5: host 'web2': port 8081 is ignored on virtual service 'tunnel' with method=tun "
        "(the kernel keeps the VS port 80)",
    ]
