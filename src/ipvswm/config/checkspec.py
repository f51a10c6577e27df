"""The CHECK column and its options into a `CheckSpec`, per check kind (SPEC §2.2, §3).

Choices where the issue leaves room:
- `expect=` means what the check kind expects: HTTP statuses (`200-299|301`), for `tcp://` a
  prefix of the first bytes the server sends (`expect=220`), for `dns://` rcodes joined by `|`
  (`expect=NXDOMAIN`). An option that the check kind cannot use (e.g. `send=` on an HTTP check)
  is an error; `verify=` and, on a check `-`, `expect=` stay accepted as before.
- `exec:/PROGRAM ARG...`: the tokens after the CHECK column are the program's arguments up to the
  first token that starts with a VS option (`rise=3`, `dynamic`, `interval=2,fall=2`); an
  argument that would read as one is written with its `=` escaped, `rise%3D3` (`%XX` escapes are
  decoded in arguments, so `%20` is a space; `%a`, `%p` and `%%` are the substitutions).
- `dns://NAME[:PORT][?type=T]`: NAME is the name queried (a syntactically valid host name, not
  resolved); T one of `DNS_TYPES` (default A); no other query parameter, no path.
"""

from __future__ import annotations

import re
from typing import Any

from ipvswm.config.checkform import CheckForm
from ipvswm.config.checkform import parse_check
from ipvswm.config.checkopts import decode_text
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import GlobalOptions
from ipvswm.config.options import VS_OPTIONS
from ipvswm.config.resolve import split_host_port
from ipvswm.config.resolve import valid_hostname
from ipvswm.config.values import parse_expect
from ipvswm.config.values import port_field
from ipvswm.config.values import show

DNS_TYPES = (
    "A",
    "AAAA",
    "CAA",
    "CNAME",
    "DNSKEY",
    "DS",
    "HTTPS",
    "MX",
    "NAPTR",
    "NS",
    "PTR",
    "SOA",
    "SRV",
    "SVCB",
    "TXT",
)
"""The record types a dns check may ask for."""

RCODES = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
)
"""The rcodes `expect=` may name on a dns check (RFC 1035, 2136)."""

# Which kinds may use which of the kind-specific options.
_ONLY: dict[str, tuple[frozenset[CheckKind], str]] = {
    "http_method": (frozenset({CheckKind.HTTP, CheckKind.HTTPS}), "http(s) checks"),
    "header": (frozenset({CheckKind.HTTP, CheckKind.HTTPS}), "http(s) checks"),
    "body": (frozenset({CheckKind.HTTP, CheckKind.HTTPS}), "http(s) checks"),
    "send": (frozenset({CheckKind.TCP}), "tcp:// checks"),
    "dynamic": (frozenset({CheckKind.EXEC}), "exec: checks"),
}
_EXEC_SUBST_RE = re.compile(r"%(.?)")


def parse_check_column(text: str) -> CheckForm:
    """The CHECK column: every form `checkform.parse_check` knows, plus `dns://` and `exec:`."""
    if text[:6].lower() == "dns://":
        return _parse_dns(text, text[6:])
    if text[:5].lower() == "exec:":
        program = text[5:]
        if not program.startswith("/"):
            raise ValueError(f"bad check '{text}': exec: needs an absolute program path")
        return CheckForm(CheckKind.EXEC, argv=(program,))
    return parse_check(text)


def _parse_dns(text: str, rest: str) -> CheckForm:
    authority, _, query = rest.partition("?")
    authority = authority.removesuffix("/")
    try:
        name, bracketed, ports = split_host_port(authority)
    except ValueError as exc:
        raise ValueError(f"bad check '{text}': {exc}") from None
    if bracketed or "/" in name or not valid_hostname(name) or len(ports) > 1:
        raise ValueError(f"bad check '{text}': expected dns://NAME[:PORT][?type=T]")
    port = port_field(ports[0]) if ports else None
    dns_type = "A"
    if query:
        key, eq, value = query.partition("=")
        if key.lower() != "type" or not eq or value.upper() not in DNS_TYPES:
            raise ValueError(
                f"bad check '{text}': the query may only be ?type=T, T one of "
                + ", ".join(DNS_TYPES)
            )
        dns_type = value.upper()
    return CheckForm(CheckKind.DNS, url_host=name.lower(), url_port=port, dns_type=dns_type)


