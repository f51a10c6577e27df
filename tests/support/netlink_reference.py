"""The pyroute2 encoding and parsing of IPVS messages: the reference for `kernel/netlink_wire.py`.

The netlink backend used to build its messages with pyroute2's classes and parse the raw
attributes pyroute2 decoded (SET_SERVICE / SET_DEST for edits: pyroute2 0.9.7's `"update"` sends
a DEL). It now speaks the wire format itself (`netlink_wire.py` gives the measured reason); this
is that earlier path, kept for the unit tests only: the hand-built bytes must equal pyroute2's
encoding of the same op, and the hand-written decoder must agree with these parsers. The uapi
numbers and flag names come from `netlink_wire`, the encoding and decoding are pyroute2's.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from ipvswm.kernel.ipvsadm_format import TUN_TYPES
from ipvswm.kernel.ipvsadm_format import normalise_address
from ipvswm.kernel.netlink_wire import _CODE_FORWARD
from ipvswm.kernel.netlink_wire import _FLAG_NAMES
from ipvswm.kernel.netlink_wire import _FORWARD_CODE
from ipvswm.kernel.netlink_wire import _GENERIC_FLAG_NAMES
from ipvswm.kernel.netlink_wire import _NAME_BIT
from ipvswm.kernel.netlink_wire import _NUM_PROTO
from ipvswm.kernel.netlink_wire import _PROTO_NUM
from ipvswm.kernel.netlink_wire import _SCHED_BITS
from ipvswm.kernel.netlink_wire import _SETTABLE_FLAGS
from ipvswm.kernel.netlink_wire import CMD_DEL_DEST
from ipvswm.kernel.netlink_wire import CMD_DEL_SERVICE
from ipvswm.kernel.netlink_wire import CMD_NEW_DEST
from ipvswm.kernel.netlink_wire import CMD_NEW_SERVICE
from ipvswm.kernel.netlink_wire import CMD_SET_DEST
from ipvswm.kernel.netlink_wire import CMD_SET_SERVICE
from ipvswm.kernel.netlink_wire import SVC_F_ONEPACKET
from ipvswm.kernel.netlink_wire import SVC_F_PERSISTENT
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

CONN_F_FWD_MASK = 0x0007

Attrs = list[tuple[str, Any]]


# --- building messages ----------------------------------------------------------------------------


def _family(ipv6: bool) -> int:
    return socket.AF_INET6 if ipv6 else socket.AF_INET


def service_key_attrs(key: ServiceKey) -> Attrs:
    """The attributes that identify a service."""
    attrs: Attrs = [("IPVS_SVC_ATTR_AF", _family(key.ipv6))]
    if key.protocol is Protocol.FWMARK:
        attrs.append(("IPVS_SVC_ATTR_FWMARK", key.port))
    else:
        attrs += [
            ("IPVS_SVC_ATTR_PROTOCOL", _PROTO_NUM[key.protocol]),
            ("IPVS_SVC_ATTR_ADDR", key.address),
            ("IPVS_SVC_ATTR_PORT", key.port),
        ]
    return attrs


def _netmask_attr(service: Service) -> str:
    """The NETMASK attribute as pyroute2's ip4addr: a mask for IPv4, a prefix length for IPv6."""
    if service.key.ipv6:
        bits = int(service.netmask) if service.netmask is not None else 128
        # The kernel reads the prefix length as a host-order u32 in the same 4 bytes.
        return socket.inet_ntoa(struct.pack("=I", bits))
    return service.netmask or "255.255.255.255"


def service_attrs(service: Service) -> Attrs:
    """All the attributes of a service, as NEW_SERVICE and SET_SERVICE need them."""
    flags = 0
    if service.persistent is not None:
        flags |= SVC_F_PERSISTENT
    if service.one_packet:
        flags |= SVC_F_ONEPACKET
    for name in service.flags:
        flags |= _NAME_BIT.get(name, 0)
    attrs = service_key_attrs(service.key)
    attrs += [
        ("IPVS_SVC_ATTR_SCHED_NAME", service.scheduler),
        ("IPVS_SVC_ATTR_FLAGS", {"flags": flags, "mask": _SETTABLE_FLAGS}),
        ("IPVS_SVC_ATTR_TIMEOUT", service.persistent or 0),
        ("IPVS_SVC_ATTR_NETMASK", _netmask_attr(service)),
    ]
    if service.pe is not None and service.persistent is not None:
        attrs.append(("IPVS_SVC_ATTR_PE_NAME", service.pe))
    return attrs


