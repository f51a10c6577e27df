"""The IPVS generic-netlink wire format by hand: struct-built requests, batched ACKs, fast dumps.

Why not pyroute2's message classes: at 2,000 destinations in the VM (TCG) the pyroute2 path took
27.78 s to apply and 9.41 s to read, against 2.20 s for `ipvsadm -R` and 0.55 s for `ipvsadm -S`.
On the host, pyroute2 alone took 0.81 s to encode the 2,020 ops (its NLA classes walk a
declarative spec per attribute) before any socket work, and each request was one send plus one
blocking receive. Here a request is ~20 `struct.pack` calls (offline: 35x cheaper to
encode, 24x to decode; bench/README.md), up to `WINDOW` requests go in one `sendto`, and their
ACKs are read back in bulk and matched to their ops by sequence number. The kernel handles every
message of a buffer in order and ACKs each one, an error included, so one refused op never hides
the others' results. Dumps are decoded with `struct.unpack_from` on the attributes we read.

The earlier pyroute2 builders (`tests/support/netlink_reference.py`) are the reference: the tests
check that these bytes equal pyroute2's encoding and that this decoder agrees with its parser.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from collections.abc import Sequence

from ipvswm.kernel.ipvsadm_format import TUN_TYPES
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

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 3, 1, 2
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
GENL_VERSION = 1
WINDOW = 128  # requests in flight: their ACKs fit the receive buffer many times over
RCVBUF = 1 << 20
_RECV = 1 << 18

# include/uapi/linux/ip_vs.h
CMD_NEW_SERVICE, CMD_SET_SERVICE, CMD_DEL_SERVICE, CMD_GET_SERVICE = 1, 2, 3, 4
CMD_NEW_DEST, CMD_SET_DEST, CMD_DEL_DEST, CMD_GET_DEST = 5, 6, 7, 8
CMD_ATTR_SERVICE, CMD_ATTR_DEST = 1, 2
SVC_AF, SVC_PROTOCOL, SVC_ADDR, SVC_PORT, SVC_FWMARK, SVC_SCHED = 1, 2, 3, 4, 5, 6
SVC_FLAGS, SVC_TIMEOUT, SVC_NETMASK, SVC_PE = 7, 8, 9, 11
D_ADDR, D_PORT, D_FWD, D_WEIGHT, D_UTHRESH, D_LTHRESH, D_ACTIVE, D_INACT = 1, 2, 3, 4, 5, 6, 7, 8
D_FAMILY, D_TUN_TYPE, D_TUN_PORT = 11, 13, 14
SVC_F_PERSISTENT, SVC_F_ONEPACKET = 0x0001, 0x0004
_SCHED_BITS = (0x0008, 0x0010, 0x0020)
_SETTABLE_FLAGS = SVC_F_PERSISTENT | SVC_F_ONEPACKET | 0x0008 | 0x0010 | 0x0020
_FORWARD_CODE = {Forward.MASQ: 0, Forward.LOCAL: 1, Forward.TUNNEL: 2, Forward.ROUTE: 3}
_CODE_FORWARD = {code: fwd for fwd, code in _FORWARD_CODE.items()}
_PROTO_NUM = {Protocol.TCP: 6, Protocol.UDP: 17, Protocol.SCTP: 132}
_NUM_PROTO = {num: proto for proto, num in _PROTO_NUM.items()}
_FLAG_NAMES = {
    "sh": ("sh-fallback", "sh-port", "flag-3"),
    "mh": ("mh-fallback", "mh-port", "flag-3"),
}
_GENERIC_FLAG_NAMES = ("flag-1", "flag-2", "flag-3")
_NAME_BIT = {"flag-1": 0x0008, "flag-2": 0x0010, "flag-3": 0x0020}
_NAME_BIT |= {f"{s}-fallback": 0x0008 for s in ("sh", "mh")}
_NAME_BIT |= {f"{s}-port": 0x0010 for s in ("sh", "mh")}
_HDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")


class WireError(Exception):
    """A netlink request the kernel refused (`code` is a positive errno)."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: {os.strerror(code)}")
        self.code = code


