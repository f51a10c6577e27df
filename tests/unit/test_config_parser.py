"""The config parser on valid input: the exact model it produces (SPEC §2)."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import Proto
from ipvswm.config.model import VirtualService
from ipvswm.config.parser import ConfigError
from ipvswm.config.parser import parse_text
from ipvswm.config.parser import summarize

NAMES = {
    "web1.example": ["192.0.2.21"],
    "web2.example": ["2001:db8::22", "192.0.2.22"],  # IPv4 preferred even when listed second
    "v6only.example": ["2001:db8:0:0::23"],
    "vip.example": ["192.0.2.100"],
}


def resolver(name: str) -> list[str]:
    """A fake resolver: a fixed table, nothing else."""
    return NAMES.get(name, [])


def parse_ok(text: str) -> Config:
    result = parse_text(text, "t.conf", resolver)
    assert result.errors == ()
    assert result.config is not None
    return result.config


SEED = """\
# The seed's example, with names resolved by the injected resolver.
Check.Interval=2
! www 1.2.3.4:80 http://mysite.org/mycheck1 email=true,sorry_server=mysorryserver
! api vip.example:443:8443 https://api.example/health?full=1 expect=200-299|301,verify
web1 web1.example:8080 www=10 api=5
web2 web2.example www=20
mysorryserver 192.0.2.99
"""


def test_seed_example_gives_the_exact_model() -> None:
    config = parse_ok(SEED)
    options = GlobalOptions(check_interval=2.0)
    www = VirtualService(
        tag="www",
        address="1.2.3.4",
        port=80,
        rs_port=80,
        check=CheckSpec(kind=CheckKind.HTTP, url_host="mysite.org", path="/mycheck1", interval=2.0),
        email=True,
        sorry_server="mysorryserver",
        name="1.2.3.4",
        line=3,
    )
    api = VirtualService(
        tag="api",
        address="192.0.2.100",
        port=443,
        rs_port=8443,
        check=CheckSpec(
            kind=CheckKind.HTTPS,
            url_host="api.example",
            path="/health?full=1",
            expect=((200, 299), (301, 301)),
            verify=True,
            interval=2.0,
        ),
        name="vip.example",
        line=4,
    )
    hosts = (
        Host("web1", "192.0.2.21", 8080, (("www", 10), ("api", 5)), "web1.example", 5),
        Host("web2", "192.0.2.22", None, (("www", 20),), "web2.example", 6),
        Host("mysorryserver", "192.0.2.99", None, (), "192.0.2.99", 7),
    )
    assert config == Config("t.conf", options, (www, api), hosts)
    assert summarize(config) == "2 virtual services, 3 hosts, 3 pairs, 3 distinct checks"


def test_every_global_key_with_its_type() -> None:
    text = """\
Management.Socket.IP=0.0.0.0
Management.Socket.Port=9100
Management.Socket.Path=
Management.Fifo.Path=/run/wm.fifo
Management.Socket.Token=s3cret-s3cret-s3cret
Management.Socket.AllowUsers=alice, bob
Management.Socket.AllowGroups=ops
Config.Path=/etc/wm.conf
Config.CheckPeriod=1.5
Config.AutoCheck=off
Log.Path=/tmp/wm.log
Log.SysLog=yes
Log.SysLog.Facility=LOCAL3
Log.StdErr=true
Log.Level=10
Ramping.TriggerTime=0
Ramping.Duration=30s
DB=/tmp/wm.db
IPVSADM=/usr/sbin/ipvsadm
Email.SMTP=[2001:db8::25]:2525
Email.Headers.From=LB <lb@example.org>
Email.Headers.To=ops@example.org
Email.Headers.Reply-To=noc@example.org
SorryServer.Default=sorry
SorryServer.Fallback.Host=sorry.example
SorryServer.Fallback.IP=192.0.2.200
SorryServer.Fallback.Title=Down for maintenance
IPVS.Backend=dry-run
IPVS.Scheduler=wlc
IPVS.Method=DR
IPVS.ResyncPeriod=60
Check.Interval=.5
Check.Timeout.Connect=0.25
Check.Timeout.Response=2
Check.Rise=3
Check.Fall=2
Metrics.Listen=127.0.0.1:9119
"""
    assert parse_ok(text).options == GlobalOptions(
        management_socket_ip="0.0.0.0",
        management_socket_port=9100,
        management_socket_path="",
        management_fifo_path="/run/wm.fifo",
        management_socket_token="s3cret-s3cret-s3cret",
        management_socket_allow_users=("alice", "bob"),
        management_socket_allow_groups=("ops",),
        config_path="/etc/wm.conf",
        config_check_period=1.5,
        config_auto_check=False,
        log_path="/tmp/wm.log",
        log_syslog=True,
        log_syslog_facility="local3",
        log_stderr=True,
        log_level=10,
        ramping_trigger_time=0.0,
        ramping_duration=30.0,
        db="/tmp/wm.db",
        ipvsadm="/usr/sbin/ipvsadm",
        email_smtp="[2001:db8::25]:2525",
        email_from="LB <lb@example.org>",
        email_to="ops@example.org",
        email_reply_to="noc@example.org",
        sorry_server_default="sorry",
        sorry_server_fallback_host="sorry.example",
        sorry_server_fallback_ip="192.0.2.200",
        sorry_server_fallback_title="Down for maintenance",
        ipvs_backend="dry-run",
        ipvs_scheduler="wlc",
        ipvs_method=Method.DR,
        ipvs_resync_period=60.0,
        check_interval=0.5,
        check_timeout_connect=0.25,
        check_timeout_response=2.0,
        check_rise=3,
        check_fall=2,
        metrics_listen="127.0.0.1:9119",
    )


def test_empty_file_gives_defaults() -> None:
    assert parse_ok("") == Config("t.conf", GlobalOptions(), (), ())


def test_global_keys_are_case_insensitive_and_spaces_around_equals_allowed() -> None:
    options = parse_ok("check.interval = 7\nLOG.LEVEL=0\n").options
    assert (options.check_interval, options.log_level) == (7.0, 0)


def test_globals_apply_to_every_vs_whatever_the_line_order() -> None:
    text = """\