def dest_key_attrs(dest: DestKey) -> Attrs:
    """The attributes that identify a destination inside its service."""
    return [
        ("IPVS_DEST_ATTR_ADDR_FAMILY", _family(":" in dest.address)),
        ("IPVS_DEST_ATTR_ADDR", dest.address),
        ("IPVS_DEST_ATTR_PORT", dest.port),
    ]


def dest_attrs(dest: Destination) -> Attrs:
    """All the attributes of a destination, as NEW_DEST and SET_DEST need them."""
    attrs: Attrs = [
        *dest_key_attrs(dest.key),
        ("IPVS_DEST_ATTR_FWD_METHOD", _FORWARD_CODE[dest.forward]),
        ("IPVS_DEST_ATTR_WEIGHT", dest.weight),
        ("IPVS_DEST_ATTR_U_THRESH", dest.upper),
        ("IPVS_DEST_ATTR_L_THRESH", dest.lower),
    ]
    if dest.forward is Forward.TUNNEL:  # only tunnels carry these (kernels before 5.2 lack them)
        attrs.append(("IPVS_DEST_ATTR_TUN_TYPE", TUN_TYPES.index(dest.tun_type or "ipip")))
        # The kernel reads the port in network order; pyroute2 packs this u16 in host order.
        attrs.append(("IPVS_DEST_ATTR_TUN_PORT", socket.htons(dest.tun_port)))
    return attrs


def op_command(op: Op) -> tuple[int, Attrs]:
    """The generic-netlink command and attributes of one op (edits are SET, never DEL+NEW)."""
    match op:
        case AddService(service=s):
            return CMD_NEW_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": service_attrs(s)})]
        case EditService(service=s):
            return CMD_SET_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": service_attrs(s)})]
        case DeleteService(key=k):
            return CMD_DEL_SERVICE, [("IPVS_CMD_ATTR_SERVICE", {"attrs": service_key_attrs(k)})]
        case AddDestination(service=k, destination=d) | EditDestination(service=k, destination=d):
            cmd = CMD_NEW_DEST if isinstance(op, AddDestination) else CMD_SET_DEST
            return cmd, [
                ("IPVS_CMD_ATTR_SERVICE", {"attrs": service_key_attrs(k)}),
                ("IPVS_CMD_ATTR_DEST", {"attrs": dest_attrs(d)}),
            ]
        case DeleteDestination(service=k, key=dk):
            return CMD_DEL_DEST, [
                ("IPVS_CMD_ATTR_SERVICE", {"attrs": service_key_attrs(k)}),
                ("IPVS_CMD_ATTR_DEST", {"attrs": dest_key_attrs(dk)}),
            ]
    raise TypeError(f"not an op: {op!r}")  # pragma: no cover - the match is exhaustive


def build_message(cmd: int, attrs: Attrs) -> Any:
    """A pyroute2 ipvsmsg for a command (not yet encoded)."""
    from pyroute2.netlink.generic import ipvs

    msg = ipvs.ipvsmsg()
    msg["cmd"] = cmd
    msg["version"] = ipvs.GENL_VERSION
    msg["attrs"] = attrs
    return msg


def op_message(op: Op) -> Any:
    """The pyroute2 ipvsmsg that applies one op."""
    return build_message(*op_command(op))


# --- parsing messages -----------------------------------------------------------------------------


def _attr(nla: Any, name: str, default: Any = None) -> Any:
    value = nla.get_attr(name)
    return default if value is None else value


def _address(value: Any, family: int) -> str:
    """A decoded ADDR attribute; raw bytes when pyroute2 did not know the family."""
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if len(raw) in (8, 20):  # pyroute2 hands back the undecoded NLA with its 4-byte header
            raw = raw[4:]
        size = 16 if family == socket.AF_INET6 else 4
        return socket.inet_ntop(family, raw[:size])
    return normalise_address(str(value))


