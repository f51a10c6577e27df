"""The CHECK column's plain forms: an HTTP(S) URL, `tcp://[:PORT]`, `/PATH` or `-` (SPEC §2.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ipvswm.config.model import CheckKind
from ipvswm.config.resolve import split_host_port
from ipvswm.config.resolve import valid_hostname
from ipvswm.config.resolve import valid_ipv6
from ipvswm.config.values import port_field

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
        if not valid_ipv6(host):
            raise ValueError(f"bad check '{text}': bad IPv6 address '{host}'")
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
