"""Who may change state from a console session (SPEC §7, §11): peer uid, allowed users, token.

A loopback TCP peer is identified by the uid owning its socket, found in /proc/net/tcp and
/proc/net/tcp6 (the entry whose local address is the peer's and whose remote address is ours); a
Unix-socket peer by SO_PEERCRED. Changes are allowed to root, the daemon's own user and the users
and groups of `Management.Socket.AllowUsers` / `AllowGroups`; others may only read. A peer that is
not on loopback has no uid we can trust: it must send `auth TOKEN` (`Management.Socket.Token`).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import socket
import struct
from dataclasses import dataclass

from ipvswm.config.model import GlobalOptions

PROC_NET = ("/proc/net/tcp", "/proc/net/tcp6")
IpPort = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of a console session, as far as the daemon can tell."""

    kind: str  # "tcp" or "unix"
    address: str
    loopback: bool
    uid: int | None  # None: unknown (not on loopback, or not found)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address, with an IPv4-mapped IPv6 address as the IPv4 one (a dual-stack listener)."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(text: str) -> bool:
    """Whether an address (as a socket reports it) is on loopback."""
    try:
        return _ip(text).is_loopback
    except ValueError:
        return False


def _proc_address(field: str) -> IpPort:
    """`0100007F:1F90` (words in host byte order, as the kernel prints them) as (address, port)."""
    hex_address, hex_port = field.split(":")
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    packed = struct.pack(f"={len(words)}I", *words)
    family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
    return _ip(socket.inet_ntop(family, packed)), int(hex_port, 16)


def socket_owner(peer: IpPort, ours: IpPort, tables: tuple[str, ...] = PROC_NET) -> int | None:
    """The uid owning the TCP socket at `peer` connected to `ours` (None if not found)."""
    for path in tables:
        try:
            with open(path, encoding="ascii", errors="replace") as table:
                next(table, None)  # the header
                for line in table:
                    fields = line.split()
                    if len(fields) < 8:
                        continue
                    try:
                        if _proc_address(fields[1]) == peer and _proc_address(fields[2]) == ours:
                            return int(fields[7])
                    except (ValueError, struct.error):
                        continue
        except OSError:
            continue
    return None


def tcp_peer(peername: tuple[object, ...], sockname: tuple[object, ...]) -> Peer:
    """Who is at the other end of an accepted TCP connection (reads /proc: run it in a thread)."""
    host, port = str(peername[0]), int(str(peername[1]))
    shown = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    if not is_loopback(host):
        return Peer("tcp", shown, False, None)
    ours = (_ip(str(sockname[0])), int(str(sockname[1])))
    return Peer("tcp", shown, True, socket_owner((_ip(host), port), ours))


def unix_peer(sock: socket.socket | None) -> Peer:
    """Who is at the other end of a Unix-socket connection (SO_PEERCRED)."""
    uid: int | None = None
    if sock is not None:
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            uid = struct.unpack("3i", creds)[1]
        except OSError:
            uid = None
    return Peer("unix", "unix", True, uid)


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def may_change(uid: int, options: GlobalOptions) -> bool:
    """Whether this uid may change state: root, the daemon's user, AllowUsers, AllowGroups.

    Names are looked up at each call (they may come from NSS: run it in a thread).
    """
    if uid in (0, os.geteuid()):
        return True
    try:
        entry: pwd.struct_passwd | None = pwd.getpwuid(uid)
    except KeyError:
        entry = None
    if entry is not None and entry.pw_name in options.management_socket_allow_users:
        return True
    for name in options.management_socket_allow_groups:
        try:
            group = grp.getgrnam(name)
        except KeyError:
            continue
        if entry is not None and (entry.pw_gid == group.gr_gid or entry.pw_name in group.gr_mem):
            return True
    return False


def describe(peer: Peer) -> str:
    """The peer as a refusal names it: `uid 65534 (nobody)`."""
    if peer.uid is None:
        return f"{peer.address} (its user could not be determined)"
    return f"uid {peer.uid} ({user_name(peer.uid)})"
