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
import heapq
import ipaddress
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ipvswm.config.agent import HOST_OPTIONS, parse_host_option
from ipvswm.config.checkspec import build_spec, parse_check_column, split_exec_args
from ipvswm.config.model import (
    CheckKind,
    CheckSpec,
    Config,
    GlobalOptions,
    Host,
    Method,
    Proto,
    VirtualService,
)
from ipvswm.config.options import (
    GLOBALS_BY_LOWER,
    cluster_problems,
    parse_int,
    parse_vs_options,
    port_field,
    show,
    valid_tag,
    with_default_fifo,
)
from ipvswm.config.reader import ConfigReadError, read_config_bytes
from ipvswm.config.resolve import AddressResolver, Resolver, split_host_port, system_resolver
from ipvswm.kernel.simulate import SCHEDULERS

__all__ = [
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

VS_SYNTAX = "'! TAG ADDR:PORT[:RSPORT] CHECK [OPTIONS]'"
HOST_SYNTAX = "'TAG HOST[:PORT] [VSTAG=WEIGHT ...]'"
TAG_CHARS = "letters, digits, '_', '.' and '-'"

_COMMENT_RE = re.compile(r"(?:^|\s)[#;]")
_GLOBAL_RE = re.compile(r"([^\s=]+)\s*=\s*(.*)")
_BAD_CHAR_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ufffd]")
_MAX_KNOWN = 10  # longest list of known tags in a message
MAX_ERRORS = 100
"""Errors kept (the first by line); the rest are only counted: a garbage file of millions of
lines must not cost millions of messages in memory and in the log."""


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem in a config file, at a line (0 when it concerns the whole file)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    """A parsed config, or (config None) the first MAX_ERRORS errors and how many more there are."""

    config: Config | None
    errors: tuple[ConfigError, ...]
    more: int = 0  # errors found beyond those kept

    def messages(self) -> list[str]:
        """Every kept error as `FILE:LINE: message`, then `... and N more error(s)` if any."""
        lines = [str(e) for e in self.errors]
        if self.more:
            lines.append(
                f"... and {self.more} more error(s) (only the first {len(self.errors)} shown)"
            )
        return lines

    def error_count(self) -> int:
        """How many errors were found in all."""
        return len(self.errors) + self.more


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


def _known(tags: list[str]) -> str:
    if not tags:
        return "none defined"
    shown = ", ".join(tags[:_MAX_KNOWN])
    return shown + (f", ... ({len(tags)} in all)" if len(tags) > _MAX_KNOWN else "")