def parse_service(nla: Any) -> Service:
    """A Service from the raw attributes of an IPVS_CMD_ATTR_SERVICE."""
    family = _attr(nla, "IPVS_SVC_ATTR_AF", socket.AF_INET)
    ipv6 = family == socket.AF_INET6
    fwmark = _attr(nla, "IPVS_SVC_ATTR_FWMARK", 0)
    if fwmark:
        key = ServiceKey(Protocol.FWMARK, "::" if ipv6 else "0.0.0.0", fwmark)
    else:
        proto = _NUM_PROTO.get(_attr(nla, "IPVS_SVC_ATTR_PROTOCOL", 0))
        if proto is None:
            raise ValueError(f"unknown protocol in {nla!r}")
        address = _address(_attr(nla, "IPVS_SVC_ATTR_ADDR"), family)
        key = ServiceKey(proto, address, _attr(nla, "IPVS_SVC_ATTR_PORT", 0))
    scheduler = _attr(nla, "IPVS_SVC_ATTR_SCHED_NAME", "")
    raw_flags = _attr(nla, "IPVS_SVC_ATTR_FLAGS", {"flags": 0})
    flags = raw_flags["flags"] if isinstance(raw_flags, dict) else int(raw_flags)
    persistent = _attr(nla, "IPVS_SVC_ATTR_TIMEOUT", 0) if flags & SVC_F_PERSISTENT else None
    netmask: str | None = None
    pe: str | None = None
    if persistent is not None:
        mask = _attr(nla, "IPVS_SVC_ATTR_NETMASK")
        if mask is not None:
            if ipv6:
                bits = struct.unpack("=I", socket.inet_aton(mask))[0]
                netmask = None if bits == 128 else str(bits)
            elif mask != "255.255.255.255":
                netmask = mask
        pe = _attr(nla, "IPVS_SVC_ATTR_PE_NAME") or None
    names = _FLAG_NAMES.get(scheduler, _GENERIC_FLAG_NAMES)
    return Service(
        key,
        scheduler=scheduler,
        persistent=persistent,
        netmask=netmask,
        flags=tuple(n for n, bit in zip(names, _SCHED_BITS, strict=True) if flags & bit),
        one_packet=bool(flags & SVC_F_ONEPACKET),
        pe=pe,
    )


def parse_dest(nla: Any, service_family: int) -> Destination:
    """A Destination from the raw attributes of an IPVS_CMD_ATTR_DEST."""
    family = _attr(nla, "IPVS_DEST_ATTR_ADDR_FAMILY", service_family)
    address = _address(_attr(nla, "IPVS_DEST_ATTR_ADDR"), family)
    method = _attr(nla, "IPVS_DEST_ATTR_FWD_METHOD", 0) & CONN_F_FWD_MASK
    forward = _CODE_FORWARD.get(method, Forward.ROUTE)
    tun_type: str | None = None
    tun_port = 0
    if forward is Forward.TUNNEL:
        code = _attr(nla, "IPVS_DEST_ATTR_TUN_TYPE", 0)
        tun_type = TUN_TYPES[code] if 0 < code < len(TUN_TYPES) else None
        tun_port = socket.ntohs(_attr(nla, "IPVS_DEST_ATTR_TUN_PORT", 0))
    return Destination(
        DestKey(address, _attr(nla, "IPVS_DEST_ATTR_PORT", 0)),
        forward=forward,
        weight=_attr(nla, "IPVS_DEST_ATTR_WEIGHT", 0),
        upper=_attr(nla, "IPVS_DEST_ATTR_U_THRESH", 0),
        lower=_attr(nla, "IPVS_DEST_ATTR_L_THRESH", 0),
        active=_attr(nla, "IPVS_DEST_ATTR_ACTIVE_CONNS", 0),
        inactive=_attr(nla, "IPVS_DEST_ATTR_INACT_CONNS", 0),
        tun_type=tun_type,
        tun_port=tun_port,
    )


def raw_nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, packed here by hand, independently of both encoders."""
    size = 4 + len(payload)
    return struct.pack("HH", size, kind) + payload + b"\0" * (-size % 4)


# A GET_DEST record as a kernel dump sends it: IPVS_DEST_ATTR_* ADDR=1 (16 bytes, no ADDR_FAMILY,
# as older kernels send), PORT=2, FWD_METHOD=3 (tunnel, plus a non-method flag bit), WEIGHT=4,
# U_THRESH=5, L_THRESH=6, ACTIVE_CONNS=7, INACT_CONNS=8, and a nested STATS (10) no parser reads.
# Read right, it is 10.0.0.1:80 tunnel weight 7 with 11 active and 12 inactive connections.
KERNEL_DEST_RECORD = (
    raw_nla(1, bytes([10, 0, 0, 1]) + bytes(12))
    + raw_nla(2, struct.pack(">H", 80))
    + raw_nla(3, struct.pack("I", 2 | 0x0100))
    + raw_nla(4, struct.pack("I", 7))
    + raw_nla(5, struct.pack("I", 0))
    + raw_nla(6, struct.pack("I", 0))
    + raw_nla(7, struct.pack("I", 11))
    + raw_nla(8, struct.pack("I", 12))
    + raw_nla(10 | 0x8000, raw_nla(1, struct.pack("I", 5)))
)
