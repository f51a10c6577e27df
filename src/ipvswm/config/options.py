"""Typed values of the config: converters, the global `Key=value` table, VS options (SPEC §2).

Every converter takes the text as written and returns a typed value or raises `ValueError`
whose message says what was expected (the parser adds the key, the value and the line).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipvswm.config.checkopts import (
    HTTP_METHODS,
    parse_header,
    parse_http_method,
    parse_match_text,
)
from ipvswm.config.model import CheckKind, GlobalOptions, Method, Proto, StatusRange
from ipvswm.config.resolve import split_host_port, valid_hostname

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})
BACKENDS = ("ipvsadm", "netlink", "dry-run")
SYSLOG_FACILITIES = frozenset(
    ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron"]
    + ["authpriv", "ftp"]
    + [f"local{i}" for i in range(8)]
)
MAX_PERSISTENT = 2678400  # 31 days, the kernel's limit for a persistence timeout

_INT_RE = re.compile(r"[0-9]{1,12}")
# Plain decimal seconds, optionally suffixed with `s`; no exponents, signs, `_`, inf or nan.
_SECONDS_RE = re.compile(r"([0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})s?")
_FRACTION_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{0,9})?|\.[0-9]{1,9}")
_SCHEDULER_RE = re.compile(r"[a-z]{1,32}")
_TAG_RE = re.compile(r"[A-Za-z0-9_.-]+")


def valid_tag(text: str) -> bool:
    """Whether a VS or host tag uses only letters, digits, `_`, `.` and `-`."""
    return _TAG_RE.fullmatch(text) is not None


def parse_bool(text: str) -> bool:
    """A boolean: 1/0, true/false, yes/no, on/off (any case)."""
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("expected a boolean (1/0, true/false, yes/no, on/off)")


def parse_int(text: str, low: int, high: int | None = None) -> int:
    """A base-10 integer in [low, high]."""
    what = f"an integer {low}..{high}" if high is not None else f"an integer >= {low}"
    if _INT_RE.fullmatch(text) is None:
        raise ValueError(f"expected {what}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise ValueError(f"expected {what}")
    return value


def parse_port(text: str) -> int:
    """A TCP/UDP port, 1..65535."""
    return parse_int(text, 1, 65535)


def parse_seconds(text: str, *, positive: bool) -> float:
    """Seconds as a decimal number (`5`, `2.5`, `5s`); > 0 when `positive`, else >= 0."""
    what = "seconds > 0" if positive else "seconds >= 0"
    if _SECONDS_RE.fullmatch(text) is None:
        raise ValueError(f"expected {what} (e.g. 5 or 2.5)")
    value = float(text.removesuffix("s"))
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"expected {what} (e.g. 5 or 2.5)")
    return value


def parse_interval(text: str) -> float:
    """An interval or timeout: seconds > 0."""
    return parse_seconds(text, positive=True)


def parse_delay(text: str) -> float:
    """A delay or duration that may be zero: seconds >= 0."""
    return parse_seconds(text, positive=False)


def parse_fraction(text: str) -> float:
    """A share as a decimal number from 0 to 1 (`0.5`, `.75`, `1`)."""
    what = "a decimal number from 0 to 1 (e.g. 0.5)"
    if _FRACTION_RE.fullmatch(text) is None:
        raise ValueError(f"expected {what}")
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"expected {what}")
    return value


def parse_method(text: str) -> Method:
    """An IPVS forwarding method: nat, dr or tun."""
    try:
        return Method(text.lower())
    except ValueError:
        raise ValueError("expected nat, dr or tun") from None


def parse_proto(text: str) -> Proto:
    """A VS protocol: tcp or udp."""
    try:
        return Proto(text.lower())
    except ValueError:
        raise ValueError("expected tcp or udp") from None


def parse_scheduler(text: str) -> str:
    """An IPVS scheduler name (lower-case letters, e.g. wrr, wlc, sh, mh)."""
    if _SCHEDULER_RE.fullmatch(text) is None:
        raise ValueError("expected a scheduler name of lower-case letters (e.g. wrr, wlc, sh)")
    return text


def parse_backend(text: str) -> str:
    """A kernel backend name."""
    word = text.lower()
    if word not in BACKENDS:
        raise ValueError("expected " + ", ".join(BACKENDS[:-1]) + " or " + BACKENDS[-1])
    return word


def parse_ip(text: str, *, allow_empty: bool = False) -> str:
    """An IPv4 or IPv6 address (no brackets), normalised; empty allowed if `allow_empty`."""
    if allow_empty and text == "":
        return ""
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        what = "an IP address or nothing" if allow_empty else "an IP address"
        raise ValueError(f"expected {what}") from None


def parse_optional_ip(text: str) -> str:
    """An IP address, or nothing."""
    return parse_ip(text, allow_empty=True)


def parse_endpoint(text: str, *, port_required: bool) -> str:
    """`HOST:PORT` (or `HOST[:PORT]`) with HOST an IP, a bracketed IPv6 or a name; or empty."""
    if text == "":
        return ""
    what = "HOST:PORT" if port_required else "HOST[:PORT]"
    try:
        host, bracketed, ports = split_host_port(text)
    except ValueError as exc:
        raise ValueError(f"expected {what} or nothing: {exc}") from None
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"expected {what} or nothing: bad IPv6 address") from None
    elif not valid_hostname(host):
        raise ValueError(f"expected {what} or nothing: bad host '{host}'")
    if len(ports) > 1 or (port_required and not ports):
        raise ValueError(f"expected {what} or nothing")
    if ports:
        parse_port(ports[0])
    return text


def parse_facility(text: str) -> str:
    """A syslog facility name (daemon, local0..local7, ...)."""
    word = text.lower()
    if word not in SYSLOG_FACILITIES:
        raise ValueError("expected a syslog facility (daemon, user, local0..local7, ...)")
    return word


def parse_optional_tag(text: str) -> str:
    """A host tag, or nothing."""
    if text and not valid_tag(text):
        raise ValueError("expected a host tag (letters, digits, '_', '.', '-') or nothing")
    return text


def parse_host_tag(text: str) -> str:
    """A host tag."""
    if not valid_tag(text):
        raise ValueError("expected a host tag (letters, digits, '_', '.', '-')")
    return text


def parse_expect(text: str) -> tuple[StatusRange, ...]:
    """Expected HTTP statuses: `200`, `200-299|301` (statuses 100..599, low <= high)."""
    what = "HTTP statuses 100..599 or ranges joined by '|' (e.g. 200-299|301)"
    ranges: list[StatusRange] = []
    for part in text.split("|"):
        low_text, dash, high_text = part.partition("-")
        try:
            low = parse_int(low_text, 100, 599)
            high = parse_int(high_text, 100, 599) if dash else low
        except ValueError:
            raise ValueError(f"expected {what}") from None
        if low > high:
            raise ValueError(f"expected {what}; range {part} is backwards")
        ranges.append((low, high))
    return tuple(ranges)


def _text(text: str) -> str:
    return text


def parse_endpoints(text: str) -> str:
    """`HOST:PORT[,HOST:PORT…]` (etcd client endpoints), or nothing."""
    for part in text.split(","):
        if text and not part.strip():
            raise ValueError("expected HOST:PORT[,HOST:PORT...]: empty endpoint")
        parse_endpoint(part.strip(), port_required=True)
    return ",".join(part.strip() for part in text.split(","))


def parse_cluster_word(text: str, what: str) -> str:
    """A cluster or director name: letters, digits, `_`, `.`, `-` (it is part of etcd keys)."""
    if text and not valid_tag(text):
        raise ValueError(f"expected {what} of letters, digits, '_', '.', '-' or nothing")
    return text


def cluster_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for Cluster.* options that do not go together."""
    problems: list[tuple[str, str]] = []
    if values.get("cluster_etcd") and not values.get("cluster_name"):
        problems.append(("Cluster.Etcd", "Cluster.Name is required with Cluster.Etcd"))
    if bool(values.get("cluster_etcd_cert")) != bool(values.get("cluster_etcd_key")):
        problems.append(("Cluster.Etcd.Cert", "Cluster.Etcd.Cert and Cluster.Etcd.Key go together"))
    if bool(values.get("cluster_etcd_user")) != bool(values.get("cluster_etcd_password_file")):
        problems.append(
            ("Cluster.Etcd.User", "Cluster.Etcd.User and Cluster.Etcd.PasswordFile go together")
        )
    return problems