! a 192.0.2.1:80 /
IPVS.Scheduler=sh
IPVS.Method=tun
! b 192.0.2.2:80 / interval=9,scheduler=rr,method=nat,rise=4
Check.Interval=3
Check.Rise=2
Check.Fall=5
Check.Timeout.Connect=0.5
Check.Timeout.Response=4
"""
    a, b = parse_ok(text).services
    assert (a.scheduler, a.method) == ("sh", Method.TUN)
    assert (a.check.interval, a.check.rise, a.check.fall) == (3.0, 2, 5)
    assert (a.check.connect_timeout, a.check.response_timeout) == (0.5, 4.0)
    assert (b.scheduler, b.method) == ("rr", Method.NAT)
    assert (b.check.interval, b.check.rise, b.check.fall) == (9.0, 4, 5)


def test_a_host_may_name_a_vs_defined_below_it() -> None:
    config = parse_ok("web 192.0.2.5 www=3\n! www 192.0.2.1:80 -\n")
    assert config.hosts[0].weights == (("www", 3),)


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ("http://mysite.org/mycheck1", CheckSpec(CheckKind.HTTP, "mysite.org", None, "/mycheck1")),
        ("HTTP://Mysite.org:8080", CheckSpec(CheckKind.HTTP, "Mysite.org", 8080, "/")),
        ("http://x.org?q=1&r=2", CheckSpec(CheckKind.HTTP, "x.org", None, "/?q=1&r=2")),
        ("http://x/a#b", CheckSpec(CheckKind.HTTP, "x", None, "/a")),
        ("http://x/a;b", CheckSpec(CheckKind.HTTP, "x", None, "/a;b")),
        ("https://[2001:db8::1]:8443/h", CheckSpec(CheckKind.HTTPS, "[2001:db8::1]", 8443, "/h")),
        ("https://192.0.2.9/", CheckSpec(CheckKind.HTTPS, "192.0.2.9", None, "/")),
        ("tcp://", CheckSpec(CheckKind.TCP)),
        ("tcp://:8081", CheckSpec(CheckKind.TCP, url_port=8081)),
        ("/status?x=1", CheckSpec(CheckKind.HTTP, path="/status?x=1")),
        ("-", CheckSpec(CheckKind.NONE)),
    ],
)
def test_check_forms(check: str, expected: CheckSpec) -> None:
    (vs,) = parse_ok(f"! v 192.0.2.1:80 {check}\n").services
    assert vs.check == expected


def test_url_name_is_not_resolved() -> None:
    calls: list[str] = []

    def recording(name: str) -> list[str]:
        calls.append(name)
        return []

    result = parse_text("! v 192.0.2.1:80 http://unresolvable.example/x\n", "t", recording)
    assert result.errors == ()
    assert calls == []


def test_vs_options_all_keys() -> None:
    text = (
        "! d [2001:DB8::0:1]:53:5353 tcp://:53 PROTO=udp, scheduler=mh,method=dr,"
        "persistent=2678400,interval=1,connect_timeout=0.2,timeout=0.7,rise=2,fall=3,"
        "expect=204,verify=no,email=0 sorry_server=s\n"
        "s 192.0.2.8\n"
    )
    (vs,) = parse_ok(text).services
    assert vs == VirtualService(
        tag="d",
        address="2001:db8::1",
        port=53,
        rs_port=5353,
        check=CheckSpec(
            kind=CheckKind.TCP,
            url_port=53,
            banner="204",  # on a tcp check, expect= is the prefix of the server's first bytes
            verify=False,
            interval=1.0,
            connect_timeout=0.2,
            response_timeout=0.7,
            rise=2,
            fall=3,
        ),
        proto=Proto.UDP,
        email=False,
        sorry_server="s",
        scheduler="mh",
        method=Method.DR,
        persistent=2678400,
        name="2001:DB8::0:1",
        line=1,
    )


def test_bare_flags_and_bang_followed_by_spaces() -> None:
    (vs,) = parse_ok("!   v 192.0.2.1:80 https://x/ email,verify\n").services
    assert (vs.tag, vs.email, vs.check.verify) == ("v", True, True)


def test_comments_blank_lines_and_whitespace() -> None:
    text = (
        "   # a comment\n"
        "; another\n"
        "\n"
        "\t! v 192.0.2.1:80 http://x/a#b;c ; trailing comment\r\n"
        "h 192.0.2.2 v=1 # comment with v=2\n"
        "Log.Path=/var/log/x;y   # ';' inside a value survives\n"
    )
    config = parse_ok(text)
    assert config.services[0].check.path == "/a"
    assert config.services[0].line == 4
    assert config.hosts[0].weights == (("v", 1),)
    assert config.options.log_path == "/var/log/x;y"


def test_host_forms() -> None:
    text = """\
