"""Converters of config values: text as written to a typed value, or a ValueError (SPEC §2).

Every converter's message says what was expected (the parser adds the key, the value and the
line); `show` quotes a value back to the operator.
"""

from __future__ import annotations

import ipaddress
import math
import re

from ipvswm.config.model import Method
from ipvswm.config.model import Proto
from ipvswm.config.model import StatusRange
from ipvswm.config.resolve import split_host_port
from ipvswm.config.resolve import valid_hostname
from ipvswm.config.resolve import valid_ipv6

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
    if bracketed and not valid_ipv6(host):
        raise ValueError(f"expected {what} or nothing: bad IPv6 address")
    if not bracketed and not valid_hostname(host):
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


def plain_text(text: str) -> str:
    """Text as written (paths, names, headers)."""
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


_MAX_SHOWN = 60  # longest value quoted back in a message


def show(text: str) -> str:
    """A value quoted back to the operator, cut short if huge."""
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return f"'{text}'"


def port_field(text: str) -> int:
    """A port field of an address or URL, with a message naming it when it is bad."""
    try:
        return parse_port(text)
    except ValueError:
        raise ValueError(f"bad port '{text}': expected 1..65535") from None
