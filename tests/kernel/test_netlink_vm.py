"""Netlink round trips on the real kernel (VM tier only; issue 11 §2).

One table with every kind of service and destination the model holds -- IPv4 and IPv6, fwmark
(v4 and v6), UDP one-packet, SCTP, persistence with netmasks, sh/mh scheduler flags, NAT, DR and
tunnels (ipip, gue with its port, gre, an IPv6 tunnel destination in an IPv4 service) -- applied
with the netlink backend, then read back with the netlink backend, the ipvsadm backend and the
real `ipvsadm -S -n`: all three equal the desired table and reconcile to nothing. Edits go the
other way too (applied with one backend, read with the other), and are edits in place (SET),
never a delete and an add.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from ipvswm.kernel.backend import KernelBackend
from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.ipvsadm_format import parse_save
from ipvswm.kernel.netlink import NetlinkBackend
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.table import DeleteDestination
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
from tests.kernel.netns import sh

pytestmark = pytest.mark.integration

NAT = ServiceKey(Protocol.TCP, "192.0.2.20", 80)
V6 = ServiceKey(Protocol.TCP, "2001:db8::20", 443)
MARK = ServiceKey(Protocol.FWMARK, "0.0.0.0", 4242)
MARK6 = ServiceKey(Protocol.FWMARK, "::", 4243)
UDP = ServiceKey(Protocol.UDP, "192.0.2.21", 53)
SCTP = ServiceKey(Protocol.SCTP, "192.0.2.22", 3868)
DR = ServiceKey(Protocol.TCP, "192.0.2.23", 80)
TUN = ServiceKey(Protocol.TCP, "192.0.2.24", 80)


def dest(address: str, port: int, forward: Forward, weight: int, **extra: object) -> Destination:
    return Destination(DestKey(address, port), forward, weight, **extra)  # type: ignore[arg-type]


def entry(service: Service, *dests: Destination) -> tuple[ServiceKey, ServiceEntry]:
    return service.key, ServiceEntry(service, {d.key: d for d in dests})


def desired() -> Table:
    # DR and tunnel destinations use the service port: ipvsadm forces it (netlink keeps any port).
    return Table(
        dict(
            [
                entry(
                    Service(NAT, "wrr"),
                    dest("198.51.100.2", 8080, Forward.MASQ, 5, upper=100, lower=10),
                    dest("198.51.100.3", 8080, Forward.MASQ, 0),
                ),
                entry(
                    Service(V6, "wlc", persistent=600, netmask="64"),
                    dest("2001:db8::21", 8443, Forward.MASQ, 3),
                ),
                entry(Service(MARK, "rr"), dest("198.51.100.4", 0, Forward.ROUTE, 2)),
                entry(
                    Service(MARK6, "sh", flags=("sh-fallback", "sh-port")),
                    dest("2001:db8::22", 0, Forward.ROUTE, 1),
                ),
                entry(
                    Service(UDP, "rr", one_packet=True), dest("198.51.100.5", 53, Forward.MASQ, 1)
                ),
                entry(Service(SCTP, "rr"), dest("198.51.100.6", 3868, Forward.MASQ, 1)),
                entry(
                    Service(DR, "wlc", persistent=300, netmask="255.255.255.0"),
                    dest("198.51.100.7", 80, Forward.ROUTE, 4),
                ),
                entry(
                    Service(TUN, "mh", flags=("mh-fallback", "mh-port")),
                    dest("198.51.100.8", 80, Forward.TUNNEL, 1, tun_type="gue", tun_port=6080),
                    dest("198.51.100.9", 80, Forward.TUNNEL, 1, tun_type="gre"),
                    dest("198.51.100.10", 80, Forward.TUNNEL, 1),
                    dest("2001:db8::23", 80, Forward.TUNNEL, 1),
                ),
            ]
        )
    )


def edited() -> Table:
    """Every service and destination setting changed in place (same keys)."""
    table = desired()
    services = dict(table.services)

    def change(key: ServiceKey, service: Service | None = None, **dests: Destination) -> None:
        old = services[key]
        new = dict(old.destinations)
        for d in dests.values():
            new[d.key] = d
        services[key] = ServiceEntry(service or old.service, new)

    change(
        NAT,
        Service(NAT, "rr", persistent=60),
        a=dest("198.51.100.2", 8080, Forward.MASQ, 9, upper=50, lower=5),
    )
    change(V6, Service(V6, "wlc", persistent=900, netmask="48"))
    change(MARK, b=dest("198.51.100.4", 0, Forward.TUNNEL, 7))
    change(MARK6, Service(MARK6, "sh", flags=("sh-port",)))
    change(UDP, Service(UDP, "wrr", one_packet=False))
    change(DR, Service(DR, "wlc", persistent=300, netmask="255.255.0.0"))
    change(
        TUN,
        Service(TUN, "mh"),
        g=dest("198.51.100.8", 80, Forward.TUNNEL, 2, tun_type="gre"),
        h=dest("198.51.100.9", 80, Forward.TUNNEL, 2, tun_type="gue", tun_port=7000),
        i=dest("198.51.100.10", 80, Forward.ROUTE, 3),
    )
    return Table(services)


OURS = tuple(desired().services)


def ours(table: Table) -> Table:
    return Table({k: v for k, v in table.services.items() if k in OURS})


def no_thresholds(table: Table) -> Table:
    """What `ipvsadm -S -n` can show: everything but the thresholds."""
    return Table(
        {
            key: ServiceEntry(
                e.service,
                {dk: replace(d, upper=0, lower=0) for dk, d in e.destinations.items()},
            )
            for key, e in table.services.items()
        }
    )


@pytest.fixture
def backends() -> Iterator[tuple[NetlinkBackend, IpvsadmBackend]]:
    sh("ipvsadm", "-C")
    yield NetlinkBackend(), IpvsadmBackend("/usr/sbin/ipvsadm", 60.0)
    sh("ipvsadm", "-C")


async def converge(backend: KernelBackend, want: Table) -> list[object]:
    """Apply what reconcile says with `backend`; the ops it sent."""
    ops = reconcile(want, await backend.read(), OURS)
    result = await backend.apply(ops)
    assert result.ok, result.errors
    return list(ops)


async def assert_reads(want: Table, nl: NetlinkBackend, ipvsadm: IpvsadmBackend) -> None:
    """The netlink read, the ipvsadm backend's read and `ipvsadm -S -n` all equal `want`."""
    by_netlink = ours(await nl.read())
    by_ipvsadm = ours(await ipvsadm.read())
    assert by_netlink == want
    assert by_ipvsadm == want
    assert no_thresholds(ours(parse_save(sh("ipvsadm", "-S", "-n")))) == no_thresholds(want)
    assert reconcile(want, by_netlink, OURS) == []
    assert reconcile(want, by_ipvsadm, OURS) == []


async def test_every_kind_of_entry_round_trips_through_netlink(
    backends: tuple[NetlinkBackend, IpvsadmBackend],
) -> None:
    nl, ipvsadm = backends
    sent = await converge(nl, desired())
    assert len(sent) == len(OURS) + sum(len(e.destinations) for e in desired().services.values())
    await assert_reads(desired(), nl, ipvsadm)


async def test_edits_round_trip_both_ways_and_are_sets(
    backends: tuple[NetlinkBackend, IpvsadmBackend],
) -> None:
    nl, ipvsadm = backends
    await converge(nl, desired())
    # netlink edits, both read
    ops = await converge(nl, edited())
    assert ops and all(isinstance(op, EditService | EditDestination) for op in ops), ops
    assert not any(isinstance(op, DeleteService | DeleteDestination) for op in ops)
    await assert_reads(edited(), nl, ipvsadm)
    # ipvsadm edits back, netlink reads what it did
    await converge(ipvsadm, desired())
    await assert_reads(desired(), nl, ipvsadm)
    # and a netlink edit again, on a table ipvsadm wrote
    await converge(nl, edited())
    await assert_reads(edited(), nl, ipvsadm)
