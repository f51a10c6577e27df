"""The config parser on invalid input: every error, its exact line and a stable message."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipvswm.config.options import VS_OPTIONS
from ipvswm.config.parser import ConfigError
from ipvswm.config.parser import ParseResult
from ipvswm.config.parser import parse_file
from ipvswm.config.parser import parse_text


def resolver(name: str) -> list[str]:
    """A fake resolver knowing one name."""
    if name == "known.example":
        return ["192.0.2.50"]
    raise OSError("Name or service not known")


def errors_of(text: str) -> list[tuple[int, str]]:
    result = parse_text(text, "www.conf", resolver)
    assert result.config is None
    assert result.errors
    assert all(e.file == "www.conf" for e in result.errors)
    return [(e.line, e.message) for e in result.errors]


def only_error(text: str) -> tuple[int, str]:
    errors = errors_of(text)
    assert len(errors) == 1, errors
    return errors[0]


VS = "! www 192.0.2.1:80 /\n! api 192.0.2.2:80 /\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # Globals.
        ("Check.Intervall=5\n", 1, "unknown key 'Check.Intervall' (did you mean Check.Interval?)"),
        ("\nCheck.Interval=fast\n", 2, "Check.Interval: bad value 'fast': expected seconds > 0"),
        ("Check.Interval=0\n", 1, "expected seconds > 0"),
        ("Check.Interval=1e3\n", 1, "expected seconds > 0"),
        ("Check.Interval=inf\n", 1, "expected seconds > 0"),
        ("Check.Interval=-1\n", 1, "expected seconds > 0"),
        ("Check.Interval=\n", 1, "Check.Interval: bad value ''"),
        ("Ramping.Duration=-1\n", 1, "expected seconds >= 0"),
        ("Check.Interval=5\n\nCheck.Interval=6\n", 3, "Check.Interval set twice (first at line 1)"),
        ("check.interval=5\nCheck.Interval=6\n", 2, "Check.Interval set twice (first at line 1)"),
        ("Config.AutoCheck=maybe\n", 1, "expected a boolean"),
        ("Log.Level=-1\n", 1, "Log.Level: bad value '-1': expected an integer >= 0"),
        ("Check.Rise=0\n", 1, "Check.Rise: bad value '0': expected an integer >= 1"),
        ("Management.Socket.Port=-1\n", 1, "expected an integer 0..65535"),
        ("Management.Socket.Port=65536\n", 1, "expected an integer 0..65535"),
        ("Management.Socket.Port=http\n", 1, "expected an integer 0..65535"),
        ("Management.Socket.IP=localhost\n", 1, "expected an IP address"),
        ("IPVS.Method=masq\n", 1, "IPVS.Method: bad value 'masq': expected nat, dr or tun"),
        ("IPVS.Backend=kernel\n", 1, "expected ipvsadm, netlink or dry-run"),
        ("IPVS.Scheduler=WRR\n", 1, "expected a scheduler name"),
        ("Metrics.Listen=9119\n", 1, "expected HOST:PORT or nothing"),
        ("Metrics.Listen=127.0.0.1:0\n", 1, "expected an integer 1..65535"),
        ("Email.SMTP=mail:25:26\n", 1, "expected HOST[:PORT] or nothing"),
        ("Log.SysLog.Facility=nope\n", 1, "expected a syslog facility"),
        ("SorryServer.Fallback.IP=sorry\n", 1, "expected an IP address or nothing"),
        # Virtual services.
        (VS + "! www 192.0.2.3:80 /\n", 3, "duplicate virtual service tag 'www' (first at line 1)"),
        (
            VS + "! web 192.0.2.1:80 -\n",
            3,
            "virtual service 'web': tcp 192.0.2.1:80 is already used by virtual service 'www'"
            " (line 1)",
        ),
        (
            "! a [2001:db8::1]:53 - proto=udp\n! b [2001:db8:0::1]:53 - proto=UDP\n",
            2,
            "udp [2001:db8::1]:53 is already used by virtual service 'a' (line 1)",
        ),
        ("! w 192.0.2.1:0 /\n", 1, "virtual service 'w': bad port '0': expected 1..65535"),
        ("! w 192.0.2.1:65536 /\n", 1, "bad port '65536': expected 1..65535"),
        ("! w 192.0.2.1:http /\n", 1, "bad port 'http': expected 1..65535"),
        ("! w 192.0.2.1:80:0 /\n", 1, "bad port '0'"),
        ("! w 192.0.2.1 /\n", 1, "expected ADDR:PORT[:RSPORT]"),
        ("! w 192.0.2.1: /\n", 1, "missing port"),
        ("! w 192.0.2.1:1:2:3 /\n", 1, "must be written in brackets"),
        ("! w 2001:db8::1:80 /\n", 1, "an IPv6 address must be written in brackets"),
        ("! w [2001:db8::1:80 /\n", 1, "missing ']'"),
        ("! w [192.0.2.1]:80 /\n", 1, "bad IPv6 address '192.0.2.1'"),
        ("! w 192.0.2.256:80 /\n", 1, "bad IPv4 address '192.0.2.256'"),
        ("! w bad_host!:80 /\n", 1, "bad address 'bad_host!'"),
        (
            "! w nosuch.example:80 /\n",
            1,
            "virtual service 'w': cannot resolve host name 'nosuch.example': Name or service",
        ),
        ("! w 192.0.2.1:80 / colour=blue\n", 1, "virtual service 'w': unknown option 'colour'"),
        ("! w 192.0.2.1:80 / email=1,EMAIL=0\n", 1, "option 'email' given twice"),
        ("! w 192.0.2.1:80 / proto\n", 1, "option 'proto' needs a value"),
        ("! w 192.0.2.1:80 / proto=sctp\n", 1, "option proto: bad value 'sctp': expected tcp or"),
        ("! w 192.0.2.1:80 / scheduler=w-rr\n", 1, "option scheduler: bad value 'w-rr'"),
        ("! w 192.0.2.1:80 / method=fullnat\n", 1, "expected nat, dr or tun"),
        ("! w 192.0.2.1:80 / persistent=0\n", 1, "expected an integer 1..2678400"),
        ("! w 192.0.2.1:80 / persistent=2678401\n", 1, "expected an integer 1..2678400"),
        ("! w 192.0.2.1:80 / interval=0\n", 1, "option interval: bad value '0'"),
        ("! w 192.0.2.1:80 / timeout=x\n", 1, "option timeout: bad value 'x'"),
        ("! w 192.0.2.1:80 / rise=0\n", 1, "option rise: bad value '0'"),
        ("! w 192.0.2.1:80 / fall=1.5\n", 1, "option fall: bad value '1.5'"),
        ("! w 192.0.2.1:80 / expect=99\n", 1, "option expect: bad value '99'"),
        ("! w 192.0.2.1:80 / expect=600\n", 1, "option expect: bad value '600'"),
        ("! w 192.0.2.1:80 / expect=299-200\n", 1, "range 299-200 is backwards"),
        ("! w 192.0.2.1:80 / expect=200|\n", 1, "option expect: bad value '200|'"),
        ("! w 192.0.2.1:80 / verify=perhaps\n", 1, "option verify: bad value 'perhaps'"),
        ("! w 192.0.2.1:80 / sorry_server=a@b\n", 1, "option sorry_server: bad value 'a@b'"),
        ("! w 192.0.2.1:80 ftp://x/\n", 1, "unknown scheme 'ftp'"),
        ("! w 192.0.2.1:80 check\n", 1, "bad check 'check': expected http://NAME[:PORT]/PATH"),
        ("! w 192.0.2.1:80 http:///x\n", 1, "missing address"),
        ("! w 192.0.2.1:80 http://x:0/\n", 1, "bad port '0'"),
        ("! w 192.0.2.1:80 http://u@x/\n", 1, "bad host name 'u@x'"),
        ("! w 192.0.2.1:80 tcp://x:80\n", 1, "a tcp check names no host"),
        ("! w 192.0.2.1:80 tcp://:99999\n", 1, "bad port '99999'"),
        ("! w 192.0.2.1:80\n", 1, "virtual service 'w': missing CHECK"),
        ("!\n", 1, "malformed virtual service line: expected '! TAG ADDR:PORT"),
        ("! w/x 192.0.2.1:80 /\n", 1, "bad virtual service tag 'w/x'"),
        # Hosts.
        (VS + "web1 192.0.2.10\nweb1 192.0.2.11\n", 4, "host tag 'web1' (first at line 3"),
        (
            VS + "web1 192.0.2.10:8080\nweb2 192.0.2.10:8080\n",
            4,
            "host 'web2': address 192.0.2.10:8080 is already used by host 'web1' (line 3)",
        ),
        (
            VS + "web1 [2001:db8::a]\nweb2 [2001:db8:0::a]\n",
            4,
            "host 'web2': address [2001:db8::a] is already used by host 'web1' (line 3)",
        ),
        (VS + "web1 192.0.2.10:0 www=1\n", 3, "host 'web1': bad port '0': expected 1..65535"),
        (VS + "web1 192.0.2.10:8080:8081\n", 3, "expected HOST[:PORT]"),
        (VS + "web1 nosuch.example www=1\n", 3, "cannot resolve host name 'nosuch.example'"),
        (
            VS + "web3 192.0.2.10 wwww=1\n",
            3,
            "host 'web3': unknown virtual service 'wwww' (known: www, api)",
        ),
        (VS + "web1 192.0.2.10 www=1 www=2\n", 3, "'web1': virtual service 'www' listed twice"),
        (VS + "web1 192.0.2.10 www\n", 3, "'web1': malformed pair 'www': expected VSTAG=WEIGHT"),
        (VS + "web1 192.0.2.10 www=\n", 3, "malformed pair 'www=': expected VSTAG=WEIGHT"),
        (VS + "web1 192.0.2.10 =5\n", 3, "malformed pair '=5': expected VSTAG=WEIGHT"),
        (
            VS + "web1 192.0.2.10 www=65536\n",
            3,
            "host 'web1': bad weight '65536' for virtual service 'www': expected an integer 0..6",
        ),
        (VS + "web1 192.0.2.10 www=-1\n", 3, "bad weight '-1'"),
        (VS + "web1 192.0.2.10 www=0x10\n", 3, "bad weight '0x10'"),
        (VS + "web1 192.0.2.10 www=1.5\n", 3, "bad weight '1.5'"),
        (
            "! www6 [2001:db8::1]:80 /\n! www 192.0.2.1:80 /\nweb2 [2001:db8::10] www6=1 www=2\n",
            3,
            "host 'web2' [2001:db8::10] is IPv6 but vs 'www' is IPv4",
        ),
        (
            "! www6 [2001:db8::1]:80 /\nweb1 192.0.2.10 www6=1\n",
            2,
            "host 'web1' 192.0.2.10 is IPv4 but vs 'www6' is IPv6",
        ),
        (
            "! www6 [2001:db8::1]:80 /\nweb1 known.example www6=1\n",
            2,
            "host 'web1' 192.0.2.50 is IPv4 but vs 'www6' is IPv6",
        ),
        (VS + "web#1 192.0.2.10\n", 3, "bad host tag 'web#1'"),
        # Malformed lines.
        ("junk\n", 1, "malformed line 'junk': expected 'Key=value',"),
        ("Log.Path=/tmp/\x00x\n", 1, "line contains control character '\\x00' (column 15)"),
        ("Log.Path=/tmp/\ufffd\n", 1, "line contains invalid UTF-8"),
    ],
)
def test_each_error_with_its_line(text: str, line: int, fragment: str) -> None:
    got_line, message = only_error(text)
    assert got_line == line
    assert fragment in message


def test_unknown_vs_list_is_bounded() -> None:
    text = "".join(f"! v{i} 192.0.2.1:{i + 1} -\n" for i in range(50)) + "h 192.0.2.9 x=1\n"
    line, message = only_error(text)
    assert line == 51
    assert message.endswith("(known: v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, ... (50 in all))")


def test_several_errors_are_all_reported_in_line_order() -> None:
    text = """\
