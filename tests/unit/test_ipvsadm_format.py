"""ipvsadm text forms: -R lines rendered with the full option set, -S/-L parsed, stderr mapped."""

from __future__ import annotations

import pytest

from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.ipvsadm import interpret_batch
from ipvswm.kernel.ipvsadm_format import ParseError
from ipvswm.kernel.ipvsadm_format import merge_listing
from ipvswm.kernel.ipvsadm_format import parse_list
from ipvswm.kernel.ipvsadm_format import parse_save
from ipvswm.kernel.ipvsadm_format import render_line
from ipvswm.kernel.ipvsadm_format import validate_op
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

VIP = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
VIP6 = ServiceKey(Protocol.TCP, "2001:db8::1", 80)
MARK6 = ServiceKey(Protocol.FWMARK, "::", 42)
RS = DestKey("127.0.0.2", 80)

SAVE_EXAMPLE = """\
-A -t 10.0.0.1:80 -s rr
-a -t 10.0.0.1:80 -r 192.168.1.10:8080 -m -w 3
-a -t 10.0.0.1:80 -r 192.168.1.11:80 -g -w 1
-a -t 10.0.0.1:80 -r 192.168.1.12:80 -i -w 0 --tun-type ipip
-A -t 10.0.0.4:443 -s wrr -p 600 -M 255.255.255.0
-A -u 10.0.0.3:53 -s rr -o
-A -t [2001:db8::1]:80 -s rr
-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 2
-A -f 42 -s sh -b sh-fallback,sh-port
"""


@pytest.mark.parametrize(
    ("op", "line"),
    [
        (
            EditDestination(VIP, Destination(RS, Forward.MASQ, 10)),
            "-e -t 192.0.2.1:80 -r 127.0.0.2:80 -m -w 10",
        ),
        (
            AddDestination(VIP, Destination(RS, Forward.ROUTE, 0, upper=50, lower=5)),
            "-a -t 192.0.2.1:80 -r 127.0.0.2:80 -g -w 0 -x 50 -y 5",
        ),
        (
            AddDestination(VIP6, Destination(DestKey("2001:db8::2", 8080), Forward.TUNNEL, 1)),
            "-a -t [2001:db8::1]:80 -r [2001:db8::2]:8080 -i -w 1",
        ),
        (
            AddDestination(VIP, Destination(RS, Forward.TUNNEL, 2, tun_type="gue", tun_port=6080)),
            "-a -t 192.0.2.1:80 -r 127.0.0.2:80 -i -w 2 --tun-type gue --tun-port 6080",
        ),
        (
            EditDestination(VIP, Destination(RS, Forward.TUNNEL, 2, tun_type="gre")),
            "-e -t 192.0.2.1:80 -r 127.0.0.2:80 -i -w 2 --tun-type gre",
        ),
        (DeleteDestination(VIP, RS), "-d -t 192.0.2.1:80 -r 127.0.0.2:80"),
        (AddService(Service(VIP, "wrr")), "-A -t 192.0.2.1:80 -s wrr"),
        (
            EditService(Service(VIP, "wlc", persistent=300, netmask="255.255.255.0", pe="sip")),
            "-E -t 192.0.2.1:80 -s wlc -p 300 -M 255.255.255.0 --pe sip",
        ),
        (
            AddService(Service(ServiceKey(Protocol.UDP, "192.0.2.1", 53), "rr", one_packet=True)),
            "-A -u 192.0.2.1:53 -s rr -o",
        ),
        (
            AddService(Service(MARK6, "sh", flags=("sh-fallback", "sh-port"))),
            "-A -f 42 -6 -s sh -b sh-fallback,sh-port",
        ),
        (DeleteService(ServiceKey(Protocol.SCTP, "192.0.2.1", 9)), "-D --sctp-service 192.0.2.1:9"),
    ],
)
def test_render(op: Op, line: str) -> None:
    assert render_line(op) == line


def test_validate_catches_what_ipvsadm_would_reject() -> None:
    assert validate_op(EditDestination(VIP, Destination(RS, weight=65536))) == (
        "illegal weight specified"
    )
    assert validate_op(AddService(Service(ServiceKey(Protocol.TCP, "192.0.2.1", 0)))) == (
        "Zero port specified for non-persistent service"
    )
    assert validate_op(AddService(Service(VIP, persistent=0))) is not None
    assert validate_op(EditDestination(VIP, Destination(RS, weight=65535))) is None


def test_parse_save_example() -> None:
    table = parse_save(SAVE_EXAMPLE)
    vip = ServiceKey(Protocol.TCP, "10.0.0.1", 80)
    assert [str(k) for k in table.services] == [
        "tcp:10.0.0.1:80",
        "tcp:10.0.0.4:443",
        "udp:10.0.0.3:53",
        "tcp:[2001:db8::1]:80",
        "fwm:42",
    ]
    assert table.services[vip].service == Service(vip, "rr")
    assert list(table.services[vip].destinations.values()) == [
        Destination(DestKey("192.168.1.10", 8080), Forward.MASQ, 3),
        Destination(DestKey("192.168.1.11", 80), Forward.ROUTE, 1),
        Destination(DestKey("192.168.1.12", 80), Forward.TUNNEL, 0),
    ]
    persistent = table.services[ServiceKey(Protocol.TCP, "10.0.0.4", 443)].service
    assert (persistent.scheduler, persistent.persistent, persistent.netmask) == (
        "wrr",
        600,
        "255.255.255.0",
    )
    assert table.services[ServiceKey(Protocol.UDP, "10.0.0.3", 53)].service.one_packet
    mark = table.services[ServiceKey(Protocol.FWMARK, "0.0.0.0", 42)].service
    assert mark.flags == ("sh-fallback", "sh-port")
    v6 = table.services[ServiceKey(Protocol.TCP, "2001:db8::1", 80)]
    assert DestKey("2001:db8::10", 8080) in v6.destinations


