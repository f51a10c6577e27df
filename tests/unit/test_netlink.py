"""The netlink backend's message building and parsing, offline (encode/decode round trips)."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from pyroute2.netlink.generic import ipvs

from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.backend import refusal_message
from ipvswm.kernel.netlink import NetlinkBackend
from ipvswm.kernel.netlink_wire import CMD_DEL_DEST
from ipvswm.kernel.netlink_wire import CMD_DEL_SERVICE
from ipvswm.kernel.netlink_wire import CMD_NEW_DEST
from ipvswm.kernel.netlink_wire import CMD_NEW_SERVICE
from ipvswm.kernel.netlink_wire import CMD_SET_DEST
from ipvswm.kernel.netlink_wire import CMD_SET_SERVICE
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
from tests.support.netlink_reference import raw_nla

VIP = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
VIP6 = ServiceKey(Protocol.UDP, "2001:db8::1", 53)
MARK = ServiceKey(Protocol.FWMARK, "0.0.0.0", 42)
RS = DestKey("127.0.0.2", 8080)


def round_trip(op: Op) -> Any:
    msg = op_message(op)
    msg["header"]["type"] = 0x1E  # any generic-netlink family id
    msg.encode()
    decoded = ipvs.ipvsmsg(msg.data)
    decoded.decode()
    return decoded


@pytest.mark.parametrize(
    "service",
    [
        Service(VIP, "wrr"),
        Service(VIP, "wlc", persistent=300, netmask="255.255.255.0", pe="sip"),
        Service(VIP6, "rr", persistent=60, netmask="64", one_packet=True),
        Service(MARK, "sh", flags=("sh-fallback", "sh-port")),
        Service(ServiceKey(Protocol.FWMARK, "::", 7), "mh", flags=("mh-port",)),
    ],
)
def test_service_round_trip(service: Service) -> None:
    for op, cmd in (
        (AddService(service), CMD_NEW_SERVICE),
        (EditService(service), CMD_SET_SERVICE),
    ):
        decoded = round_trip(op)
        assert decoded["cmd"] == cmd
        assert parse_service(decoded.get_attr("IPVS_CMD_ATTR_SERVICE")) == service


def test_edits_use_set_commands_never_delete() -> None:
    dest = Destination(RS, Forward.MASQ, 5)
    assert round_trip(EditService(Service(VIP)))["cmd"] == CMD_SET_SERVICE
    assert round_trip(EditDestination(VIP, dest))["cmd"] == CMD_SET_DEST
    assert round_trip(AddDestination(VIP, dest))["cmd"] == CMD_NEW_DEST
    assert round_trip(DeleteDestination(VIP, RS))["cmd"] == CMD_DEL_DEST
    assert round_trip(DeleteService(VIP))["cmd"] == CMD_DEL_SERVICE


@pytest.mark.parametrize(
    ("service", "dest"),
    [
        (VIP, Destination(RS, Forward.MASQ, 5, upper=100, lower=10)),
        (VIP, Destination(RS, Forward.ROUTE, 0)),
        (VIP, Destination(RS, Forward.TUNNEL, 65535)),
        (VIP, Destination(RS, Forward.TUNNEL, 3, tun_type="gue", tun_port=6080)),
        (VIP, Destination(RS, Forward.TUNNEL, 3, tun_type="gre")),
        (VIP6, Destination(DestKey("2001:db8::10", 53), Forward.MASQ, 2)),
    ],
)
def test_destination_round_trip(service: ServiceKey, dest: Destination) -> None:
    decoded = round_trip(EditDestination(service, dest))
    svc = decoded.get_attr("IPVS_CMD_ATTR_SERVICE")
    # Dest commands carry only the service's key attributes.
    assert {name for name, _ in svc["attrs"]} <= {
        "IPVS_SVC_ATTR_AF",
        "IPVS_SVC_ATTR_PROTOCOL",
        "IPVS_SVC_ATTR_ADDR",
        "IPVS_SVC_ATTR_PORT",
    }
    family = socket.AF_INET6 if service.ipv6 else socket.AF_INET
    assert parse_dest(decoded.get_attr("IPVS_CMD_ATTR_DEST"), family) == dest


def test_raw_attributes_are_read_not_defaults() -> None:
    """A kernel dump message: forwarding method, flags and timeout come from the raw attrs."""
    body = struct.pack("BBH", 8, 1, 0) + raw_nla(2, KERNEL_DEST_RECORD)
    msg = ipvs.ipvsmsg(struct.pack("IHHII", 16 + len(body), 0x1E, 2, 1, 0) + body)
    msg.decode()
    parsed = parse_dest(msg.get_attr("IPVS_CMD_ATTR_DEST"), socket.AF_INET)
    assert parsed == Destination(DestKey("10.0.0.1", 80), Forward.TUNNEL, 7)
    assert (parsed.active, parsed.inactive) == (11, 12)


def test_refusals_are_worded_like_ipvsadm() -> None:
    import errno

    dest = Destination(RS)
    assert refusal_message(AddService(Service(VIP)), errno.EEXIST) == "Service already exists"
    assert refusal_message(EditDestination(VIP, dest), errno.ENOENT) == "No such destination"
    assert refusal_message(AddDestination(VIP, dest), errno.ESRCH) == "Service not defined"
    assert refusal_message(DeleteService(VIP), errno.EPERM) == "Operation not permitted"


async def test_without_kernel_ipvs_the_backend_reports_no_ipvs() -> None:
    backend = NetlinkBackend()  # the constructor does not connect
    try:
        table = await backend.read()
    except BackendError as exc:
        assert exc.kind is FailureKind.NO_IPVS
    else:  # pragma: no cover - only on a director with IPVS loaded
        pytest.skip(f"this kernel has IPVS ({len(table.services)} services)")


def test_tunnel_type_and_port_are_sent_as_the_kernel_reads_them() -> None:
    """TUN_TYPE is ipip=0/gue=1/gre=2; TUN_PORT is big-endian on the wire (the kernel's be16)."""
    gue = Destination(RS, Forward.TUNNEL, 1, tun_type="gue", tun_port=6080)
    msg = op_message(AddDestination(VIP, gue))
    msg["header"]["type"] = 0x1E
    msg.encode()
    assert struct.pack("HH", 5, 13) + bytes([1]) in msg.data  # IPVS_DEST_ATTR_TUN_TYPE=13: gue
    assert struct.pack("HH", 6, 14) + struct.pack(">H", 6080) in msg.data  # TUN_PORT=14
    plain = round_trip(AddDestination(VIP, Destination(RS, Forward.MASQ, 1)))
    names = {name for name, _ in plain.get_attr("IPVS_CMD_ATTR_DEST")["attrs"]}
    assert "IPVS_DEST_ATTR_TUN_TYPE" not in names  # only tunnels carry them
