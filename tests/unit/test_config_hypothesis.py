"""Property tests: generated configs round-trip to their model; no input makes the parser raise."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import Proto
from ipvswm.config.model import VirtualService
from ipvswm.config.options import GLOBALS_BY_LOWER
from ipvswm.config.parser import ParseResult
from ipvswm.config.parser import parse_file
from ipvswm.config.parser import parse_text

# Names resolve into 198.51.100.0/24 and 2001:db8:ffff::/48; generated literals never go there.
NAMES = {
    "lb.example": ["198.51.100.1"],
    "web.example": ["2001:db8:ffff::1", "198.51.100.2"],
    "v6.example": ["2001:db8:ffff::3"],
}


def resolver(name: str) -> list[str]:
    """A fake resolver: the NAMES table only."""
    return NAMES.get(name, [])


Draw = Any  # hypothesis' draw function
TAGS = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True)
# A host line that starts with a global key (`DB 192.0.2.1`) is the key without its '=', an
# error by design (parser: "DB needs '='"), so a host tag is never one.
HOST_TAGS = TAGS.filter(lambda tag: tag.lower() not in GLOBALS_BY_LOWER)
WORDS = st.from_regex(r"[A-Za-z0-9/._@<>-]{1,10}( [A-Za-z0-9/._@<>-]{1,10}){0,2}", fullmatch=True)
MILLIS = st.integers(1, 100_000).map(lambda ms: ms / 1000)
BOOLS = st.booleans()
TRUE_TEXT = ("1", "true", "YES", "on")
FALSE_TEXT = ("0", "False", "no", "OFF")


def bool_text(draw: Draw, value: bool) -> str:
    text: str = draw(st.sampled_from(TRUE_TEXT if value else FALSE_TEXT))
    return text


@st.composite
def global_values(draw: Draw) -> tuple[list[str], dict[str, Any]]:
    """Some global keys with values: (rendered lines, GlobalOptions fields)."""
    lines: list[str] = []
    fields: dict[str, Any] = {}
    texts: dict[str, tuple[str, Any, str]] = {
        "management_socket_port": (
            "Management.Socket.Port",
            p := draw(st.integers(0, 65535)),
            str(p),
        ),
        "config_auto_check": ("Config.AutoCheck", b := draw(BOOLS), bool_text(draw, b)),
        "log_level": ("Log.Level", n := draw(st.integers(0, 20)), str(n)),
        "log_path": ("Log.Path", w := draw(WORDS), w),
        "email_from": ("Email.Headers.From", w2 := draw(WORDS), w2),
        "sorry_server_fallback_title": ("SorryServer.Fallback.Title", w3 := draw(WORDS), w3),
        "ramping_duration": ("Ramping.Duration", d := draw(st.integers(0, 600)), f"{d}"),
        "ipvs_scheduler": ("IPVS.Scheduler", s := draw(st.sampled_from(["wrr", "wlc", "sh"])), s),
        "ipvs_method": ("IPVS.Method", m := draw(st.sampled_from(Method)), m.value.upper()),
        "ipvs_backend": ("IPVS.Backend", k := draw(st.sampled_from(["netlink", "dry-run"])), k),
        "check_interval": ("Check.Interval", i := draw(MILLIS), repr(i)),
        "check_timeout_connect": ("Check.Timeout.Connect", c := draw(MILLIS), repr(c)),
        "check_timeout_response": ("Check.Timeout.Response", r := draw(MILLIS), repr(r)),
        "check_rise": ("Check.Rise", ri := draw(st.integers(1, 9)), str(ri)),
        "check_fall": ("Check.Fall", fa := draw(st.integers(1, 9)), str(fa)),
        "metrics_listen": (
            "Metrics.Listen",
            ml := f"127.0.0.1:{draw(st.integers(1, 65535))}",
            ml,
        ),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(texts)), unique=True))
    for field in chosen:
        key, value, text = texts[field]
        if field == "ramping_duration":
            value = float(value)
        key = draw(st.sampled_from([key, key.lower()]))
        lines.append(f"{key}{draw(st.sampled_from(['=', ' = ', '= ']))}{text}")
        fields[field] = value
    return lines, fields


@st.composite
def addresses(draw: Draw, port: bool) -> tuple[str, str, str]:
    """(as written in the file, normalised address, name) of an IPv4, IPv6 or resolved name."""
    kind = draw(st.sampled_from(["v4", "v6", "name"]))
    if kind == "v4":
        ip = str(ipaddress.IPv4Address(0xC0000200 + draw(st.integers(0, 255))))
        return ip, ip, ip
    if kind == "v6":
        value = ipaddress.IPv6Address(0x20010DB8 << 96 | draw(st.integers(0, 2**64)))
        written = draw(st.sampled_from([value.compressed, value.exploded]))
        return f"[{written}]", value.compressed, written
    name = draw(st.sampled_from(sorted(NAMES)))
    found = [ipaddress.ip_address(a) for a in NAMES[name]]
    best = next((a for a in found if a.version == 4), found[0])
    return name, best.compressed, name


@st.composite
def checks(draw: Draw) -> tuple[str, CheckSpec]:
    """(CHECK column, the spec's URL part)."""
    # exec: takes arguments (its own tests cover it); the other kinds are generated here.
    kind = draw(st.sampled_from([k for k in CheckKind if k is not CheckKind.EXEC]))
    if kind is CheckKind.NONE:
        return "-", CheckSpec(CheckKind.NONE)
    port = draw(st.none() | st.integers(1, 65535))
    port_text = f":{port}" if port is not None else ""
    if kind is CheckKind.TCP:
        return f"tcp://{port_text}", CheckSpec(CheckKind.TCP, url_port=port)
    if kind is CheckKind.DNS:
        qname = draw(
            st.from_regex(r"[a-z]([a-z0-9-]{0,7}[a-z0-9])?(\.[a-z]{2,5}){0,2}", fullmatch=True)
        )
        qtype = draw(st.none() | st.sampled_from(["A", "aaaa", "MX", "TXT"]))
        query = f"?type={qtype}" if qtype is not None else ""
        spec = CheckSpec(
            CheckKind.DNS, url_host=qname, url_port=port, dns_type=(qtype or "A").upper()
        )
        return f"dns://{qname}{port_text}{query}", spec
    path = draw(
        st.from_regex(r"/[A-Za-z0-9._~/%-]{0,12}(\?[a-z]{1,4}=[0-9]{1,3})?", fullmatch=True)
    )
    if kind is CheckKind.HTTP and port is None and draw(BOOLS):
        return path, CheckSpec(CheckKind.HTTP, path=path)
    name = draw(st.from_regex(r"[a-z]([a-z0-9-]{0,7}[a-z0-9])?(\.[a-z]{2,5}){0,2}", fullmatch=True))
    shown_path = "" if path == "/" and draw(BOOLS) else path
    text = f"{kind.value}://{name}{port_text}{shown_path}"
    return text, CheckSpec(kind, url_host=name, url_port=port, path=path)


def _expect_fields(kind: CheckKind, expect: tuple[str | None, Any] | None) -> dict[str, Any]:
    """What `expect=` sets per check kind: statuses, a tcp banner prefix, dns rcodes."""
    if expect is None:
        return {}
    if kind is CheckKind.TCP:
        return {"banner": expect[0]}
    if kind is CheckKind.DNS:
        return {"dns_rcodes": expect[1]}
    return {"expect": expect[1]}


@st.composite
def configs(draw: Draw) -> tuple[str, Config]:
    """A valid config as text and the model it must parse to."""
    global_lines, global_fields = draw(global_values())
    options = GlobalOptions(**global_fields)

    host_rows = draw(
        st.lists(
            st.tuples(HOST_TAGS, addresses(port=False), st.none() | st.integers(1, 65535)),
            max_size=6,
            unique_by=(lambda h: h[0], lambda h: (h[1][1], h[2])),
        )
    )
    vs_rows = draw(
        st.lists(
            st.tuples(
                TAGS, addresses(port=True), st.integers(1, 65535), st.none() | st.integers(1, 65535)
            ),
            max_size=6,
            unique_by=lambda v: v[0],
        )
    )
    host_tags = [h[0] for h in host_rows]
    lines: list[tuple[str, Any]] = [(line, None) for line in global_lines]
    seen_keys: set[tuple[Proto, str, int]] = set()
    for tag, (written, address, name), port, rs_port in vs_rows:
        check_text, url = draw(checks())
        opts: dict[str, tuple[str | None, Any]] = {}  # option -> (rendered value or None, value)
        proto = draw(st.sampled_from(Proto))
        if (proto, address, port) in seen_keys:
            continue
        seen_keys.add((proto, address, port))
        if proto is Proto.UDP or draw(BOOLS):
            opts["proto"] = (proto.value, proto)
        for key, strategy in [
            ("scheduler", st.sampled_from(["rr", "wrr", "mh"])),
            ("method", st.sampled_from(Method)),
            ("persistent", st.integers(1, 2678400)),
            ("interval", MILLIS),
            ("connect_timeout", MILLIS),
            ("timeout", MILLIS),
            ("rise", st.integers(1, 20)),
            ("fall", st.integers(1, 20)),
        ]:
            if draw(BOOLS):
                value = draw(strategy)
                opts[key] = (value.value if isinstance(value, Method) else str(value), value)
        for key in ("email", "verify"):
            if draw(BOOLS):
                flag = draw(BOOLS)
                opts[key] = (None if flag and draw(BOOLS) else bool_text(draw, flag), flag)
        if draw(BOOLS) and url.kind is CheckKind.DNS:
            rcodes = draw(st.lists(st.sampled_from(["NOERROR", "nxdomain", "REFUSED"]), min_size=1))
            opts["expect"] = ("|".join(rcodes), tuple(r.upper() for r in rcodes))
        elif url.kind is not CheckKind.DNS and draw(BOOLS):
            ranges = draw(
                st.lists(st.tuples(st.integers(100, 599), st.integers(0, 99)), min_size=1)
            )
            expect = tuple((low, min(low + span, 599)) for low, span in ranges)
            rendered = "|".join(f"{a}" if a == b else f"{a}-{b}" for a, b in expect)
            opts["expect"] = (rendered, expect)
        if draw(BOOLS):  # a tag naming no host is fine too: SPEC §4 falls back
            sorry = draw(st.sampled_from([*host_tags, "no-such-host"]))
            opts["sorry_server"] = (sorry, sorry)
        values = {k: v for k, (_, v) in opts.items()}
        rendered_opts = [
            draw(st.sampled_from([k, k.upper()])) + ("" if text is None else f"={text}")
            for k, (text, _) in opts.items()
        ]
        spec = CheckSpec(
            kind=url.kind,
            url_host=url.url_host,
            url_port=url.url_port,
            path=url.path,
            verify=values.get("verify", False),
            interval=values.get("interval", options.check_interval),
            connect_timeout=values.get("connect_timeout", options.check_timeout_connect),
            response_timeout=values.get("timeout", options.check_timeout_response),
            rise=values.get("rise", options.check_rise),
            fall=values.get("fall", options.check_fall),
            dns_type=url.dns_type,
            **_expect_fields(url.kind, opts.get("expect")),
        )
        vs = VirtualService(
            tag=tag,
            address=address,
            port=port,
            rs_port=rs_port if rs_port is not None else port,
            check=spec,
            proto=proto,
            email=values.get("email", False),
            sorry_server=values.get("sorry_server"),
            scheduler=values.get("scheduler", options.ipvs_scheduler),
            method=values.get("method", options.ipvs_method),
            persistent=values.get("persistent"),
            name=name,
        )
        ports = f":{port}" + (f":{rs_port}" if rs_port is not None else "")
        bang = draw(st.sampled_from(["! ", "!", "!   "]))
        sep = draw(st.sampled_from([",", ", ", " "]))
        text = f"{bang}{tag} {written}{ports} {check_text} {sep.join(rendered_opts)}".rstrip()
        lines.append((text, vs))

    vss = [vs for _, vs in lines if isinstance(vs, VirtualService)]
    for tag, (written, address, name), port in host_rows:
        # only VSs of the host's address family: a mixed pair is an error
        vs_tags = [vs.tag for vs in vss if (":" in vs.address) == (":" in address)]
        chosen = draw(st.lists(st.sampled_from(vs_tags), unique=True)) if vs_tags else []
        weights = tuple((vs_tag, draw(st.integers(0, 65535))) for vs_tag in chosen)
        port_text = f":{port}" if port is not None else ""
        pairs = " ".join(f"{vs_tag}={weight}" for vs_tag, weight in weights)
        host = Host(tag, address, port, weights, name)
        lines.append((f"{tag} {written}{port_text} {pairs}".rstrip(), host))

    order = draw(st.permutations(lines))
    text_lines: list[str] = []
    services: list[VirtualService] = []
    hosts: list[Host] = []
    for line, item in order:
        if draw(st.integers(0, 4)) == 0:
            text_lines.append(draw(st.sampled_from(["", "# comment", "  ; note", "\t"])))
        comment = draw(st.sampled_from(["", " # trailing", "\t; x=1"]))
        text_lines.append(line + comment)
        number = len(text_lines)
        if isinstance(item, VirtualService):
            services.append(_with_line(item, number))
        elif isinstance(item, Host):
            hosts.append(Host(item.tag, item.address, item.port, item.weights, item.name, number))
    text = "\n".join(text_lines) + draw(st.sampled_from(["", "\n"]))
    return text, Config("gen.conf", options, tuple(services), tuple(hosts))


def _with_line(vs: VirtualService, number: int) -> VirtualService:
    return dataclasses.replace(vs, line=number)


@settings(max_examples=150, deadline=None)
@given(configs())
def test_generated_configs_parse_to_their_model(case: tuple[str, Config]) -> None:
    text, expected = case
    result = parse_text(text, "gen.conf", resolver)
    assert result.errors == ()
    assert result.config == expected


def _check_result(result: ParseResult) -> None:
    assert (result.config is None) == bool(result.errors)
    assert all("internal parser error" not in e.message for e in result.errors)
    assert [e.line for e in result.errors] == sorted(e.line for e in result.errors)


FRAGMENTS = st.sampled_from(
    [
        "!", "! ", "www", "web1", "1.2.3.4:80", "[2001:db8::1]:443:8443", "[", "]", ":", "=",
        "http://x/a#b", "https://[::1]:0/", "tcp://", "tcp://:", "/p", "-", "email", ",",
        "sorry_server=web1", "expect=200-299|301", "www=10", "=5", "Check.Interval=", "#", ";",
        "name.example:8080", "\n", " ", "\t", "\r\n", "\x00", "\ufffd", "Log.Level=99999999999999",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS | st.text(max_size=8), max_size=40).map("".join))
def test_config_like_text_never_raises(text: str) -> None:
    _check_result(parse_text(text, "fuzz.conf", resolver))


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    _check_result(parse_text(text, "fuzz.conf", resolver))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.conf"  # one file, rewritten for each example
    path.write_bytes(data)
    _check_result(parse_file(str(path), resolver))