def with_default_fifo(values: dict[str, Any], defaults: GlobalOptions) -> dict[str, Any]:
    """The options with `Management.Fifo.Path` derived when the file does not set it.

    Beside the Unix socket (`/run/ipvswm.sock` gives `/run/ipvswm.fifo`), or beside the DB when
    the Unix socket is off: every instance has its own socket and DB, so two daemons on one
    machine never share a FIFO (the original's `/tmp/fifo` was shared, and in a world-writable
    directory). `defaults` is a `GlobalOptions()` for the values the file leaves out.
    """
    if "management_fifo_path" in values:
        return values
    base = values.get("management_socket_path", defaults.management_socket_path) or values.get(
        "db", defaults.db
    )
    fifo = os.path.splitext(base)[0] + ".fifo"
    return {**values, "management_fifo_path": fifo if fifo != base else base + ".fifo"}


MIN_TOKEN = 16
_TOKEN_RE = re.compile(r"[!-~]+")  # printable ASCII, no space
_NAME_RE = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?")


def parse_token(text: str) -> str:
    """A console token: empty, or at least 16 printable ASCII characters without spaces."""
    if text and (len(text) < MIN_TOKEN or _TOKEN_RE.fullmatch(text) is None):
        raise ValueError(f"expected at least {MIN_TOKEN} printable ASCII characters without spaces")
    return text


