"""The reconciler: minimal, ordered, ownership-respecting ops (SPEC §5), checked by simulation."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ipvswm.kernel.reconcile import kernel_destinations
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.simulate import apply_ops
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
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

VIP = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
VIP2 = ServiceKey(Protocol.UDP, "192.0.2.2", 53)
RS1 = DestKey("127.0.0.2", 80)
RS2 = DestKey("127.0.0.3", 80)


def table(spec: Mapping[ServiceKey, tuple[Service, list[Destination]]]) -> Table:
    return Table({k: ServiceEntry(s, {d.key: d for d in ds}) for k, (s, ds) in spec.items()})


def one(weight: int = 10, forward: Forward = Forward.MASQ, sched: str = "wrr") -> Table:
    return table({VIP: (Service(VIP, sched), [Destination(RS1, forward, weight)])})


def test_equal_tables_need_nothing() -> None:
    assert reconcile(one(), one(), [VIP]) == []


def test_weight_change_is_one_edit() -> None:
    ops = reconcile(one(weight=5), one(weight=10), [VIP])
    assert ops == [EditDestination(VIP, Destination(RS1, Forward.MASQ, 5))]


def test_forward_change_is_an_edit_not_delete_add() -> None:
    ops = reconcile(one(forward=Forward.ROUTE), one(), [VIP])
    assert ops == [EditDestination(VIP, Destination(RS1, Forward.ROUTE, 10))]


def test_threshold_change_is_an_edit() -> None:
    want = table({VIP: (Service(VIP, "wrr"), [Destination(RS1, weight=10, upper=100, lower=5)])})
    assert reconcile(want, one(), [VIP]) == [
        EditDestination(VIP, want.services[VIP].destinations[RS1])
    ]


def test_scheduler_or_persistence_change_is_one_service_edit() -> None:
    assert reconcile(one(sched="rr"), one(), [VIP]) == [EditService(Service(VIP, "rr"))]
    want = table({VIP: (Service(VIP, "wrr", persistent=300), [Destination(RS1, weight=10)])})
    assert reconcile(want, one(), []) == [EditService(Service(VIP, "wrr", persistent=300))]


def test_connection_counts_are_not_compared() -> None:
    actual = table({VIP: (Service(VIP, "wrr"), [Destination(RS1, weight=10, active=7)])})
    assert reconcile(one(), actual, [VIP]) == []


def test_default_netmask_and_flag_spellings_are_equivalent() -> None:
    want = Service(VIP, "sh", persistent=60, netmask="255.255.255.255", flags=("sh-port",))
    have = Service(VIP, "sh", persistent=60, flags=("flag-2",))
    assert reconcile(table({VIP: (want, [])}), table({VIP: (have, [])}), [VIP]) == []


def test_local_forwarding_reported_by_the_kernel_is_left_alone() -> None:
    assert reconcile(one(), one(forward=Forward.LOCAL), [VIP]) == []


def test_unknown_destination_in_managed_service_is_deleted() -> None:
    actual = table(
        {VIP: (Service(VIP, "wrr"), [Destination(RS1, weight=10), Destination(RS2, weight=1)])}
    )
    assert reconcile(one(), actual, []) == [DeleteDestination(VIP, RS2)]


def test_unmanaged_service_untouched_and_managed_one_deleted() -> None:
    actual = table({**_spec(one()), VIP2: (Service(VIP2, "rr"), [Destination(RS1)])})
    assert reconcile(one(), actual, []) == []
    assert reconcile(one(), actual, [VIP2]) == [DeleteService(VIP2)]


def _spec(t: Table) -> dict[ServiceKey, tuple[Service, list[Destination]]]:
    return {k: (e.service, list(e.destinations.values())) for k, e in t.services.items()}


def test_order_service_adds_then_dest_deletes_edits_adds_then_service_deletes() -> None:
    desired = table(
        {
            VIP: (Service(VIP, "rr"), [Destination(RS1, weight=3)]),
            ServiceKey(Protocol.TCP, "192.0.2.9", 443): (
                Service(ServiceKey(Protocol.TCP, "192.0.2.9", 443)),
                [Destination(RS2)],
            ),
        }
    )
    actual = table(
        {
            VIP: (Service(VIP, "wrr"), [Destination(RS1, weight=1), Destination(RS2)]),
            VIP2: (Service(VIP2, "rr"), [Destination(RS1)]),
        }
    )
    kinds = [type(op) for op in reconcile(desired, actual, [VIP2])]
    assert kinds == [
        EditService,
        AddService,
        DeleteDestination,
        EditDestination,
        AddDestination,
        DeleteService,
    ]


# --- property tests ---------------------------------------------------------------------------

_service_keys = st.sampled_from(
    [
        ServiceKey(Protocol.TCP, "192.0.2.1", 80),
        ServiceKey(Protocol.TCP, "192.0.2.1", 443),
        ServiceKey(Protocol.UDP, "192.0.2.1", 53),
        ServiceKey(Protocol.TCP, "2001:db8::1", 80),
        ServiceKey(Protocol.FWMARK, "0.0.0.0", 7),
    ]
)
_dest_keys = st.sampled_from([DestKey(f"127.0.0.{i}", p) for i in range(2, 6) for p in (80, 8080)])
_destinations = st.builds(
    Destination,
    key=_dest_keys,
    forward=st.sampled_from([Forward.MASQ, Forward.ROUTE, Forward.TUNNEL]),
    weight=st.integers(0, 5),
    upper=st.sampled_from([0, 100]),
    lower=st.sampled_from([0, 10]),
)


@st.composite
def _tables(draw: st.DrawFn) -> Table:
    spec: dict[ServiceKey, ServiceEntry] = {}
    for key in draw(st.sets(_service_keys, max_size=4)):
        service = Service(
            key,
            scheduler=draw(st.sampled_from(["wrr", "rr", "sh"])),
            persistent=draw(st.sampled_from([None, 300])),
        )
        dests = [d for d in draw(st.lists(_destinations, max_size=5)) if d.lower <= d.upper]
        spec[key] = ServiceEntry(service, kernel_destinations(key, {d.key: d for d in dests}))
    return Table(spec)


@settings(max_examples=300, deadline=None)
@given(_tables(), _tables(), st.sets(_service_keys))
def test_applying_the_ops_gives_the_desired_table(
    desired: Table, actual: Table, managed: set[ServiceKey]
) -> None:
    ops = reconcile(desired, actual, managed)
    result = apply_ops(actual, ops)  # raises if the kernel would refuse any op
    for key, entry in desired.services.items():
        assert result.services[key].service == entry.service
        assert result.services[key].destinations == kernel_destinations(key, entry.destinations)
    for key, entry in actual.services.items():
        if key in desired.services:
            continue
        if key in managed:
            assert key not in result.services
        else:
            assert result.services[key] == entry
    assert set(result.services) == set(desired.services) | (set(actual.services) - set(managed))
    assert reconcile(desired, result, managed) == []
    _assert_minimal(ops)


def _assert_minimal(ops: list[Op]) -> None:
    deleted = {(op.service, op.key) for op in ops if isinstance(op, DeleteDestination)}
    added = {(op.service, op.destination.key) for op in ops if isinstance(op, AddDestination)}
    assert not deleted & added, "a destination was deleted and re-added instead of edited"
    deleted_services = {op.key for op in ops if isinstance(op, DeleteService)}
    added_services = {op.service.key for op in ops if isinstance(op, AddService)}
    assert not deleted_services & added_services
    dropped = {op.service for op in ops if isinstance(op, DeleteDestination)}
    assert not dropped & deleted_services, "destinations of a deleted service need no delete"


@given(_tables(), st.sets(_service_keys))
def test_equal_tables_give_no_ops(t: Table, managed: set[ServiceKey]) -> None:
    assert reconcile(t, t, managed) == []


@given(_tables(), _tables(), st.sets(_service_keys))
def test_order_is_deterministic(desired: Table, actual: Table, managed: set[ServiceKey]) -> None:
    shuffled = Table(dict(reversed(list(actual.services.items()))))
    assert reconcile(desired, actual, managed) == reconcile(desired, shuffled, list(managed))


def test_direct_routing_destinations_live_on_the_service_port() -> None:
    """ipvsadm -a -g puts the destination on the service port: diff against that, no churn."""
    dr = Destination(DestKey("127.0.0.2", 8080), Forward.ROUTE, 4)
    want = table({VIP: (Service(VIP, "wrr"), [dr])})
    on_80 = Destination(DestKey("127.0.0.2", 80), Forward.ROUTE, 4)
    assert reconcile(want, Table(), []) == [
        AddService(Service(VIP, "wrr")),
        AddDestination(VIP, on_80),
    ]
    assert reconcile(want, table({VIP: (Service(VIP, "wrr"), [on_80])}), []) == []


def test_direct_routing_destinations_of_a_fwmark_service_live_on_port_zero() -> None:
    mark = ServiceKey(Protocol.FWMARK, "0.0.0.0", 42)
    dr = Destination(DestKey("127.0.0.2", 80), Forward.ROUTE, 4)
    assert kernel_destinations(mark, {dr.key: dr}) == {
        DestKey("127.0.0.2", 0): Destination(DestKey("127.0.0.2", 0), Forward.ROUTE, 4)
    }