! v 192.0.2.1:80 -
! v6 [2001:db8::1]:80 -
a 192.0.2.10:8080 v=0
b [2001:db8::0:10]:81 v6=65535
c [2001:db8::10] v6=007
d v6only.example v6=1,
e 192.0.2.10:8081
f 192.0.2.10
"""
    hosts = parse_ok(text).hosts
    assert [(h.address, h.port, h.weights) for h in hosts] == [
        ("192.0.2.10", 8080, (("v", 0),)),
        ("2001:db8::10", 81, (("v6", 65535),)),
        ("2001:db8::10", None, (("v6", 7),)),
        ("2001:db8::23", None, (("v6", 1),)),
        ("192.0.2.10", 8081, ()),
        ("192.0.2.10", None, ()),
    ]
    assert hosts[3].name == "v6only.example"


def test_sorry_server_naming_no_host_is_accepted(caplog: pytest.LogCaptureFixture) -> None:
    text = "! www 192.0.2.1:80 / sorry_server=ghost\nweb1 192.0.2.10 www=1\n"
    with caplog.at_level(logging.WARNING, "ipvswm.config.parser"):
        config = parse_ok(text)
    vs = config.service("www")
    assert vs is not None
    assert vs.sorry_server == "ghost"
    assert [r.getMessage() for r in caplog.records] == [
        "t.conf:1: virtual service 'www': sorry_server 'ghost' is not a host; "
        "the service has no sorry server (neither SorryServer.Default nor .Fallback.IP is set)"
    ]


def test_a_vs_and_a_host_may_share_a_tag() -> None:
    config = parse_ok("! www 192.0.2.1:80 -\nwww 192.0.2.2 www=1\n")
    assert config.service("www") is not None
    assert config.host("www") is not None


def test_same_address_different_proto_or_port_is_fine() -> None:
    text = "! a 192.0.2.1:53 - proto=udp\n! b 192.0.2.1:53 -\n! c 192.0.2.1:54 -\n"
    assert len(parse_ok(text).services) == 3


def test_pairs_use_effective_port_and_check_port() -> None:
    config = parse_ok(
        "! v 192.0.2.1:80:8080 http://n:81/\n! t 192.0.2.1:443 tcp://\n"
        "a 192.0.2.10 v=1 t=2\nb 192.0.2.11:9000 v=3\n"
    )
    got = [(p.vs, p.host, p.port, p.check.port if p.check else None) for p in config.pairs()]
    assert got == [("v", "a", 8080, 81), ("t", "a", 443, 443), ("v", "b", 9000, 81)]


def test_config_error_str() -> None:
    assert str(ConfigError("www.conf", 12, "boom")) == "www.conf:12: boom"


def test_result_is_frozen() -> None:
    result = parse_text("", "t", resolver)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.config = None  # type: ignore[misc]
