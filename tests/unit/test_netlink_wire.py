"""The hand-built netlink wire format: bytes equal pyroute2's, decoding agrees, batched ACKs."""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

import pytest
from pyroute2.netlink.generic import ipvs

from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.netlink import _apply_ops
from ipvswm.kernel.netlink_wire import CMD_ATTR_DEST
from ipvswm.kernel.netlink_wire import CMD_ATTR_SERVICE
from ipvswm.kernel.netlink_wire import NLMSG_ERROR
from ipvswm.kernel.netlink_wire import Wire
from ipvswm.kernel.netlink_wire import decode_dest
from ipvswm.kernel.netlink_wire import decode_service
from ipvswm.kernel.netlink_wire import messages
from ipvswm.kernel.netlink_wire import nlas
from ipvswm.kernel.netlink_wire import op_message_bytes
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceKey
from tests.support.netlink_reference import KERNEL_DEST_RECORD
from tests.support.netlink_reference import op_message
from tests.support.netlink_reference import parse_dest
from tests.support.netlink_reference import parse_service

VIP = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
VIP6 = ServiceKey(Protocol.UDP, "2001:db8::1", 53)
MARK = ServiceKey(Protocol.FWMARK, "0.0.0.0", 42)
MARK6 = ServiceKey(Protocol.FWMARK, "::", 7)
SCTP = ServiceKey(Protocol.SCTP, "192.0.2.2", 9)
RS = DestKey("127.0.0.2", 8080)
SERVICES = [
    Service(VIP, "wrr"),
    Service(VIP, "wlc", persistent=300, netmask="255.255.255.0", pe="sip"),
    Service(VIP6, "rr", persistent=60, netmask="64", one_packet=True),
    Service(MARK, "sh", flags=("sh-fallback", "sh-port")),
    Service(MARK6, "mh", flags=("mh-port",)),
    Service(SCTP, "wrr", persistent=10),
]
DESTS = [
    (VIP, Destination(RS, Forward.MASQ, 5, upper=100, lower=10)),
    (VIP, Destination(RS, Forward.ROUTE, 0)),
    (VIP, Destination(RS, Forward.TUNNEL, 65535)),
    (VIP, Destination(RS, Forward.TUNNEL, 3, tun_type="gue", tun_port=6080)),
    (VIP, Destination(RS, Forward.TUNNEL, 3, tun_type="gre")),
    (VIP, Destination(DestKey("2001:db8::9", 0), Forward.TUNNEL, 1)),
    (VIP6, Destination(DestKey("2001:db8::10", 53), Forward.MASQ, 2)),
]
OPS: list[Op] = [
    *(AddService(s) for s in SERVICES),
    *(EditService(s) for s in SERVICES),
    *(DeleteService(s.key) for s in SERVICES),
    *(AddDestination(k, d) for k, d in DESTS),
    *(EditDestination(k, d) for k, d in DESTS),
    *(DeleteDestination(k, d.key) for k, d in DESTS),
]


def pyroute2_bytes(op: Op, seq: int) -> bytes:
    msg = op_message(op)
    msg["header"]["type"] = 0x1E
    msg["header"]["flags"] = 5  # NLM_F_REQUEST | NLM_F_ACK
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


@pytest.mark.parametrize("op", OPS, ids=repr)
def test_the_bytes_are_pyroute2s(op: Op) -> None:
    assert op_message_bytes(op, 0x1E, 77) == pyroute2_bytes(op, 77)


def decoded(op: Op) -> tuple[Any, dict[int, memoryview]]:
    """The op's message decoded by pyroute2, and its attributes split by the fast decoder."""
    data = pyroute2_bytes(op, 1)
    msg = ipvs.ipvsmsg(data)
    msg.decode()
    ((_kind, _seq, payload),) = list(messages(memoryview(data)))
    return msg, nlas(payload[4:])