def split_exec_args(tokens: list[str]) -> tuple[list[str], list[str]]:
    """(the program's arguments, the option tokens) of what follows an `exec:` CHECK column."""
    for index, token in enumerate(tokens):
        first = token.split(",", 1)[0]
        key, eq, _ = first.partition("=")
        option = VS_OPTIONS.get(key.lower())
        if option is not None and (eq or option.flag):
            return tokens[:index], tokens[index:]
    return tokens, []


def exec_argument(text: str) -> str:
    """One program argument: `%XX` decoded; `%a`, `%p`, `%%` kept for substitution per check."""
    # %a/%p/%% first: a decoded %25 must not become a substitution.
    parts = re.split(r"(%[ap%])", text)
    out: list[str] = []
    for part in parts:
        if part in ("%a", "%p", "%%"):
            out.append(part)
            continue
        decoded = decode_text(part)
        out.append(decoded.replace("%", "%%"))
    return "".join(out)


def substitute(argument: str, address: str, port: int) -> str:
    """An argument with `%a` (the real server's address), `%p` (its port), `%%` (a `%`) filled."""

    def fill(match: re.Match[str]) -> str:
        return {"a": address, "p": str(port), "%": "%"}[match[1]]

    return _EXEC_SUBST_RE.sub(fill, argument)


def build_spec(
    form: CheckForm, args: list[str], opts: dict[str, Any], g: GlobalOptions
) -> tuple[CheckSpec | None, list[str]]:
    """The check spec of a VS line, or the problems that keep it from being one."""
    problems: list[str] = []
    for name, (kinds, what) in _ONLY.items():
        if name in opts and form.kind not in kinds:
            shown = "method=GET|HEAD" if name == "http_method" else name
            problems.append(f"option {shown} applies to {what} only")
    argv = form.argv
    if form.kind is CheckKind.EXEC:
        try:
            argv = argv + tuple(exec_argument(a) for a in args)
        except ValueError as exc:
            problems.append(f"exec argument: {exc}")
    expect_text = opts.get("expect")
    expect: Any = {}
    if expect_text is not None:
        try:
            expect = _expect(form.kind, expect_text)
        except ValueError as exc:
            problems.append(f"option expect: bad value {show(expect_text)}: {exc}")
    if opts.get("http_method") == "HEAD" and "body" in opts:
        problems.append("option body needs method=GET (a HEAD response has no body)")
    interval = opts.get("interval", g.check_interval)
    if opts.get("fast_interval", 0.0) > interval:
        problems.append(
            f"option fast_interval={opts['fast_interval']:g} is longer than the check interval"
            f" ({interval:g}s): it would slow the checks that confirm a failure"
        )
    if problems:
        return None, problems
    spec = CheckSpec(
        kind=form.kind,
        url_host=form.url_host,
        url_port=form.url_port,
        path=form.path,
        verify=opts.get("verify", False),
        interval=opts.get("interval", g.check_interval),
        connect_timeout=opts.get("connect_timeout", g.check_timeout_connect),
        response_timeout=opts.get("timeout", g.check_timeout_response),
        rise=opts.get("rise", g.check_rise),
        fall=opts.get("fall", g.check_fall),
        http_method=opts.get("http_method", "GET"),
        headers=tuple(opts.get("header", ())),
        body=opts.get("body"),
        send=opts.get("send"),
        dns_type=form.dns_type,
        argv=argv,
        dynamic=opts.get("dynamic", False),
        # The default (1 s) counts as the interval where that is shorter (checks.decide.next_gap); a
        # longer value given is refused above.
        fast_interval=opts.get("fast_interval", 1.0),
        **expect,
    )
    return spec, []


def _expect(kind: CheckKind, text: str) -> dict[str, Any]:
    """The CheckSpec fields `expect=` sets for a check kind."""
    if kind is CheckKind.TCP:
        value = decode_text(text)
        if not value:
            raise ValueError("expected the text the server's first bytes start with")
        return {"banner": value}
    if kind is CheckKind.DNS:
        rcodes = tuple(part.upper() for part in text.split("|"))
        if not all(r in RCODES for r in rcodes):
            raise ValueError("expected rcodes joined by '|', of " + ", ".join(RCODES))
        return {"dns_rcodes": rcodes}
    if kind is CheckKind.EXEC:
        raise ValueError("an exec: check passes on exit 0 (see dynamic); it takes no expect")
    return {"expect": parse_expect(text)}
