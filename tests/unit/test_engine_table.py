"""Engine tests of the desired table and the sorry server (SPEC §4, §5)."""

from __future__ import annotations

from dataclasses import replace

from ipvswm.config.model import Config
from ipvswm.config.model import Method
from ipvswm.config.model import Proto
from ipvswm.engine.state import Phase
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceKey
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

SORRY = DestKey("198.51.100.99", 80)


def test_desired_table_services_destinations_and_methods() -> None:
    services = [
        vs("nat", port=80, rs_port=8080),
        vs("dr", address="192.0.2.2", port=443, method=Method.DR),
        vs("tun", address="2001:db8::1", port=53, method=Method.TUN, check=NO_CHECK),
    ]
    services[0] = replace(services[0], persistent=300)
    cfg = config(
        services,
        [
            host("a", "198.51.100.1", ("nat", 5), ("dr", 6), port=9000),
            host("b", "198.51.100.2", ("nat", 7)),
            host("c", "2001:db8::10", ("tun", 8), port=5353),
        ],
    )
    table = healthy(cfg).engine.desired_table()
    nat = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
    assert table.services[nat].service == Service(nat, scheduler="wrr", persistent=300)
    assert table.services[nat].destinations == {
        DestKey("198.51.100.1", 9000): Destination(DestKey("198.51.100.1", 9000), Forward.MASQ, 5),
        DestKey("198.51.100.2", 8080): Destination(DestKey("198.51.100.2", 8080), Forward.MASQ, 7),
    }
    # dr/tun: the kernel forces the VS port, so the desired table uses it too.
    dr = ServiceKey(Protocol.TCP, "192.0.2.2", 443)
    assert dict(table.services[dr].destinations) == {
        DestKey("198.51.100.1", 443): Destination(DestKey("198.51.100.1", 443), Forward.ROUTE, 6)
    }
    tun = ServiceKey(Protocol.TCP, "2001:db8::1", 53)
    assert dict(table.services[tun].destinations) == {
        DestKey("2001:db8::10", 53): Destination(DestKey("2001:db8::10", 53), Forward.TUNNEL, 8)
    }


def test_udp_service_key() -> None:
    service = replace(vs("dns", port=53, check=NO_CHECK), proto=Proto.UDP)
    d = Driver.start(config([service], []))
    assert d.engine.service_key("dns") == ServiceKey(Protocol.UDP, "192.0.2.1", 53)


def _sorry_config(**options: object) -> Config:
    return config(
        [vs("web", sorry_server="sorry")],
        [host("web1", "198.51.100.1", ("web", 100)), host("sorry", "198.51.100.99")],
        **options,
    )


def test_sorry_server_goes_in_and_out_with_alerts() -> None:
    d = healthy(_sorry_config())
    assert d.kernel_weights("web") == {DestKey("198.51.100.1", 80): 100}
    step = d.at(T0 + 10).check("web", "web1", False)
    assert d.kernel_weights("web") == {DestKey("198.51.100.1", 80): 0, SORRY: 1}
    assert [(a.vs, a.on, a.at, a.sorry_host) for a in step.alerts] == [
        ("web", True, T0 + 10, "sorry")
    ]
    assert step.alerts[0].subject() == "VS 'web' FAIL"
    assert step.changes.vss["web"] is not None and step.changes.vss["web"].sorry_on
    step = d.at(T0 + 25.5).check("web", "web1", True)
    assert d.kernel_weights("web") == {DestKey("198.51.100.1", 80): 100}
    assert [(a.on, a.after) for a in step.alerts] == [(False, 15.5)]
    assert step.alerts[0].subject() == "VS 'web' OK (after 15.5s)"
    assert step.touched == {d.engine.service_key("web")}


def test_vs_without_hosts_has_its_sorry_server() -> None:
    cfg = config([vs("empty", sorry_server="sorry")], [host("sorry", "198.51.100.99")])
    d = Driver.start(cfg)
    assert d.kernel_weights("empty") == {SORRY: 1}
    assert d.engine.snapshot().vss["empty"].sorry_on


