"""The new check options in the config: values, escapes, kind rules and FILE:LINE errors."""

from __future__ import annotations

import pytest

from ipvswm.config.checkspec import substitute
from ipvswm.config.model import CheckKind
from ipvswm.config.model import Method
from ipvswm.config.parser import parse_text


def resolver(name: str) -> list[str]:
    raise OSError("no resolution in tests")


def vs_check(line: str):  # type: ignore[no-untyped-def]
    result = parse_text(line + "\n", "c.conf", resolver)
    assert result.errors == (), result.errors
    assert result.config is not None
    return result.config.services[0]


def errors(line: str) -> list[str]:
    result = parse_text("\n" + line + "\n", "c.conf", resolver)
    return [str(e) for e in result.errors]


def test_http_options_with_escapes() -> None:
    vs = vs_check(
        "! w 192.0.2.1:80 http://x/ method=HEAD,method=dr header=A:b%2Cc header=X-Y:%20z%25"
    )
    assert vs.method is Method.DR  # method= also still names the forwarding method
    assert vs.check.http_method == "HEAD"
    assert vs.check.headers == (("A", "b,c"), ("X-Y", "z%"))
    assert vs_check("! w 192.0.2.1:80 / body=all%20good http_method=get").check.body == "all good"


def test_tcp_send_and_expect() -> None:
    check = vs_check("! r 192.0.2.1:6379 tcp:// send=PING expect=+PONG").check
    assert (check.kind, check.send, check.banner) == (CheckKind.TCP, "PING", "+PONG")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("! w 192.0.2.1:80 / header=Bad", "option header: bad value 'Bad': expected Name:Value"),
        ("! w 192.0.2.1:80 / header=Connection:x", "header Connection is the check's own"),
        ("! w 192.0.2.1:80 / header=A:%0D%0AB:c", "a header value may not hold CR, LF or NUL"),
        ("! w 192.0.2.1:80 / body=50%", "'%' must start an escape"),
        ("! w 192.0.2.1:80 / method=POST", "option method: bad value 'POST'"),
        ("! w 192.0.2.1:80 / method=HEAD body=x", "option body needs method=GET"),
        ("! w 192.0.2.1:80 / send=x", "option send applies to tcp:// checks only"),
        ("! w 192.0.2.1:80 tcp:// body=x", "option body applies to http(s) checks only"),
        ("! w 192.0.2.1:80 tcp:// method=head", "option method=GET|HEAD applies to http(s)"),
        ("! w 192.0.2.1:80 tcp:// dynamic", "option dynamic applies to exec: checks only"),
        ("! w 192.0.2.1:80 / expect=ok", "option expect: bad value 'ok': expected HTTP statuses"),
    ],
)
def test_bad_options_are_errors_at_their_line(line: str, message: str) -> None:
    [error] = errors(line)
    assert error.startswith("c.conf:2: virtual service 'w': ")
    assert message in error


def test_checks_differing_only_in_new_options_get_their_own_checker() -> None:
    text = (
        "! a 192.0.2.1:80 / header=A:1\n"
        "! b 192.0.2.2:80 / header=A:2\n"
        "! c 192.0.2.3:80 / header=A:1\n"
        "! d 192.0.2.4:25 tcp:// expect=220\n"
        "! e 192.0.2.5:25 tcp://\n"
        "h 192.0.2.10:80 a=1 b=1 c=1\n"
        "m 192.0.2.11:25 d=1 e=1\n"
    )
    result = parse_text(text, "c.conf", resolver)
    assert result.config is not None
    targets = result.config.check_targets()
    assert len(targets) == 4  # a and c share one; b, d and e differ in header/expect
    assert sorted(t.spec.headers for t in targets if t.port == 80) == [(("A", "1"),), (("A", "2"),)]


def test_substitution() -> None:
    assert substitute("--to=%a:%p,%%a", "2001:db8::1", 53) == "--to=2001:db8::1:53,%a"


def test_dns_check_forms() -> None:
    check = vs_check("! ns 192.0.2.1:53 dns://WWW.Example.Test:5353?type=aaaa proto=udp").check
    assert (check.kind, check.url_host, check.url_port, check.dns_type) == (
        CheckKind.DNS,
        "www.example.test",
        5353,
        "AAAA",
    )
    assert check.dns_rcodes == ("NOERROR",)
    check = vs_check("! ns 192.0.2.1:53 dns://gone.test expect=nxdomain|NOERROR").check
    assert (check.dns_type, check.dns_rcodes) == ("A", ("NXDOMAIN", "NOERROR"))


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("dns://", "bad check 'dns://'"),
        ("dns://a/b", "expected dns://NAME[:PORT][?type=T]"),
        ("dns://a?type=AXFR", "the query may only be ?type=T"),
        ("dns://a?class=IN", "the query may only be ?type=T"),
        ("dns://a:0", "bad port '0'"),
        ("dns://a expect=200", "expected rcodes joined by '|'"),
        ("dns://a send=x", "option send applies to tcp:// checks only"),
    ],
)
def test_bad_dns_checks(check: str, message: str) -> None:
    [error] = errors(f"! w 192.0.2.1:53 {check}")
    assert error.startswith("c.conf:2: virtual service 'w': ")
    assert message in error


def test_exec_arguments_end_at_the_first_option() -> None:
    vs = vs_check(
        "! x 192.0.2.1:80 exec:/usr/lib/check -v --to=%a:%p a%2Cb rise%3D3 rise=2,dynamic"
    )
    assert vs.check.kind is CheckKind.EXEC
    assert vs.check.argv == ("/usr/lib/check", "-v", "--to=%a:%p", "a,b", "rise=3")
    assert (vs.check.rise, vs.check.dynamic) == (2, True)
    assert vs_check("! x 192.0.2.1:80 exec:/bin/true").check.argv == ("/bin/true",)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ("exec:bin/true", "exec: needs an absolute program path"),
        ("exec:/bin/true %x", "exec argument: '%' must start an escape"),
        ("exec:/bin/true expect=0", "an exec: check passes on exit 0"),
        ("exec:/bin/true dynamic=maybe", "option dynamic: bad value 'maybe'"),
    ],
)
def test_bad_exec_checks(check: str, message: str) -> None:
    [error] = errors(f"! w 192.0.2.1:80 {check}")
    assert error.startswith("c.conf:2: virtual service 'w': ")
    assert message in error


def test_exec_max_concurrent_key() -> None:
    result = parse_text("Check.Exec.MaxConcurrent=4\n", "c.conf", resolver)
    assert result.config is not None
    assert result.config.options.check_exec_max_concurrent == 4
    bad = parse_text("Check.Exec.MaxConcurrent=0\n", "c.conf", resolver)
    assert [str(e) for e in bad.errors] == [
        "c.conf:1: Check.Exec.MaxConcurrent: bad value '0': expected an integer 1..4096"
    ]