! www 192.0.2.1:80 / sorry_server=ghost,bogus=1
Check.Interval=fast
! www 192.0.2.2:80 /
web1 192.0.2.10 www=1 api=2
Bogus.Key=1
web1 192.0.2.11 www=2
junk
"""
    result = parse_text(text, "www.conf", resolver)
    assert [str(e) for e in result.errors] == [
        "www.conf:1: virtual service 'www': unknown option 'bogus' (known: "
        + ", ".join(VS_OPTIONS)  # every VS option, in table order
        + ")",
        "www.conf:2: Check.Interval: bad value 'fast': expected seconds > 0 (e.g. 5 or 2.5)",
        "www.conf:3: duplicate virtual service tag 'www' (first at line 1)",
        "www.conf:4: host 'web1': unknown virtual service 'api' (known: www)",
        "www.conf:5: unknown key 'Bogus.Key'",
        "www.conf:6: duplicate host tag 'web1' (first at line 4)",
        "www.conf:7: malformed line 'junk': expected 'Key=value', "
        "'! TAG ADDR:PORT[:RSPORT] CHECK [OPTIONS]' or 'TAG HOST[:PORT] [VSTAG=WEIGHT ...]'",
    ]


def test_one_line_reports_each_of_its_problems() -> None:
    errors = errors_of("! w 192.0.2.1:0 ftp:// a=1,email=x\n")
    assert [line for line, _ in errors] == [1, 1, 1, 1]
    assert "bad port '0'" in errors[0][1]
    assert "unknown scheme 'ftp'" in errors[1][1]
    assert "unknown option 'a'" in errors[2][1]
    assert "option email: bad value 'x'" in errors[3][1]


def test_a_broken_vs_line_causes_no_follow_on_errors() -> None:
    text = "! www 192.0.2.1:0 /\nweb1 192.0.2.10 www=1\n! s 192.0.2.2:80 / sorry_server=web2\n"
    text += "web2 192.0.2.11:0\n"
    assert [line for line, _ in errors_of(text)] == [1, 4]


def test_huge_values_are_cut_short_in_messages() -> None:
    _, message = only_error("Log.Level=" + "x" * 100_000 + "\n")
    assert len(message) < 200


def test_unresolvable_name_is_resolved_once() -> None:
    calls: list[str] = []

    def counting(name: str) -> list[str]:
        calls.append(name)
        return []

    text = "! a gone.example:80 /\n! b gone.example:81 /\n"
    result = parse_text(text, "t", counting)
    assert [(e.line, e.message) for e in result.errors] == [
        (1, "virtual service 'a': cannot resolve host name 'gone.example': no address found"),
        (2, "virtual service 'b': cannot resolve host name 'gone.example': no address found"),
    ]
    assert calls == ["gone.example"]


def test_unreadable_file_is_one_error_at_line_0(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.conf")
    result = parse_file(missing, resolver)
    assert result == ParseResult(
        None, (ConfigError(missing, 0, "cannot read config file: No such file or directory"),)
    )
    directory = parse_file(str(tmp_path), resolver)
    assert [e.line for e in directory.errors] == [0]
    assert directory.config is None


def test_nul_bytes_and_invalid_utf8_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.conf"
    path.write_bytes(b"# caf\xe9 in a comment is fine\n! w 192.0.2.1:80 /\x00x\nh \xff\xfe 1\n")
    result = parse_file(str(path), resolver)
    assert [(e.line, e.message.split(" (")[0]) for e in result.errors] == [
        (2, "line contains control character '\\x00'"),
        (3, "line contains invalid UTF-8"),
    ]


def test_binary_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.conf"
    path.write_bytes(bytes(range(256)) * 64)
    result = parse_file(str(path), resolver)
    assert result.config is None
    assert result.errors


def test_100k_lines_parse() -> None:
    lines = ["# generated", "Check.Interval=2"]
    lines += [f"! v{i} 192.0.2.{i % 250 + 1}:{1000 + i} /health" for i in range(1000)]
    lines += [
        f"h{i} 10.{i // 65536}.{i // 256 % 256}.{i % 256} v{i % 1000}=1 v{(i + 7) % 1000}=2"
        for i in range(99_000)
    ]
    text = "\n".join(lines) + "\n"
    result = parse_text(text, "big.conf", resolver)  # its speed: bench/config_parse.py
    assert result.errors == ()
    assert result.config is not None
    assert len(result.config.hosts) == 99_000

    broken = text + "junk\n"
    errors = parse_text(broken, "big.conf", resolver).errors
    assert [(e.line, e.message[:14]) for e in errors] == [(len(lines) + 1, "malformed line")]