def parse_names(text: str) -> tuple[str, ...]:
    """Comma-separated user or group names (empty: none)."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        if _NAME_RE.fullmatch(name) is None:
            raise ValueError(f"expected comma-separated user or group names, not {name!r}")
    return names


@dataclass(frozen=True, slots=True)
class GlobalKey:
    """One `Key=value` option: its spelling in SPEC §2.1, its field and its converter."""

    key: str
    field: str
    convert: Callable[[str], Any]


def _g(key: str, field: str, convert: Callable[[str], Any]) -> GlobalKey:
    return GlobalKey(key, field, convert)


GLOBAL_KEYS: tuple[GlobalKey, ...] = (
    _g("Management.Socket.IP", "management_socket_ip", parse_ip),
    # 0 disables the TCP console (the Unix socket is then the only way in, besides the FIFO).
    _g("Management.Socket.Port", "management_socket_port", lambda v: parse_int(v, 0, 65535)),
    _g("Management.Socket.Path", "management_socket_path", _text),
    _g("Management.Fifo.Path", "management_fifo_path", _text),
    _g("Management.Socket.Token", "management_socket_token", parse_token),
    _g("Management.Socket.AllowUsers", "management_socket_allow_users", parse_names),
    _g("Management.Socket.AllowGroups", "management_socket_allow_groups", parse_names),
    _g("Config.Path", "config_path", _text),
    _g("Config.CheckPeriod", "config_check_period", parse_interval),
    _g("Config.AutoCheck", "config_auto_check", parse_bool),
    _g("Config.MaxRemovedShare", "config_max_removed_share", parse_fraction),
    _g("Config.ForgetAfter", "config_forget_after", parse_delay),
    _g("Log.Path", "log_path", _text),
    _g("Log.SysLog", "log_syslog", parse_bool),
    _g("Log.SysLog.Facility", "log_syslog_facility", parse_facility),
    _g("Log.StdErr", "log_stderr", parse_bool),
    _g("Log.Level", "log_level", lambda v: parse_int(v, 0)),
    _g("Ramping.TriggerTime", "ramping_trigger_time", parse_delay),
    _g("Ramping.Duration", "ramping_duration", parse_delay),
    _g("DB", "db", _text),
    _g("IPVSADM", "ipvsadm", _text),
    _g("Email.SMTP", "email_smtp", lambda v: parse_endpoint(v, port_required=False)),
    _g("Email.Headers.From", "email_from", _text),
    _g("Email.Headers.To", "email_to", _text),
    _g("Email.Headers.Reply-To", "email_reply_to", _text),
    _g("SorryServer.Default", "sorry_server_default", parse_optional_tag),
    _g("SorryServer.Fallback.Host", "sorry_server_fallback_host", _text),
    _g("SorryServer.Fallback.IP", "sorry_server_fallback_ip", parse_optional_ip),
    _g("SorryServer.Fallback.Title", "sorry_server_fallback_title", _text),
    _g("IPVS.Backend", "ipvs_backend", parse_backend),
    _g("IPVS.Scheduler", "ipvs_scheduler", parse_scheduler),
    _g("IPVS.Method", "ipvs_method", parse_method),
    _g("IPVS.ResyncPeriod", "ipvs_resync_period", parse_interval),
    _g("Check.Interval", "check_interval", parse_interval),
    _g("Check.Timeout.Connect", "check_timeout_connect", parse_interval),
    _g("Check.Timeout.Response", "check_timeout_response", parse_interval),
    _g("Check.Rise", "check_rise", lambda v: parse_int(v, 1)),
    _g("Check.Fall", "check_fall", lambda v: parse_int(v, 1)),
    _g("Check.Exec.MaxConcurrent", "check_exec_max_concurrent", lambda v: parse_int(v, 1, 4096)),
    _g("Metrics.Listen", "metrics_listen", lambda v: parse_endpoint(v, port_required=True)),
    _g("Cluster.Etcd", "cluster_etcd", lambda v: parse_endpoints(v)),
    _g("Cluster.Name", "cluster_name", lambda v: parse_cluster_word(v, "a cluster name")),
    _g("Cluster.Node", "cluster_node", lambda v: parse_cluster_word(v, "a director name")),
    _g("Cluster.Etcd.CACert", "cluster_etcd_cacert", _text),
    _g("Cluster.Etcd.Cert", "cluster_etcd_cert", _text),
    _g("Cluster.Etcd.Key", "cluster_etcd_key", _text),
    _g("Cluster.Etcd.User", "cluster_etcd_user", _text),
    _g("Cluster.Etcd.PasswordFile", "cluster_etcd_password_file", _text),
    _g("Check.DepoolThreshold", "check_depool_threshold", parse_fraction),
    _g("IPVS.Timeout", "ipvs_timeout", parse_interval),
)
"""Every global key, in SPEC order."""

GLOBALS_BY_LOWER: dict[str, GlobalKey] = {g.key.lower(): g for g in GLOBAL_KEYS}
"""Keys are matched case-insensitively (the SPEC spelling is what messages show)."""


@dataclass(frozen=True, slots=True)
class VsOption:
    """One VS option (`key=value` after CHECK): its converter and its value as a bare flag."""

    convert: Callable[[str], Any]
    flag: bool = False  # whether a bare `key` means `key=true`
    repeat: bool = False  # may be given more than once: the values are kept as a list, in order


VS_OPTIONS: dict[str, VsOption] = {
    "email": VsOption(parse_bool, flag=True),
    "sorry_server": VsOption(parse_host_tag),
    "proto": VsOption(parse_proto),
    "scheduler": VsOption(parse_scheduler),
    "method": VsOption(parse_method),
    "persistent": VsOption(lambda v: parse_int(v, 1, MAX_PERSISTENT)),
    "interval": VsOption(parse_interval),
    "connect_timeout": VsOption(parse_interval),
    "timeout": VsOption(parse_interval),
    "rise": VsOption(lambda v: parse_int(v, 1)),
    "fall": VsOption(lambda v: parse_int(v, 1)),
    # Its meaning depends on the check kind (statuses, a banner prefix, rcodes): see checkopts.
    "expect": VsOption(_text),
    "verify": VsOption(parse_bool, flag=True),
    "depool_threshold": VsOption(parse_fraction),
    "http_method": VsOption(parse_http_method),
    "header": VsOption(parse_header, repeat=True),
    "body": VsOption(parse_match_text),
    "send": VsOption(parse_match_text),
    "dynamic": VsOption(parse_bool, flag=True),
    "fast_interval": VsOption(parse_interval),
    "agent": VsOption(parse_port),
    "agent_interval": VsOption(parse_interval),
}
"""VS options by lower-case key."""
_MAX_SHOWN = 60  # longest value quoted back in a message


def show(text: str) -> str:
    """A value quoted back to the operator, cut short if huge."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return f"'{text}'"