def test_parse_save_every_option_form() -> None:
    text = (
        "-A -f 7 -6 -s wlc -p 360 -M 64 --pe sip\n"
        "-a -f 7 -6 -r [2001:db8::5]:0 -g -w 4 -x 10 -y 2\n"
    )
    table = parse_save(text)
    key = ServiceKey(Protocol.FWMARK, "::", 7)
    assert table.services[key].service == Service(key, "wlc", 360, "64", pe="sip")
    assert table.services[key].destinations[DestKey("2001:db8::5", 0)] == Destination(
        DestKey("2001:db8::5", 0), Forward.ROUTE, 4, 10, 2
    )


def test_parse_save_rejects_garbage() -> None:
    with pytest.raises(ParseError, match="line 2"):
        parse_save("-A -t 10.0.0.1:80 -s rr\n-X nonsense\n")


def test_parse_plain_and_threshold_listings_and_merge() -> None:
    plain = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.0.0.1:80 rr\n"
        "  -> 192.168.1.10:8080            Masq    3      7          9         \n"
        "FWM  42 IPv6 sh (sh-fallback,sh-port)\n"
        "  -> [2001:db8::10]:0             Local   2      1          0         \n"
    )
    listing = parse_list(plain)
    vip = ServiceKey(Protocol.TCP, "10.0.0.1", 80)
    entry = listing[(vip, DestKey("192.168.1.10", 8080))]
    assert (entry.active, entry.inactive, entry.weight, entry.forward) == (7, 9, 3, Forward.MASQ)
    assert listing[(ServiceKey(Protocol.FWMARK, "::", 42), DestKey("2001:db8::10", 0))].forward is (
        Forward.LOCAL
    )
    thresholds = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n"
        "  -> RemoteAddress:Port\n"
        "TCP  10.0.0.1:80 rr\n"
        "  -> 192.168.1.10:8080            100        10         7          9         \n"
    )
    merged = merge_listing(parse_save(SAVE_EXAMPLE), parse_list(thresholds))
    dest = merged.destination(vip, DestKey("192.168.1.10", 8080))
    assert dest is not None
    assert (dest.upper, dest.lower, dest.active, dest.inactive) == (100, 10, 7, 9)


A = AddService(Service(VIP, "wrr"))
E1 = EditDestination(VIP, Destination(RS, weight=1))
E2 = EditDestination(VIP, Destination(DestKey("127.0.0.3", 80), weight=1))
D = DeleteService(ServiceKey(Protocol.TCP, "192.0.2.9", 80))


def test_interpret_batch_maps_kernel_messages_in_order() -> None:
    errors = interpret_batch([A, E1, E2, D], 255, "No such destination\nNo such service\n")
    assert [(e.op, e.kind, e.message) for e in errors] == [
        (E1, FailureKind.KERNEL, "No such destination"),
        (D, FailureKind.KERNEL, "No such service"),
    ]
    assert interpret_batch([A, E1], 0, "") == []
    # Exit 0 is the last line's status only: an earlier refusal still shows on stderr.
    errors = interpret_batch([A, E1, E2], 0, "Service already exists\n")
    assert [(e.op, e.message) for e in errors] == [(A, "Service already exists")]


def test_interpret_batch_argument_abort_reports_the_rest() -> None:
    errors = interpret_batch([A, E1, E2], 2, "No such destination\nillegal weight specified\n")
    assert errors[0].op == E1
    assert errors[1].op is None
    assert errors[1].kind is FailureKind.ARGUMENT
    assert "illegal weight specified" in errors[1].message
    assert [(e.op, e.kind) for e in errors[2:]] == [(E2, FailureKind.ARGUMENT)]


def test_interpret_batch_unknown_message_with_failure_is_reported() -> None:
    errors = interpret_batch([A], 255, "Memory allocation problem\n")
    assert errors and errors[0].op is None


def test_parse_save_reads_the_tunnel_type() -> None:
    text = (
        "-A -t 10.0.0.1:80 -s rr\n"
        "-a -t 10.0.0.1:80 -r 192.168.1.12:80 -i -w 0 --tun-type ipip\n"
        "-a -t 10.0.0.1:80 -r 192.168.1.13:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum\n"
        "-a -t 10.0.0.1:80 -r 192.168.1.14:80 -i -w 1 --tun-type gre --tun-csum\n"
    )
    dests = parse_save(text).services[ServiceKey(Protocol.TCP, "10.0.0.1", 80)].destinations
    assert [(d.tun_type, d.tun_port) for d in dests.values()] == [
        (None, 0),  # ipip is the default: the model's None
        ("gue", 6080),
        ("gre", 0),
    ]
    bad = Destination(RS, Forward.TUNNEL, 1, tun_type="vxlan")
    assert validate_op(AddDestination(VIP, bad)) == "illegal tunnel type specified"