# --- encoding -------------------------------------------------------------------------------------


def nla(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _u16(kind: int, value: int) -> bytes:
    return _NLA.pack(6, kind) + struct.pack("=H", value) + b"\0\0"


def _be16(kind: int, value: int) -> bytes:
    return _NLA.pack(6, kind) + struct.pack(">H", value) + b"\0\0"


def _u32(kind: int, value: int) -> bytes:
    return _NLA.pack(8, kind) + struct.pack("=I", value)


def _addr(kind: int, address: str) -> bytes:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return nla(kind, socket.inet_pton(family, address))


def _asciiz(kind: int, text: str) -> bytes:
    return nla(kind, text.encode() + b"\0")


def service_key_nlas(key: ServiceKey) -> bytes:
    """The attributes that identify a service."""
    out = _u16(SVC_AF, socket.AF_INET6 if key.ipv6 else socket.AF_INET)
    if key.protocol is Protocol.FWMARK:
        return out + _u32(SVC_FWMARK, key.port)
    return (
        out
        + _u16(SVC_PROTOCOL, _PROTO_NUM[key.protocol])
        + _addr(SVC_ADDR, key.address)
        + _be16(SVC_PORT, key.port)
    )


def service_nlas(service: Service) -> bytes:
    """All the attributes of a service, as NEW_SERVICE and SET_SERVICE need them."""
    flags = SVC_F_PERSISTENT if service.persistent is not None else 0
    if service.one_packet:
        flags |= SVC_F_ONEPACKET
    for name in service.flags:
        flags |= _NAME_BIT.get(name, 0)
    if service.key.ipv6:  # the prefix length, as a host-order u32 in the mask's 4 bytes
        netmask = struct.pack("=I", int(service.netmask) if service.netmask is not None else 128)
    else:
        netmask = socket.inet_aton(service.netmask or "255.255.255.255")
    out = (
        service_key_nlas(service.key)
        + _asciiz(SVC_SCHED, service.scheduler)
        + nla(SVC_FLAGS, struct.pack("=II", flags, _SETTABLE_FLAGS))
        + _u32(SVC_TIMEOUT, service.persistent or 0)
        + nla(SVC_NETMASK, netmask)
    )
    if service.pe is not None and service.persistent is not None:
        out += _asciiz(SVC_PE, service.pe)
    return out


def dest_key_nlas(dest: DestKey) -> bytes:
    """The attributes that identify a destination inside its service."""
    family = socket.AF_INET6 if ":" in dest.address else socket.AF_INET
    return _u16(D_FAMILY, family) + _addr(D_ADDR, dest.address) + _be16(D_PORT, dest.port)


def dest_nlas(dest: Destination) -> bytes:
    """All the attributes of a destination, as NEW_DEST and SET_DEST need them."""
    out = (
        dest_key_nlas(dest.key)
        + _u32(D_FWD, _FORWARD_CODE[dest.forward])
        + _u32(D_WEIGHT, dest.weight)
        + _u32(D_UTHRESH, dest.upper)
        + _u32(D_LTHRESH, dest.lower)
    )
    if dest.forward is Forward.TUNNEL:  # only tunnels carry these (kernels before 5.2 lack them)
        out += nla(D_TUN_TYPE, bytes([TUN_TYPES.index(dest.tun_type or "ipip")]))
        out += _be16(D_TUN_PORT, dest.tun_port)
    return out


def op_payload(op: Op) -> tuple[int, bytes]:
    """The command and attribute bytes of one op (edits are SET, never DEL+NEW)."""
    match op:
        case AddService(service=s):
            return CMD_NEW_SERVICE, nla(CMD_ATTR_SERVICE, service_nlas(s))
        case EditService(service=s):
            return CMD_SET_SERVICE, nla(CMD_ATTR_SERVICE, service_nlas(s))
        case DeleteService(key=k):
            return CMD_DEL_SERVICE, nla(CMD_ATTR_SERVICE, service_key_nlas(k))
        case AddDestination(service=k, destination=d) | EditDestination(service=k, destination=d):
            cmd = CMD_NEW_DEST if isinstance(op, AddDestination) else CMD_SET_DEST
            return cmd, nla(CMD_ATTR_SERVICE, service_key_nlas(k)) + nla(
                CMD_ATTR_DEST, dest_nlas(d)
            )
        case DeleteDestination(service=k, key=dk):
            return CMD_DEL_DEST, nla(CMD_ATTR_SERVICE, service_key_nlas(k)) + nla(
                CMD_ATTR_DEST, dest_key_nlas(dk)
            )
    raise TypeError(f"not an op: {op!r}")  # pragma: no cover - the match is exhaustive


def message(family: int, cmd: int, attrs: bytes, flags: int, seq: int) -> bytes:
    """One netlink message: nlmsghdr, genlmsghdr, attributes."""
    head = _HDR.pack(20 + len(attrs), family, flags, seq, 0)
    return head + bytes((cmd, GENL_VERSION, 0, 0)) + attrs


def op_message_bytes(op: Op, family: int, seq: int) -> bytes:
    """The request that applies one op, asking for an ACK."""
    return message(family, *op_payload(op), NLM_F_REQUEST | NLM_F_ACK, seq)


# --- decoding -------------------------------------------------------------------------------------


def nlas(buf: memoryview) -> dict[int, memoryview]:
    """The top-level attributes of a buffer by type (the nested flag bits masked off)."""
    out: dict[int, memoryview] = {}
    at, end = 0, len(buf)
    while at + 4 <= end:
        size, kind = _NLA.unpack_from(buf, at)
        if size < 4:
            break
        out[kind & 0x3FFF] = buf[at + 4 : at + size]
        at += (size + 3) & ~3
    return out


def _text(attrs: dict[int, memoryview], kind: int) -> str | None:
    raw = attrs.get(kind)
    return None if raw is None else bytes(raw).split(b"\0", 1)[0].decode()


def _ip(raw: memoryview | None, family: int) -> str:
    size = 16 if family == socket.AF_INET6 else 4
    return socket.inet_ntop(family, bytes(raw[:size]) if raw is not None else bytes(size))


def decode_service(raw: memoryview) -> Service:
    """A Service from the bytes of an IPVS_CMD_ATTR_SERVICE."""
    a = nlas(raw)
    family = _le(a, SVC_AF) or socket.AF_INET
    ipv6 = family == socket.AF_INET6
    fwmark = _le(a, SVC_FWMARK)
    if fwmark:
        key = ServiceKey(Protocol.FWMARK, "::" if ipv6 else "0.0.0.0", fwmark)
    else:
        proto = _NUM_PROTO.get(_le(a, SVC_PROTOCOL))
        if proto is None:
            raise ValueError(f"unknown protocol in {bytes(raw)!r}")
        key = ServiceKey(proto, _ip(a.get(SVC_ADDR), family), _be(a, SVC_PORT))
    scheduler = _text(a, SVC_SCHED) or ""
    flags_raw = a.get(SVC_FLAGS)
    flags = struct.unpack_from("=I", flags_raw)[0] if flags_raw is not None else 0
    persistent = _le(a, SVC_TIMEOUT) if flags & SVC_F_PERSISTENT else None
    netmask: str | None = None
    pe: str | None = None
    if persistent is not None:
        mask = a.get(SVC_NETMASK)
        if mask is not None:
            if ipv6:
                bits = struct.unpack_from("=I", mask)[0]
                netmask = None if bits == 128 else str(bits)
            else:
                text = socket.inet_ntoa(bytes(mask[:4]))
                netmask = None if text == "255.255.255.255" else text
        pe = _text(a, SVC_PE) or None
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


def _be(a: dict[int, memoryview], kind: int) -> int:
    raw = a.get(kind)
    return int.from_bytes(raw[:2], "big") if raw is not None else 0


def _le(a: dict[int, memoryview], kind: int) -> int:
    raw = a.get(kind)
    return int.from_bytes(raw, "little") if raw is not None else 0


def decode_dest(raw: memoryview, service_family: int) -> Destination:
    """A Destination from the bytes of an IPVS_CMD_ATTR_DEST."""
    a = nlas(raw)
    family = _le(a, D_FAMILY) if D_FAMILY in a else service_family
    forward = _CODE_FORWARD.get(_le(a, D_FWD) & 0x0007, Forward.ROUTE)
    tun_type: str | None = None
    tun_port = 0
    if forward is Forward.TUNNEL:
        code = _le(a, D_TUN_TYPE)
        tun_type = TUN_TYPES[code] if 0 < code < len(TUN_TYPES) else None
        tun_port = _be(a, D_TUN_PORT)
    return Destination(
        DestKey(_ip(a.get(D_ADDR), family), _be(a, D_PORT)),
        forward=forward,
        weight=_le(a, D_WEIGHT),
        upper=_le(a, D_UTHRESH),
        lower=_le(a, D_LTHRESH),
        active=_le(a, D_ACTIVE),
        inactive=_le(a, D_INACT),
        tun_type=tun_type,
        tun_port=tun_port,
    )


def messages(buf: memoryview) -> Iterator[tuple[int, int, memoryview]]:
    """(type, seq, payload) of each netlink message in a received buffer."""
    at, end = 0, len(buf)
    while at + 16 <= end:
        size, kind, _flags, seq, _pid = _HDR.unpack_from(buf, at)
        if size < 16:
            break
        yield kind, seq, buf[at + 16 : at + size]
        at += (size + 3) & ~3


def error_code(payload: memoryview) -> int:
    """The positive errno of an NLMSG_ERROR payload (0 for an ACK)."""
    return -int(struct.unpack_from("=i", payload)[0])


# --- the socket -----------------------------------------------------------------------------------


class Wire:
    """A generic-netlink socket to the IPVS family; not thread-safe, one per session."""

    def __init__(self, sock: socket.socket, family: int = 0) -> None:
        self.sock = sock
        self.family = family
        self._seq = 0

    @classmethod
    def open(cls) -> Wire:
        """Connect and resolve the IPVS family id (WireError ENOENT: no IPVS in this kernel)."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind((0, 0))
            wire = cls(sock)
            name = _asciiz(CTRL_ATTR_FAMILY_NAME, "IPVS")
            reply = wire.dump(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, name, NLM_F_REQUEST)
            family = _le(nlas(reply[0][4:]), CTRL_ATTR_FAMILY_ID) if reply else 0
            if not family:
                raise WireError(errno.ENOENT, "IPVS family")
            wire.family = family
        except BaseException:
            sock.close()
            raise
        return wire

    def close(self) -> None:
        self.sock.close()

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def dump(self, family: int, cmd: int, attrs: bytes, flags: int = 0) -> list[memoryview]:
        """The genl payloads (genlmsghdr + attributes) of a request's replies, until DONE/ACK."""
        seq = self.next_seq()
        self.sock.send(message(family, cmd, attrs, flags or NLM_F_REQUEST | NLM_F_DUMP, seq))
        out: list[memoryview] = []
        while True:
            buf = memoryview(self.sock.recv(_RECV))
            for kind, got, payload in messages(buf):
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise WireError(code, f"netlink command {cmd}")
                    return out
                out.append(payload)
                if not flags & NLM_F_DUMP and flags:  # a plain request: one reply
                    return out

    def apply(self, requests: Sequence[tuple[int, bytes]], window: int = WINDOW) -> list[int]:
        """Send (cmd, attrs) requests `window` per buffer; each one's errno (0: applied)."""
        codes: list[int] = []
        for start in range(0, len(requests), window):
            chunk = requests[start : start + window]
            seqs = [self.next_seq() for _ in chunk]
            flags = NLM_F_REQUEST | NLM_F_ACK
            buf = b"".join(
                message(self.family, cmd, attrs, flags, seq)
                for (cmd, attrs), seq in zip(chunk, seqs, strict=True)
            )
            self.sock.send(buf)
            pending = {seq: i for i, seq in enumerate(seqs)}
            results = [0] * len(chunk)
            while pending:
                for kind, seq, payload in messages(memoryview(self.sock.recv(_RECV))):
                    if kind == NLMSG_ERROR and seq in pending:
                        results[pending.pop(seq)] = error_code(payload)
            codes += results
        return codes
