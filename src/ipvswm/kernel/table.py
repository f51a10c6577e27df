"""The IPVS table model shared by the engine, the reconciler and every backend (SPEC §5)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field


class Protocol(enum.Enum):
    """How a service is matched: by protocol and address:port, or by firewall mark."""

    TCP = "tcp"
    UDP = "udp"
    SCTP = "sctp"
    FWMARK = "fwm"


class Forward(enum.Enum):
    """A destination's forwarding method, named by its ipvsadm flag."""

    MASQ = "m"  # NAT
    ROUTE = "g"  # direct routing (ipvsadm's default)
    TUNNEL = "i"
    LOCAL = "l"  # only ever read, never written


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """What identifies a service. For FWMARK services `port` is the mark and `address` is
    `0.0.0.0` or `::` (the family of an IPv6 fwmark service)."""

    protocol: Protocol
    address: str  # normalised, no brackets
    port: int

    @property
    def ipv6(self) -> bool:
        return ":" in self.address

    def __str__(self) -> str:
        if self.protocol is Protocol.FWMARK:
            return f"fwm:{self.port}{'/ipv6' if self.ipv6 else ''}"
        addr = f"[{self.address}]" if self.ipv6 else self.address
        return f"{self.protocol.value}:{addr}:{self.port}"


@dataclass(frozen=True, slots=True, order=True)
class DestKey:
    """What identifies a destination inside its service."""

    address: str
    port: int

    def __str__(self) -> str:
        addr = f"[{self.address}]" if ":" in self.address else self.address
        return f"{addr}:{self.port}"


@dataclass(frozen=True, slots=True)
class Service:
    """A virtual service's own settings (not its destinations)."""

    key: ServiceKey
    scheduler: str = "wlc"
    persistent: int | None = None  # timeout in seconds when persistent
    netmask: str | None = None  # persistence netmask (`-M`), None for the default
    flags: tuple[str, ...] = ()  # scheduler flags (`-b`), e.g. ("sh-fallback",)
    one_packet: bool = False  # `-o` / "ops"
    pe: str | None = None  # persistence engine (`--pe sip`)


@dataclass(frozen=True, slots=True)
class Destination:
    """One real server of a service. Connection counts are read, never compared or written."""

    key: DestKey
    forward: Forward = Forward.MASQ
    weight: int = 1
    upper: int = 0  # `-x` upper connection threshold, 0 = none
    lower: int = 0  # `-y` lower connection threshold, 0 = none
    active: int = field(default=0, compare=False)
    inactive: int = field(default=0, compare=False)
    # A tunnel destination's encapsulation (`--tun-type`): None is ipip, the kernel's default;
    # "gue" (with `tun_port`, its UDP port) or "gre". Unused for other forwarding methods.
    tun_type: str | None = None
    tun_port: int = 0


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    """A service with its destinations."""

    service: Service
    destinations: Mapping[DestKey, Destination] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Table:
    """A whole IPVS table (or the part of it the daemon manages)."""

    services: Mapping[ServiceKey, ServiceEntry] = field(default_factory=dict)

    def destination(self, service: ServiceKey, dest: DestKey) -> Destination | None:
        entry = self.services.get(service)
        return None if entry is None else entry.destinations.get(dest)


# --- operations -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AddService:
    service: Service


@dataclass(frozen=True, slots=True)
class EditService:
    service: Service  # the full new settings


@dataclass(frozen=True, slots=True)
class DeleteService:
    key: ServiceKey


@dataclass(frozen=True, slots=True)
class AddDestination:
    service: ServiceKey
    destination: Destination


@dataclass(frozen=True, slots=True)
class EditDestination:
    service: ServiceKey
    destination: Destination  # the full new settings


@dataclass(frozen=True, slots=True)
class DeleteDestination:
    service: ServiceKey
    key: DestKey


Op = AddService | EditService | DeleteService | AddDestination | EditDestination | DeleteDestination
