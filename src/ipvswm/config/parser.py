"""Parse a config file into a `Config`, reporting every error with its line (SPEC §2).

The parser is pure apart from name resolution (injectable) and never raises: any input gives
either a config or a list of `FILE:LINE: message` errors, sorted by line.

Choices where SPEC §2 leaves room:
- Two passes. Every line is classified first and all global `Key=value` lines are read before
  any VS or host is built, so a global (e.g. `Check.Interval`) is the default of every VS lacking
  the matching option wherever it is written, and a host line may name a VS defined below it.
- Global keys are matched case-insensitively; messages use the SPEC spelling. A key set twice
  is an error. Seconds are plain decimals (`5`, `2.5`, `5s`); intervals and timeouts must be
  > 0, the `Ramping.*` delays >= 0.
- VS tags and host tags are separate namespaces (console commands always say which they mean),
  so a VS and a host may share a tag. Tags are `[A-Za-z0-9_.-]+`.
- VS options and a host's `VSTAG=WEIGHT` items may be separated by commas and/or whitespace.
- A line that fails still declares its tag, so lines naming it do not pile up follow-on errors.
- `sorry_server=TAG` naming no host is accepted with a warning (SPEC §4 falls back to
  SorryServer.Default, then SorryServer.Fallback.IP), as the original accepted it.
- A host on a VS of the other address family is an error: the kernel would refuse that
  destination on every try.
- `name` of a VS or host is its HOST as written, without brackets; addresses are normalised.
  An IPv6 address must be bracketed (`2001:db8::1:80` is ambiguous and rejected).
- Check URLs: a fragment (`#...`) is dropped as HTTP clients do, the query is kept; a bracketed
  IPv6 name keeps its brackets in `url_host` (it is the Host header). `expect=` is read per check
  kind and the kind-specific options are refused on other kinds (see `checkspec`); `verify` is
  accepted whatever the check kind.
- Lines end at `\\n` (a trailing `\\r` is ignored); a control character or U+FFFD (what invalid
  UTF-8 decodes to) outside a comment is an error rather than a value smuggled into a path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import ipaddress
import logging
import re
from collections.abc import Iterator
from typing import Any

from ipvswm.config.host_line import host_line
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Method
from ipvswm.config.options import GLOBALS_BY_LOWER
from ipvswm.config.options import cluster_problems
from ipvswm.config.options import with_default_fifo
from ipvswm.config.parse_state import HOST_SYNTAX
from ipvswm.config.parse_state import VS_SYNTAX
from ipvswm.config.parse_state import ParseState
from ipvswm.config.reader import ConfigReadError
from ipvswm.config.reader import read_config_bytes
from ipvswm.config.resolve import Resolver
from ipvswm.config.resolve import split_host_port
from ipvswm.config.resolve import system_resolver
from ipvswm.config.result import MAX_ERRORS
from ipvswm.config.result import ConfigError
from ipvswm.config.result import ParseResult
from ipvswm.config.values import show
from ipvswm.config.vs_line import vs_line
from ipvswm.kernel.simulate import SCHEDULERS

__all__ = [
    "MAX_ERRORS",
    "ConfigError",
    "ParseResult",
    "Resolver",
    "parse_bytes",
    "parse_file",
    "parse_text",
    "summarize",
    "system_resolver",
    "unreadable",
]

log = logging.getLogger(__name__)

_COMMENT_RE = re.compile(r"(?:^|\s)[#;]")
_GLOBAL_RE = re.compile(r"([^\s=]+)\s*=\s*(.*)")
_BAD_CHAR_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ufffd]")


def parse_text(text: str, path: str = "<config>", resolver: Resolver | None = None) -> ParseResult:
    """Parse config text; `path` names it in errors; `resolver` defaults to the system's."""
    try:
        return _Parser(path, resolver).run(text)
    except Exception as exc:  # a bug must not take the daemon down with it on a reload
        log.exception("config parser failed on %s", path)
        return ParseResult(None, (ConfigError(path, 0, f"internal parser error: {exc!r}"),))