@pytest.mark.parametrize("service", SERVICES, ids=repr)
def test_the_service_decoder_agrees_with_pyroute2(service: Service) -> None:
    msg, attrs = decoded(AddService(service))
    expected = parse_service(msg.get_attr("IPVS_CMD_ATTR_SERVICE"))
    assert decode_service(attrs[CMD_ATTR_SERVICE]) == expected == service


@pytest.mark.parametrize(("key", "dest"), DESTS, ids=repr)
def test_the_dest_decoder_agrees_with_pyroute2(key: ServiceKey, dest: Destination) -> None:
    msg, attrs = decoded(AddDestination(key, dest))
    family = socket.AF_INET6 if key.ipv6 else socket.AF_INET
    expected = parse_dest(msg.get_attr("IPVS_CMD_ATTR_DEST"), family)
    assert decode_dest(attrs[CMD_ATTR_DEST], family) == expected == dest


def test_a_kernel_dump_dest_with_counters_and_no_family() -> None:
    parsed = decode_dest(memoryview(KERNEL_DEST_RECORD), socket.AF_INET)
    assert parsed == Destination(DestKey("10.0.0.1", 80), Forward.TUNNEL, 7)
    assert (parsed.active, parsed.inactive) == (11, 12)


class FakeKernel:
    """A netlink socket that ACKs each request of a sent buffer, refusing the listed seqs.

    It answers a buffer in receives of `per_recv` ACKs, so ACKs span several recv calls.
    """

    def __init__(self, refuse: dict[int, int], per_recv: int = 3) -> None:
        self.refuse = refuse
        self.per_recv = per_recv
        self.sent: list[list[int]] = []
        self.queue: list[bytes] = []
        self.count = 0  # requests seen so far: `refuse` is keyed by this index

    def send(self, data: bytes) -> int:
        view = memoryview(data)
        seqs = [seq for _kind, seq, _payload in messages(view)]
        self.sent.append(seqs)
        for seq in seqs:
            code = self.refuse.get(self.count, 0)
            self.count += 1
            self.queue.append(
                struct.pack("=IHHII", 36, NLMSG_ERROR, 0, seq, 0)
                + struct.pack("=i", -code)
                + struct.pack("=IHHII", 0, 0, 0, seq, 0)
            )
        return len(data)

    def recv(self, _size: int) -> bytes:
        assert self.queue, "recv with nothing in flight would block"
        chunk, self.queue = self.queue[: self.per_recv], self.queue[self.per_recv :]
        return b"".join(chunk)


def test_requests_go_in_windows_and_every_ack_is_matched_to_its_op() -> None:
    fake = FakeKernel({3: errno.EEXIST})
    wire = Wire(fake, family=0x1E)  # type: ignore[arg-type]
    codes = wire.apply([(1, b"")] * 10, window=4)
    assert [len(x) for x in fake.sent] == [4, 4, 2]
    assert codes == [0, 0, 0, errno.EEXIST, 0, 0, 0, 0, 0, 0]


def test_an_error_in_the_middle_of_a_batch_names_that_op_and_the_rest_apply() -> None:
    ops: list[Op] = [AddService(Service(VIP, "wrr"))]
    ops += [AddDestination(VIP, Destination(DestKey(f"127.0.0.{i}", 80))) for i in range(2, 9)]
    ops.insert(3, AddDestination(VIP, Destination(DestKey("127.0.0.2", 80), weight=-1)))
    fake = FakeKernel({4: errno.EEXIST})  # the 5th sent request; the invalid op is never sent
    errors = _apply_ops(Wire(fake, family=0x1E), ops)  # type: ignore[arg-type]
    assert sum(len(x) for x in fake.sent) == len(ops) - 1
    assert [(e.op, e.kind) for e in errors] == [
        (ops[3], FailureKind.ARGUMENT),
        (ops[5], FailureKind.KERNEL),
    ]
    assert errors[1].message == "Destination already exists"
