"""What one parse collects as it goes: the errors kept, the tags declared, addresses seen."""

from __future__ import annotations

import heapq

from ipvswm.config.model import Proto
from ipvswm.config.resolve import AddressResolver
from ipvswm.config.resolve import Resolver
from ipvswm.config.resolve import split_host_port
from ipvswm.config.result import MAX_ERRORS
from ipvswm.config.result import ConfigError
from ipvswm.config.values import port_field
from ipvswm.config.values import show
from ipvswm.config.values import valid_tag

VS_SYNTAX = "'! TAG ADDR:PORT[:RSPORT] CHECK [OPTIONS]'"
HOST_SYNTAX = "'TAG HOST[:PORT] [VSTAG=WEIGHT ...]'"
TAG_CHARS = "letters, digits, '_', '.' and '-'"


class ParseState:
    """The state a parse shares between its lines: every error, declared tag and address key."""

    def __init__(self, path: str, resolver: Resolver | None) -> None:
        self.path = path
        self.addresses = AddressResolver(resolver)
        # The MAX_ERRORS errors of lowest line as a max-heap of (-line, -seq, message): a line's
        # errors keep their order; the others are counted in `more`.
        self.errors: list[tuple[int, int, str]] = []
        self.seq = 0
        self.more = 0
        self.vs_tags: dict[str, int] = {}  # every declared VS tag -> line, even of a broken line
        self.host_tags: dict[str, int] = {}
        self.sorry_refs: list[tuple[int, str, str]] = []  # (line, vs tag, host tag)
        self.vs_addresses: dict[str, str] = {}  # tag -> address of every valid VS
        # Duplicate detection by dict: (proto, address, port) / (address, port) -> (tag, line).
        self.service_keys: dict[tuple[Proto, str, int], tuple[str, int]] = {}
        self.host_keys: dict[tuple[str, int | None], tuple[str, int]] = {}

    def error(self, line: int, message: str) -> None:
        """Record an error at `line` (only the MAX_ERRORS of lowest line are kept)."""
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

    def declare(self, number: int, tag: str, what: str, syntax: str = "") -> bool:
        """Declare the tag of a VS (`what` "virtual service") or host line: whether it is valid
        and new; records an error if not. A line that fails later still declares its tag, so
        lines naming it do not pile up follow-on errors."""
        tags = self.host_tags if what == "host" else self.vs_tags
        if not valid_tag(tag):
            self.error(number, f"bad {what} tag {show(tag)}: use {TAG_CHARS}{syntax}")
            return False
        first = tags.get(tag)
        if first is not None:
            self.error(number, f"duplicate {what} tag '{tag}' (first at line {first})")
            return False
        tags[tag] = number
        return True

    def kept_errors(self) -> tuple[ConfigError, ...]:
        """The errors kept, by line, then in the order found."""
        kept = sorted(self.errors, reverse=True)
        return tuple(ConfigError(self.path, -n, m) for n, _, m in kept)

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
