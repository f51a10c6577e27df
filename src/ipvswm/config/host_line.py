"""A host line: `TAG HOST[:PORT] [VSTAG=WEIGHT ...]` to a Host (SPEC §2.3)."""

from __future__ import annotations

from typing import Any

from ipvswm.config.agent import HOST_OPTIONS
from ipvswm.config.agent import parse_host_option
from ipvswm.config.model import Host
from ipvswm.config.model import shown_address
from ipvswm.config.parse_state import HOST_SYNTAX
from ipvswm.config.parse_state import ParseState
from ipvswm.config.values import parse_int
from ipvswm.config.values import show

_MAX_KNOWN = 10  # longest list of known tags in a message


def host_line(state: ParseState, number: int, tokens: list[str]) -> Host | None:
    """Build one host line, or record why it is wrong."""
    tag, text, *items = tokens
    if not state.declare(number, tag, "host", f" in {HOST_SYNTAX}"):
        return None
    where = f"host '{tag}'"
    where_to = state.address(number, where, text, (0, 1))
    unique = where_to is not None and _unique_host(state, tag, number, where_to[0], where_to[2])
    options, items = _host_options(state, number, where, items)
    weights = _weights(state, number, where, items)
    if where_to is None or weights is None or options is None or not unique:
        return None
    address, name, ports = where_to
    if not _same_family(state, tag, number, address, weights):
        return None
    return Host(tag, address, ports[0] if ports else None, weights, name, number, **options)


def _host_options(
    state: ParseState, number: int, where: str, tokens: list[str]
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
        if not eq or key.lower() not in HOST_OPTIONS or key in state.vs_tags:
            rest.append(item)
            continue
        try:
            name, value = parse_host_option(key.lower(), text)
        except ValueError as exc:
            state.error(number, f"{where}: option {key.lower()}: bad value {show(text)}: {exc}")
            failed = True
            continue
        if name in options:
            state.error(number, f"{where}: option '{key.lower()}' given twice")
            failed = True
        options[name] = value
    return (None if failed else options), rest


def _weights(
    state: ParseState, number: int, where: str, tokens: list[str]
) -> tuple[tuple[str, int], ...] | None:
    """The `VSTAG=WEIGHT` items of a host line, or None if any is wrong."""
    weights: dict[str, int] = {}
    failed = False
    for item in (part for token in tokens for part in token.split(",") if part):
        vs_tag, eq, text = item.partition("=")
        if not (eq and vs_tag and text):
            state.error(number, f"{where}: malformed pair {show(item)}: expected VSTAG=WEIGHT")
        elif vs_tag not in state.vs_tags:
            known = _known(list(state.vs_tags))
            state.error(number, f"{where}: unknown virtual service {show(vs_tag)} (known: {known})")
        elif vs_tag in weights:
            state.error(number, f"{where}: virtual service '{vs_tag}' listed twice")
        else:
            try:
                weights[vs_tag] = parse_int(text, 0, 65535)
                continue
            except ValueError:
                state.error(
                    number,
                    f"{where}: bad weight {show(text)} for virtual service '{vs_tag}': "
                    "expected an integer 0..65535",
                )
        failed = True
    return None if failed else tuple(weights.items())


def _same_family(
    state: ParseState, tag: str, number: int, address: str, weights: tuple[tuple[str, int], ...]
) -> bool:
    """Whether the host has the address family of each VS it is on; records an error if not."""
    ok = True
    for vs_tag, _ in weights:
        vs_address = state.vs_addresses.get(vs_tag)
        if vs_address is None or (":" in vs_address) == (":" in address):
            continue
        shown, family = (f"[{address}]", "IPv6") if ":" in address else (address, "IPv4")
        other = "IPv4" if family == "IPv6" else "IPv6"
        state.error(number, f"host '{tag}' {shown} is {family} but vs '{vs_tag}' is {other}")
        ok = False
    return ok


def _unique_host(state: ParseState, tag: str, number: int, address: str, ports: list[int]) -> bool:
    """Whether no earlier host has this address and port; records an error if one has."""
    port = ports[0] if ports else None  # a host without port compares with port None
    other = state.host_keys.setdefault((address, port), (tag, number))
    if other == (tag, number):
        return True
    shown = shown_address(address)
    shown += f":{port}" if port is not None else ""
    state.error(
        number,
        f"host '{tag}': address {shown} is already used by host '{other[0]}' (line {other[1]})",
    )
    return False


def _known(tags: list[str]) -> str:
    if not tags:
        return "none defined"
    shown = ", ".join(tags[:_MAX_KNOWN])
    return shown + (f", ... ({len(tags)} in all)" if len(tags) > _MAX_KNOWN else "")