def parse_vs_options(tokens: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The OPTIONS column (comma- and/or space-separated) as {key: typed value}, and problems."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for item in (part for token in tokens for part in token.split(",") if part):
        key, eq, value = item.partition("=")
        name = key.lower()
        if name == "method" and value.upper() in HTTP_METHODS:
            name = "http_method"  # `method=HEAD|GET` is the HTTP method, nat|dr|tun forwarding
        option = VS_OPTIONS.get(name)
        if option is None:
            problems.append(f"unknown option {show(key)} (known: {', '.join(VS_OPTIONS)})")
        elif option.repeat and eq:
            try:
                values.setdefault(name, []).append(option.convert(value))
            except ValueError as exc:
                problems.append(f"option {name}: bad value {show(value)}: {exc}")
        elif name in values:
            problems.append(f"option '{name}' given twice")
        elif not eq and option.flag:
            values[name] = True
        elif not eq:
            problems.append(f"option '{name}' needs a value ({name}=...)")
        else:
            try:
                values[name] = option.convert(value)
            except ValueError as exc:
                problems.append(f"option {name}: bad value {show(value)}: {exc}")
    return values, problems


CHECK_FORMS = (
    "http://NAME[:PORT]/PATH, https://NAME[:PORT]/PATH, tcp://, tcp://:PORT, "
    "dns://NAME[:PORT][?type=T], exec:/PROGRAM [ARG...], /PATH or -"
)
_AUTHORITY_RE = re.compile(r"[^/?#]*")


@dataclass(frozen=True, slots=True)
class CheckForm:
    """The CHECK column of a VS line, before options add timings and expectations."""

    kind: CheckKind
    url_host: str | None = None
    url_port: int | None = None
    path: str = "/"
    dns_type: str = "A"
    argv: tuple[str, ...] = ()


def port_field(text: str) -> int:
    """A port field of an address or URL, with a message naming it when it is bad."""
    try:
        return parse_port(text)
    except ValueError:
        raise ValueError(f"bad port '{text}': expected 1..65535") from None


def parse_check(text: str) -> CheckForm:
    """The CHECK column: an HTTP(S) URL, `tcp://[:PORT]`, `/PATH` or `-`.

    The URL's name is not resolved (it is only the Host header and SNI); a fragment is dropped
    as HTTP clients do; the query is kept in the path; no path means `/`.
    """
    if text == "-":
        return CheckForm(CheckKind.NONE)
    if text.startswith("/"):
        return CheckForm(CheckKind.HTTP, path=text.partition("#")[0])
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError(f"bad check '{text}': expected {CHECK_FORMS}")
    scheme = scheme.lower()
    if scheme == "tcp":
        rest = rest.removesuffix("/")
        if rest == "":
            return CheckForm(CheckKind.TCP)
        if rest.startswith(":"):
            return CheckForm(CheckKind.TCP, url_port=port_field(rest[1:]))
        raise ValueError(
            f"bad check '{text}': a tcp check names no host: use tcp:// or tcp://:PORT"
        )
    if scheme not in ("http", "https"):
        raise ValueError(f"bad check '{text}': unknown scheme '{scheme}', expected {CHECK_FORMS}")
    authority = _AUTHORITY_RE.match(rest)
    assert authority is not None  # the pattern matches the empty string
    tail = rest[authority.end() :]
    try:
        host, bracketed, ports = split_host_port(authority.group())
    except ValueError as exc:
        raise ValueError(f"bad check '{text}': {exc}") from None
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"bad check '{text}': bad IPv6 address '{host}'") from None
        url_host = f"[{host}]"  # kept bracketed: it is sent as the Host header
    elif valid_hostname(host) and "@" not in host:
        url_host = host
    else:
        raise ValueError(f"bad check '{text}': bad host name '{host}'")
    if len(ports) > 1:
        raise ValueError(f"bad check '{text}': expected NAME[:PORT] after '{scheme}://'")
    url_port = port_field(ports[0]) if ports else None
    path = tail.partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    return CheckForm(CheckKind(scheme), url_host, url_port, path)
