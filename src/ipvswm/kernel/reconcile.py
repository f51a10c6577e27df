"""The reconciler: the minimal ops that turn the actual IPVS table into the desired one."""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import replace

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
from ipvswm.kernel.table import Table

# Scheduler flag names by the bit the kernel stores (ipvsadm prints them by scheduler).
_FLAG_BITS = {
    "flag-1": 1,
    "sh-fallback": 1,
    "mh-fallback": 1,
    "flag-2": 2,
    "sh-port": 2,
    "mh-port": 2,
    "flag-3": 3,
}


# Forwarding methods whose destination port ipvsadm keeps (-m; -g and -i force the service port).
_PORT_KEPT = frozenset({Forward.MASQ, Forward.LOCAL})


def service_sort_key(key: ServiceKey) -> tuple[str, str, int]:
    """A total order on service keys (Protocol is an enum and does not order by itself)."""
    return (key.protocol.value, key.address, key.port)


def _default_netmask(key: ServiceKey) -> str:
    return "128" if key.ipv6 else "255.255.255.255"


def _effective(service: Service) -> tuple[object, ...]:
    """The settings the kernel keeps, in a form where equivalent spellings compare equal."""
    persistent = service.persistent is not None
    netmask = service.netmask if persistent else None
    if netmask == _default_netmask(service.key):
        netmask = None
    flags = frozenset(_FLAG_BITS.get(f, f) for f in service.flags)
    return (
        service.scheduler,
        service.persistent,
        netmask,
        flags,
        service.one_packet,
        service.pe if persistent else None,
    )


def same_service(want: Service, have: Service) -> bool:
    """Whether the kernel's service settings already are the desired ones."""
    return _effective(want) == _effective(have)


def same_destination(want: Destination, have: Destination) -> bool:
    """Whether the kernel's destination already is the desired one (counts never compared)."""
    # The kernel may report a destination as Local by itself; rewriting it would loop forever.
    forward_ok = have.forward is Forward.LOCAL or want.forward is have.forward
    return (
        forward_ok
        and want.weight == have.weight
        and want.upper == have.upper
        and want.lower == have.lower
    )


def kernel_destinations(
    key: ServiceKey, dests: Mapping[DestKey, Destination]
) -> Mapping[DestKey, Destination]:
    """Destinations as the kernel will hold them: ipvsadm gives -g/-i ones the service's port.

    Without this, a direct-routing destination configured on another port would be deleted and
    re-added on every step (ipvsadm -a puts it on the service port, the next diff misses it).
    """
    port = 0 if key.protocol is Protocol.FWMARK else key.port  # a fwmark service has no port
    if all(d.forward in _PORT_KEPT or d.key.port == port for d in dests.values()):
        return dests
    out: dict[DestKey, Destination] = {}
    for dest in dests.values():
        if dest.forward not in _PORT_KEPT and dest.key.port != port:
            dest = replace(dest, key=DestKey(dest.key.address, port))
        out[dest.key] = dest
    return out


def reconcile(desired: Table, actual: Table, managed: Collection[ServiceKey]) -> list[Op]:
    """The ops, in a safe and deterministic order, that make `actual` match `desired`.

    Services in `desired` are managed and authoritative (unknown destinations are deleted); a
    service only in `actual` is deleted only if it is in `managed`; anything else is untouched.
    """
    service_ops: list[Op] = []
    dest_deletes: list[Op] = []
    dest_edits: list[Op] = []
    dest_adds: list[Op] = []
    for key in sorted(desired.services, key=service_sort_key):
        want = desired.services[key]
        wanted = kernel_destinations(key, want.destinations)
        have = actual.services.get(key)
        if have is None:
            service_ops.append(AddService(want.service))
            dest_adds.extend(AddDestination(key, wanted[dk]) for dk in sorted(wanted))
            continue
        if not same_service(want.service, have.service):
            service_ops.append(EditService(want.service))
        for dk in sorted(have.destinations):
            if dk not in wanted:
                dest_deletes.append(DeleteDestination(key, dk))
        for dk in sorted(wanted):
            dest = wanted[dk]
            current = have.destinations.get(dk)
            if current is None:
                dest_adds.append(AddDestination(key, dest))
            elif not same_destination(dest, current):
                dest_edits.append(EditDestination(key, dest))
    service_deletes: list[Op] = [
        DeleteService(key)
        for key in sorted(actual.services, key=service_sort_key)
        if key not in desired.services and key in managed
    ]
    return service_ops + dest_deletes + dest_edits + dest_adds + service_deletes