def parse_file(path: str, resolver: Resolver | None = None) -> ParseResult:
    """Read and parse a config file; an unreadable file is one error at line 0.

    Only a regular file of at most MAX_CONFIG_BYTES is read (see config.reader)."""
    try:
        data = read_config_bytes(path)
    except ConfigReadError as exc:
        return unreadable(path, str(exc))
    return parse_bytes(data, path, resolver)


def parse_bytes(data: bytes, path: str, resolver: Resolver | None = None) -> ParseResult:
    """Parse the bytes of a config file (invalid UTF-8 is reported on its line)."""
    return parse_text(data.decode("utf-8", errors="replace"), path, resolver)


def unreadable(path: str, message: str) -> ParseResult:
    """The result for a file that could not be read: one error at line 0."""
    return ParseResult(None, (ConfigError(path, 0, message),))


def summarize(config: Config) -> str:
    """A one-line summary: counts of virtual services, hosts, pairs and distinct checks."""
    pairs = sum(len(host.weights) for host in config.hosts)
    return (
        f"{len(config.services)} virtual services, {len(config.hosts)} hosts, "
        f"{pairs} pairs, {len(config.check_targets())} distinct checks"
    )


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` one at a time (a list of millions of lines would cost more memory
    than the text)."""
    start = 0
    while (end := text.find("\n", start)) >= 0:
        yield text[start:end]
        start = end + 1
    yield text[start:]


def _sorry_fallback(g: GlobalOptions) -> str:
    """What serves instead of a missing sorry server: only what is configured is named."""
    if g.sorry_server_default:
        return f"SorryServer.Default ({g.sorry_server_default}) is used instead"
    if g.sorry_server_fallback_ip:
        return f"SorryServer.Fallback.IP ({g.sorry_server_fallback_ip}) is used instead"
    return "the service has no sorry server (neither SorryServer.Default nor .Fallback.IP is set)"


class _Parser(ParseState):
    """One parse: collects lines, then builds globals, VSs and hosts, recording every error."""

    def __init__(self, path: str, resolver: Resolver | None) -> None:
        super().__init__(path, resolver)
        self.global_lines: dict[str, int] = {}  # SPEC key -> line
        self.global_values: dict[str, Any] = {}  # GlobalOptions field -> value
        self.vs_lines: list[tuple[int, list[str]]] = []
        self.host_lines: list[tuple[int, list[str]]] = []

    def run(self, text: str) -> ParseResult:
        for number, raw in enumerate(_lines(text.removeprefix("\ufeff")), 1):
            self.classify(number, raw)
        self.addresses.prefetch(self.host_parts())
        for key, message in cluster_problems(self.global_values):
            line = self.global_lines.get(key) or min(
                (n for k, n in self.global_lines.items() if k.startswith("Cluster.")), default=0
            )
            self.error(line, message)
        defaults = GlobalOptions()
        options = dataclasses.replace(defaults, **with_default_fifo(self.global_values, defaults))
        services = [vs for n, t in self.vs_lines if (vs := vs_line(self, n, t, options))]
        self.vs_addresses = {vs.tag: vs.address for vs in services}
        hosts = [host for n, t in self.host_lines if (host := host_line(self, n, t))]
        self.console_access(options)
        if self.errors:
            return ParseResult(None, self.kept_errors(), self.more)
        for number, vs_tag, host_tag in self.sorry_refs:
            if host_tag not in self.host_tags:  # not an error: SPEC §4 falls back (as the original)
                log.warning(
                    "%s:%d: virtual service '%s': sorry_server '%s' is not a host; %s",
                    self.path,
                    number,
                    vs_tag,
                    host_tag,
                    _sorry_fallback(options),
                )
        for vs in services:
            if vs.scheduler not in SCHEDULERS:  # the kernel decides; most likely a typo
                log.warning(
                    "%s: virtual service '%s': scheduler '%s' is not one this version knows (%s); "
                    "the kernel will refuse it unless it has such a module",
                    self.path,
                    vs.tag,
                    vs.scheduler,
                    " ".join(sorted(SCHEDULERS)),
                )
        config = Config(self.path, options, tuple(services), tuple(hosts))
        self.ignored_ports(config)
        return ParseResult(config, ())

    def ignored_ports(self, config: Config) -> None:
        """dr/tun keep the VS port (ipvsadm forces it; the kernel forwards to the VS port
        whatever a destination holds): a real-server port there is a mistake, so warn."""
        by_tag = {vs.tag: vs for vs in config.services}
        for vs in config.services:
            if vs.method is not Method.NAT and vs.rs_port != vs.port:
                log.warning(
                    "%s:%d: virtual service '%s': real-server port %d is ignored with method=%s "
                    "(the kernel keeps the VS port %d)",
                    self.path,
                    vs.line,
                    vs.tag,
                    vs.rs_port,
                    vs.method.value,
                    vs.port,
                )
        for host in config.hosts:
            for tag, _ in host.weights:
                served = by_tag.get(tag)
                if (
                    served is None
                    or served.method is Method.NAT
                    or host.port in (None, served.port)
                ):
                    continue
                log.warning(
                    "%s:%d: host '%s': port %d is ignored on virtual service '%s' with method=%s "
                    "(the kernel keeps the VS port %d)",
                    self.path,
                    host.line,
                    host.tag,
                    host.port,
                    tag,
                    served.method.value,
                    served.port,
                )

    def console_access(self, g: GlobalOptions) -> None:
        """A TCP console reachable from other machines must require a token (SPEC §7)."""
        try:
            local = ipaddress.ip_address(g.management_socket_ip).is_loopback
        except ValueError:
            local = False
        if g.management_socket_port and not local and not g.management_socket_token:
            self.error(
                self.global_lines.get("Management.Socket.IP", 0),
                f"Management.Socket.IP {g.management_socket_ip} is not a loopback address: "
                "anyone who reaches it could change weights; set Management.Socket.Token "
                f"(at least 16 characters, sent by a session as 'auth TOKEN'), listen on "
                "127.0.0.1, or set Management.Socket.Port=0",
            )

    def host_parts(self) -> list[str]:
        """The unbracketed HOST of every VS and host line (names are resolved together)."""
        hosts = []
        for _, tokens in (*self.vs_lines, *self.host_lines):
            if len(tokens) >= 2:
                with contextlib.suppress(ValueError):
                    host, bracketed, _ports = split_host_port(tokens[1])
                    if not bracketed:
                        hosts.append(host)
        return hosts

    def classify(self, number: int, raw: str) -> None:
        """Strip the comment; read a global now, keep a VS or host line for later."""
        comment = _COMMENT_RE.search(raw)
        content = (raw[: comment.start()] if comment else raw).strip()
        if not content:
            return
        bad = _BAD_CHAR_RE.search(content)
        if bad:
            char = bad.group()
            what = "invalid UTF-8" if char == "\ufffd" else f"control character {char!a}"
            self.error(number, f"line contains {what} (column {bad.start() + 1})")
            return
        if content.startswith("!"):
            self.vs_lines.append((number, content[1:].split()))
        elif match := _GLOBAL_RE.fullmatch(content):
            self.global_option(number, match[1], match[2])
        else:
            tokens = content.split()
            spec = GLOBALS_BY_LOWER.get(tokens[0].lower())
            if spec is not None:  # `Check.Interval 2`: a known key, not a host tag
                value = " ".join(tokens[1:]) or "VALUE"
                self.error(number, f"{spec.key} needs '=': write '{spec.key}={value}'")
                return
            if len(tokens) < 2:
                self.error(
                    number,
                    f"malformed line {show(content)}: expected 'Key=value', {VS_SYNTAX} "
                    f"or {HOST_SYNTAX}",
                )
                return
            self.host_lines.append((number, tokens))

    def global_option(self, number: int, key: str, value: str) -> None:
        spec = GLOBALS_BY_LOWER.get(key.lower())
        if spec is None:
            close = difflib.get_close_matches(key.lower(), GLOBALS_BY_LOWER, n=1)
            hint = f" (did you mean {GLOBALS_BY_LOWER[close[0]].key}?)" if close else ""
            self.error(number, f"unknown key {show(key)}{hint}")
            return
        first = self.global_lines.get(spec.key)
        if first is not None:
            self.error(number, f"{spec.key} set twice (first at line {first})")
            return
        self.global_lines[spec.key] = number
        try:
            self.global_values[spec.field] = spec.convert(value)
        except ValueError as exc:
            self.error(number, f"{spec.key}: bad value {show(value)}: {exc}")