class _Parser:
    """One parse: collects lines, then builds globals, VSs and hosts, recording every error."""

    def __init__(self, path: str, resolver: Resolver | None) -> None:
        self.path = path
        self.addresses = AddressResolver(resolver)
        # The MAX_ERRORS errors of lowest line as a max-heap of (-line, -seq, message): a line's
        # errors keep their order; the others are counted in `more`.
        self.errors: list[tuple[int, int, str]] = []
        self.seq = 0
        self.more = 0
        self.global_lines: dict[str, int] = {}  # SPEC key -> line
        self.global_values: dict[str, Any] = {}  # GlobalOptions field -> value
        self.vs_lines: list[tuple[int, list[str]]] = []
        self.host_lines: list[tuple[int, list[str]]] = []
        self.vs_tags: dict[str, int] = {}  # every declared VS tag -> line, even of a broken line
        self.host_tags: dict[str, int] = {}
        self.sorry_refs: list[tuple[int, str, str]] = []  # (line, vs tag, host tag)
        self.vs_addresses: dict[str, str] = {}  # tag -> address of every valid VS
        # Duplicate detection by dict: (proto, address, port) / (address, port) -> (tag, line).
        self._service_keys: dict[tuple[Proto, str, int], tuple[str, int]] = {}
        self._host_keys: dict[tuple[str, int | None], tuple[str, int]] = {}

    def error(self, line: int, message: str) -> None:
        self.seq += 1
        item = (-line, -self.seq, message)
        if len(self.errors) < MAX_ERRORS:
            heapq.heappush(self.errors, item)
        else:
            self.more += 1
            # The file is rejected whatever else is found: a name lookup per garbage line
            # (seconds each with a slow resolver) would only find more errors nobody sees.
            self.addresses.lookups = False
            if item > self.errors[0]:  # lower line than the highest kept: keep this one instead
                heapq.heapreplace(self.errors, item)

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
        services = [vs for n, t in self.vs_lines if (vs := self.service(n, t, options))]
        self.vs_addresses = {vs.tag: vs.address for vs in services}
        hosts = [host for n, t in self.host_lines if (host := self.host(n, t))]
        self.console_access(options)
        if self.errors:
            kept = sorted(self.errors, reverse=True)  # by line, then in the order found
            errors = tuple(ConfigError(self.path, -n, m) for n, _, m in kept)
            return ParseResult(None, errors, self.more)
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

    def address(
        self, number: int, where: str, text: str, ports: tuple[int, int]
    ) -> tuple[str, str, list[int]] | None:
        """(address, name, ports) of `HOST[:PORT...]` with min..max ports, or None on error."""
        low, high = ports
        try:
            host, bracketed, fields = split_host_port(text)
            if not low <= len(fields) <= high:
                expected = "ADDR:PORT[:RSPORT]" if low else "HOST[:PORT]"
                raise ValueError(f"bad address {show(text)}: expected {expected}")
        except ValueError as exc:
            self.error(number, f"{where}: {exc}")
            return None
        ok = True
        numbers: list[int] = []
        for field in fields:
            try:
                numbers.append(port_field(field))
            except ValueError as exc:
                self.error(number, f"{where}: {exc}")
                ok = False
        try:
            address = self.addresses.address(host, bracketed)
        except ValueError as exc:
            self.error(number, f"{where}: {exc}")
            return None
        return (address, host, numbers) if ok else None

    def service(self, number: int, tokens: list[str], g: GlobalOptions) -> VirtualService | None:
        """Build one VS line (`!` already removed), or record why it is wrong."""
        if not tokens:
            self.error(number, f"malformed virtual service line: expected {VS_SYNTAX}")
            return None
        tag = tokens[0]
        if not valid_tag(tag):
            self.error(number, f"bad virtual service tag {show(tag)}: use {TAG_CHARS}")
            return None
        first = self.vs_tags.get(tag)
        if first is not None:
            self.error(number, f"duplicate virtual service tag '{tag}' (first at line {first})")
            return None
        self.vs_tags[tag] = number
        where = f"virtual service '{tag}'"
        if len(tokens) < 3:
            missing = "ADDR:PORT and CHECK" if len(tokens) == 1 else "CHECK"
            self.error(number, f"{where}: missing {missing}: expected {VS_SYNTAX}")
            return None
        where_to = self.address(number, where, tokens[1], (1, 2))
        try:
            form = parse_check_column(tokens[2])
        except ValueError as exc:
            self.error(number, f"{where}: {exc}")
            form = None
        check: CheckSpec | None = None
        args: list[str] = []
        option_tokens = tokens[3:]
        if form is not None and form.kind is CheckKind.EXEC:
            args, option_tokens = split_exec_args(option_tokens)
        opts, problems = parse_vs_options(option_tokens)
        for problem in problems:
            self.error(number, f"{where}: {problem}")
        if "sorry_server" in opts:
            self.sorry_refs.append((number, tag, opts["sorry_server"]))
        if form is not None and not problems:
            check, problems = build_spec(form, args, opts, g)
            for problem in problems:
                self.error(number, f"{where}: {problem}")
        if where_to is None or form is None or problems:
            return None
        assert check is not None
        address, name, ports = where_to
        vs = VirtualService(
            tag=tag,
            address=address,
            port=ports[0],
            rs_port=ports[-1],
            check=check,
            proto=opts.get("proto", Proto.TCP),
            email=opts.get("email", False),
            sorry_server=opts.get("sorry_server"),
            scheduler=opts.get("scheduler", g.ipvs_scheduler),
            method=opts.get("method", g.ipvs_method),
            persistent=opts.get("persistent"),
            name=name,
            line=number,
            depool_threshold=opts.get("depool_threshold", g.check_depool_threshold),
            agent_port=opts.get("agent"),
            agent_interval=opts.get("agent_interval"),
        )
        return vs if self.unique_service(vs) else None

    def unique_service(self, vs: VirtualService) -> bool:
        """Whether no earlier VS has this (proto, address, port); records an error if one has."""
        key = (vs.proto, vs.address, vs.port)
        other = self._service_keys.get(key)
        if other is None:
            self._service_keys[key] = (vs.tag, vs.line)
            return True
        addr = f"[{vs.address}]" if ":" in vs.address else vs.address
        self.error(
            vs.line,
            f"virtual service '{vs.tag}': {vs.proto.value} {addr}:{vs.port} is already used by "
            f"virtual service '{other[0]}' (line {other[1]})",
        )
        return False

    def host(self, number: int, tokens: list[str]) -> Host | None:
        """Build one host line, or record why it is wrong."""
        tag, text, *items = tokens
        if not valid_tag(tag):
            self.error(number, f"bad host tag {show(tag)}: use {TAG_CHARS} in {HOST_SYNTAX}")
            return None
        first = self.host_tags.get(tag)
        if first is not None:
            self.error(number, f"duplicate host tag '{tag}' (first at line {first})")
            return None
        self.host_tags[tag] = number
        where = f"host '{tag}'"
        where_to = self.address(number, where, text, (0, 1))
        unique = where_to is not None and self.unique_host(tag, number, where_to[0], where_to[2])
        options, items = self.host_options(number, where, items)
        weights = self.weights(number, where, items)
        if where_to is None or weights is None or options is None or not unique:
            return None
        address, name, ports = where_to
        if not self.same_family(tag, number, address, weights):
            return None
        return Host(tag, address, ports[0] if ports else None, weights, name, number, **options)

    def host_options(
        self, number: int, where: str, tokens: list[str]
    ) -> tuple[dict[str, Any] | None, list[str]]:
        """The host options (`agent=`, `agent_interval=`) of a host line (None if one is wrong),
        and its other items. A VS tagged like an option keeps the original meaning: a weight."""
        options: dict[str, Any] = {}
        if not any("agent" in token.lower() for token in tokens):
            return options, tokens  # the common line: weights only (parsing stays as fast)
        rest: list[str] = []
        failed = False
        for item in (part for token in tokens for part in token.split(",") if part):
            key, eq, text = item.partition("=")
            if not eq or key.lower() not in HOST_OPTIONS or key in self.vs_tags:
                rest.append(item)
                continue
            try:
                name, value = parse_host_option(key.lower(), text)
            except ValueError as exc:
                self.error(number, f"{where}: option {key.lower()}: bad value {show(text)}: {exc}")
                failed = True
                continue
            if name in options:
                self.error(number, f"{where}: option '{key.lower()}' given twice")
                failed = True
            options[name] = value
        return (None if failed else options), rest

    def weights(
        self, number: int, where: str, tokens: list[str]
    ) -> tuple[tuple[str, int], ...] | None:
        """The `VSTAG=WEIGHT` items of a host line, or None if any is wrong."""
        weights: dict[str, int] = {}
        failed = False
        for item in (part for token in tokens for part in token.split(",") if part):
            vs_tag, eq, text = item.partition("=")
            if not (eq and vs_tag and text):
                self.error(number, f"{where}: malformed pair {show(item)}: expected VSTAG=WEIGHT")
            elif vs_tag not in self.vs_tags:
                known = _known(list(self.vs_tags))
                self.error(
                    number, f"{where}: unknown virtual service {show(vs_tag)} (known: {known})"
                )
            elif vs_tag in weights:
                self.error(number, f"{where}: virtual service '{vs_tag}' listed twice")
            else:
                try:
                    weights[vs_tag] = parse_int(text, 0, 65535)
                    continue
                except ValueError:
                    self.error(
                        number,
                        f"{where}: bad weight {show(text)} for virtual service '{vs_tag}': "
                        "expected an integer 0..65535",
                    )
            failed = True
        return None if failed else tuple(weights.items())

    def same_family(
        self, tag: str, number: int, address: str, weights: tuple[tuple[str, int], ...]
    ) -> bool:
        """Whether the host has the address family of each VS it is on; records an error if not."""
        ok = True
        for vs_tag, _ in weights:
            vs_address = self.vs_addresses.get(vs_tag)
            if vs_address is None or (":" in vs_address) == (":" in address):
                continue
            shown, family = (f"[{address}]", "IPv6") if ":" in address else (address, "IPv4")
            other = "IPv4" if family == "IPv6" else "IPv6"
            self.error(number, f"host '{tag}' {shown} is {family} but vs '{vs_tag}' is {other}")
            ok = False
        return ok

    def unique_host(self, tag: str, number: int, address: str, ports: list[int]) -> bool:
        """Whether no earlier host has this address and port; records an error if one has."""
        port = ports[0] if ports else None  # a host without port compares with port None
        other = self._host_keys.setdefault((address, port), (tag, number))
        if other == (tag, number):
            return True
        shown = f"[{address}]" if ":" in address else address
        shown += f":{port}" if port is not None else ""
        self.error(
            number,
            f"host '{tag}': address {shown} is already used by host '{other[0]}' (line {other[1]})",
        )
        return False