def test_sorry_server_that_is_also_a_real_server_is_not_added_twice() -> None:
    cfg = config(
        [vs("web", sorry_server="web2")],
        [host("web1", "198.51.100.1", ("web", 100)), host("web2", "198.51.100.2", ("web", 50))],
    )
    d = healthy(cfg)
    d.at(T0 + 5).feed(SetHostOff("web1"))
    d.feed(SetHostOff("web2"))
    # web2 is disabled (pair weight 0) but carries the sorry server's weight 1.
    assert d.weight("web", "web2") == 0
    assert d.kernel_weights("web") == {
        DestKey("198.51.100.1", 80): 0,
        DestKey("198.51.100.2", 80): 1,
    }
    d.at(T0 + 6).feed(SetHostOn("web1"))
    d.at(T0 + 7).check("web", "web1", True)
    assert d.kernel_weights("web") == {
        DestKey("198.51.100.1", 80): 100,
        DestKey("198.51.100.2", 80): 0,
    }


def test_sorry_server_default_and_own_port() -> None:
    cfg = config(
        [vs("web"), vs("api", address="192.0.2.2", sorry_server="missing")],
        [host("web1", "198.51.100.1", ("web", 1)), host("dflt", "198.51.100.50", port=8081)],
        sorry_server_default="dflt",
    )
    d = Driver.start(cfg)
    d.at(T0 + 1).check("web", "web1", False)  # web's first round: decided now
    assert d.kernel_weights("web")[DestKey("198.51.100.50", 8081)] == 1
    assert d.kernel_weights("api") == {DestKey("198.51.100.50", 8081): 1}  # unknown tag: default


def test_fallback_ip_and_no_sorry_server() -> None:
    cfg = config(
        [vs("web", rs_port=8080)],
        [host("web1", "198.51.100.1", ("web", 1))],
        sorry_server_default="nosuchhost",
        sorry_server_fallback_ip="198.51.100.200",
        sorry_server_fallback_title="maintenance page",
    )
    d = healthy(cfg)
    step = d.at(T0 + 5).check("web", "web1", False)
    assert d.kernel_weights("web")[DestKey("198.51.100.200", 8080)] == 1
    assert step.alerts[0].sorry_host == "maintenance page"
    bare = healthy(config([vs("web")], [host("web1", "198.51.100.1", ("web", 1))]))
    step = bare.at(T0 + 5).check("web", "web1", False)
    assert bare.kernel_weights("web") == {DestKey("198.51.100.1", 80): 0}
    # Still an alert (the VS has no weight), with no sorry server named.
    assert [(a.on, a.sorry_host) for a in step.alerts] == [(True, "")]


def test_sorry_server_of_other_family_is_skipped() -> None:
    cfg = config(
        [vs("v6", address="2001:db8::1", sorry_server="v4")], [host("v4", "198.51.100.99")]
    )
    assert Driver.start(cfg).kernel_weights("v6") == {}


def test_sorry_switches_of_a_new_vs_are_logged_but_not_mailed_until_checked() -> None:
    d = Driver.start(_sorry_config())
    assert d.steps[0].alerts == ()  # cold: decided after the first round of checks
    # The checker never reported by the deadline (interval + timeouts): in, but no "FAIL" mail.
    first = d.tick(T0 + 9)
    assert first.changes.vss["web"] is not None and first.changes.vss["web"].sorry_on
    assert [(a.on, a.mail) for a in first.alerts] == [(True, False)]
    step = d.at(T0 + 10).check("web", "web1", True)
    assert [(a.on, a.mail) for a in step.alerts] == [(False, False)]  # no "OK" for it either
    step = d.at(T0 + 11).check("web", "web1", False)
    assert [(a.on, a.mail) for a in step.alerts] == [(True, True)]


def test_only_the_touched_service_is_rebuilt() -> None:
    cfg = config(
        [vs("a"), vs("b", address="192.0.2.2")],
        [host("h1", "198.51.100.1", ("a", 10)), host("h2", "198.51.100.2", ("b", 10))],
    )
    d = healthy(cfg)
    before = d.engine.desired_table()
    step = d.at(T0 + 5).check("a", "h1", False)
    after = d.engine.desired_table()
    key_a, key_b = d.engine.service_key("a"), d.engine.service_key("b")
    assert step.touched == {key_a}
    assert after.services[key_b] is before.services[key_b]  # cached, not rebuilt
    assert after.services[key_a] != before.services[key_a]
    assert d.phase("a", "h1") is Phase.AWAIT_PASS
