"""What `show` and `dump` print: text lines and the matching JSON data (pure; SPEC §7).

Definitions used by `show host[s]`:
- `Proc.*` are the kernel's values as last read (a pair absent from the kernel shows `-`).
- `Total.ActiveConn` / `Total.Weight`: sums over the host's shown pairs of the kernel's active
  connections / kernel weights (absent = 0): the traffic the host carries now.
- A pair is *settled* when its phase is ENABLED or DISABLED (ENABLED at weight 0 is "drained by
  config") and its kernel weight (absent = 0) equals its desired weight.
- `Combined.TStatus` is `0-DONE` when every shown pair of the host is settled; else `N-LIST` where
  N is the number of unsettled pairs and LIST the sorted distinct pending states among them:
  `AWAIT_PASS`, `RAMPING`, or `SYNC` (phase settled but the kernel does not show the desired weight
  yet). E.g. `2-AWAIT_PASS,SYNC`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable
from collections.abc import Mapping

from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import VirtualService
from ipvswm.config.options import GLOBAL_KEYS
from ipvswm.console.control import CheckView
from ipvswm.engine.kept import describe as describe_kept
from ipvswm.engine.mapping import resolve_sorry
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import VsState
from ipvswm.kernel.table import Table
from ipvswm.timestamps import is_time_field
from ipvswm.timestamps import utc_text
from ipvswm.views import PairView
from ipvswm.views import pair_views
from ipvswm.views import service_key

Rendered = tuple[list[str], dict[str, object]]
"""Text lines and JSON data of one reply."""


def addr_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def when(stamp: float | None) -> str:
    """A wall-clock time as every reader shows it (`timestamps.utc_text`), or `-`."""
    return utc_text(stamp)


def jsonable(value: object) -> object:
    """Dataclasses, enums, sets and tuples as plain JSON values (sets sorted)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, frozenset | set):
        return sorted(jsonable(v) for v in value)  # type: ignore[type-var]
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def tstatus(views: Iterable[PairView]) -> str:
    """`Combined.TStatus` of some pairs (see the module docstring)."""
    pending = [p for p in (v.pending() for v in views) if p is not None]
    if not pending:
        return "0-DONE"
    return f"{len(pending)}-{','.join(sorted(set(pending)))}"


def printable(text: str) -> str:
    """Text with control characters and terminal escapes shown as \\xNN / \\uNNNN.

    Console input reaches logs and terminals: an ESC or a bidi override in a reason or a name
    must neither repaint the operator's terminal nor forge a log line.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _reasons_text(view: PairView) -> str:
    parts = [f"host:{r}" for r in sorted(view.host_reasons)] + sorted(view.pair_reasons)
    return ",".join(parts) or "-"


def _ramp_text(view: PairView, now: float) -> str:
    if view.ramp_deadline is not None:
        return f"{max(view.ramp_deadline - now, 0.0):.1f}s(until {when(view.ramp_deadline)})"
    if view.ramp_duration is not None:
        return f"pending:{view.ramp_duration:g}s"
    return "-"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def pair_line(view: PairView, now: float) -> str:
    """One pair: `HOST/VS ADDR:PORT Key=value …`."""
    return (
        f"{view.host}/{view.vs} {addr_port(view.address, view.port)}"
        f" Reasons={_reasons_text(view)} Weight.Config={view.configured}"
        f" Weight.Override={_opt(view.override)} Weight.Desired={view.desired}"
        f" Proc.Weight={_opt(view.kernel_weight)} Proc.ActiveConn={view.active}"
        f" Proc.InActConn={view.inactive} Ramp={_ramp_text(view, now)} Phase={view.phase.value}"
    )


def pair_data(view: PairView) -> dict[str, object]:
    """One pair as `show`'s JSON data (`reasons` are the pair-level ones here)."""
    return {
        "vs": view.vs,
        "host": view.host,
        "address": view.address,
        "port": view.port,
        "host_reasons": sorted(view.host_reasons),
        "reasons": sorted(view.pair_reasons),
        "configured": view.configured,
        "override": view.override,
        "desired": view.desired,
        "phase": view.phase.value,
        "ramp_duration": view.ramp_duration,
        "ramp_deadline": view.ramp_deadline,
        "kernel_weight": view.kernel_weight,
        "active": view.active,
        "inactive": view.inactive,
        "target": view.target,
        "pending": view.pending(),
    }


def show_hosts(views: list[PairView], host_order: Iterable[str], now: float) -> Rendered:
    """`show host[s]`: each host's pair lines, then its summary line."""
    lines: list[str] = []
    hosts: list[dict[str, object]] = []
    for host in host_order:
        mine = [v for v in views if v.host == host]
        total_active = sum(v.active for v in mine)
        total_weight = sum(v.kernel_or_zero for v in mine)
        status = tstatus(mine)
        lines.extend(pair_line(v, now) for v in mine)
        lines.append(
            f"{host} Total.ActiveConn={total_active} Total.Weight={total_weight}"
            f" Combined.TStatus={status}"
        )
        hosts.append(
            {
                "host": host,
                "pairs": [pair_data(v) for v in mine],
                "total_active": total_active,
                "total_weight": total_weight,
                "tstatus": status,
            }
        )
    return lines, {"hosts": hosts}


def _views_by_vs(
    config: Config, snap: StateSnapshot, table: Table, tags: Iterable[str] | None = None
) -> dict[str, list[PairView]]:
    """The pairs of some VSs (all if None), grouped by VS: one pass over the config."""
    wanted = None if tags is None else list(tags)
    keys = [vs.tag for vs in config.services] if wanted is None else wanted
    by_vs: dict[str, list[PairView]] = {tag: [] for tag in keys}
    for view in pair_views(config, snap, table, vss=wanted):
        by_vs[view.vs].append(view)
    return by_vs


def kept_hosts(snap: StateSnapshot, tags: Iterable[str], keep_for: float) -> Rendered:
    """The kept admin state of removed hosts/pairs: one `kept` line per host."""
    lines: list[str] = []
    items: list[dict[str, object]] = []
    for tag in tags:
        entry = snap.kept.get(tag)
        if entry is None:
            continue
        until = entry.removed_at + keep_for
        lines.append(
            f"kept {tag}: {describe_kept(entry)} (removed {when(entry.removed_at)},"
            f" forgotten at {when(until)} or by 'forget host {tag}')"
        )
        items.append({"host": tag, **_dict(jsonable(entry)), "forget_at": until})
    return lines, {"kept": items}


def _dict(value: object) -> dict[str, object]:
    assert isinstance(value, dict)
    return value


def _vs_summary(
    vs: VirtualService, views: list[PairView], snap: StateSnapshot
) -> tuple[str, dict[str, object]]:
    state = snap.vss.get(vs.tag, VsState())
    desired = sum(v.desired for v in views)
    kernel = sum(v.kernel_or_zero for v in views)
    sorry = "on" if state.sorry_on else "off"
    line = (
        f"{vs.tag} {service_key(vs)} Check={vs.check.describe()} Hosts={len(views)}"
        f" Weight.Desired={desired} Proc.Weight={kernel} Sorry={sorry}"
    )
    data: dict[str, object] = {
        "vs": vs.tag,
        "service": str(service_key(vs)),
        "check": vs.check.describe(),
        "hosts": len(views),
        "weight_desired": desired,
        "weight_kernel": kernel,
        "sorry_on": state.sorry_on,
        "sorry_since": state.sorry_since,
    }
    return line, data


def show_vs_list(config: Config, snap: StateSnapshot, table: Table) -> Rendered:
    """`show vs`: one line per virtual service."""
    lines: list[str] = []
    items: list[dict[str, object]] = []
    by_vs = _views_by_vs(config, snap, table)
    for vs in config.services:
        line, data = _vs_summary(vs, by_vs[vs.tag], snap)
        lines.append(line)
        items.append(data)
    return lines, {"vss": items}


def show_vs_detail(
    config: Config, tags: Iterable[str], snap: StateSnapshot, table: Table, now: float
) -> Rendered:
    """`show vs V`: the VS line, its pairs and its sorry server."""
    lines: list[str] = []
    items: list[dict[str, object]] = []
    tag_list = list(tags)
    by_vs = _views_by_vs(config, snap, table, tag_list)
    for tag in tag_list:
        vs = config.service(tag)
        assert vs is not None  # the caller checked the names
        views = by_vs[tag]
        line, data = _vs_summary(vs, views, snap)
        lines.append(line)
        lines.extend(f"  {pair_line(v, now)}" for v in views)
        # The engine's own choice (skips a sorry server of the other address family); its
        # destination is where the kernel holds it (dr/tun: on the VS port, as the pairs).
        sorry = resolve_sorry(config, vs)
        state = snap.vss.get(tag, VsState())
        if sorry is None:
            lines.append("  sorry server: none configured")
        else:
            address, port = sorry.dest.address, sorry.port
            since = f" since {when(state.sorry_since)}" if state.sorry_on else ""
            in_kernel = table.destination(service_key(vs), sorry.dest) is not None
            lines.append(
                f"  sorry server: {sorry.label} {addr_port(address, port)}"
                f" {'on' if state.sorry_on else 'off'}{since} Proc.Present={int(in_kernel)}"
            )
        data["pairs"] = [pair_data(v) for v in views]
        data["sorry_server"] = (
            None
            if sorry is None
            else {"name": sorry.label, "address": sorry.dest.address, "port": sorry.port}
        )
        items.append(data)
    return lines, {"vss": items}


def show_checks(checks: list[CheckView], now: float) -> Rendered:
    """`show checks`: one line per checker."""
    lines = []
    for c in sorted(checks, key=lambda c: c.target):
        age = "-" if c.last_started is None else f"{max(now - c.last_started, 0.0):.1f}s ago"
        took = "-" if c.last_duration is None else f"{c.last_duration:.3f}s"
        lines.append(
            f"{c.target} Status={c.status.value} Last={age} Duration={took}"
            f" Cause={c.cause or '-'} Pairs={','.join(c.pairs) or '-'}"
            + (f" NoVerdict={c.no_verdict}" if c.no_verdict else "")
        )
    return lines, {"checks": [jsonable(c) for c in checks]}


def key_values(values: Mapping[str, object], indent: str = "") -> list[str]:
    """`key = value` lines, in the mapping's order (times as `when` shows them)."""
    return [f"{indent}{k} = {_plain(k, v)}" for k, v in values.items()]


def _plain(name: str, value: object) -> str:
    """One value as text: never a Python repr (nested values are JSON)."""
    shown = jsonable(value)
    if isinstance(shown, int | float) and not isinstance(shown, bool) and is_time_field(name):
        return when(shown)
    if isinstance(shown, list):
        if all(isinstance(v, list) and len(v) == 2 for v in shown):  # e.g. a host's weights
            return ",".join(f"{_scalar(v[0])}:{_scalar(v[1])}" for v in shown) or "-"
        return ",".join(_scalar(v) for v in shown) or "-"
    return "-" if shown is None or shown == "" else _scalar(shown)


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))  # `3`, as a config file writes it, not `3.0`
    return "-" if value is None else str(value)


def dump_fields(title: str, value: object, indent: str = "") -> list[str]:
    """A dataclass as a title line and one indented `field = value` line per field."""
    data = jsonable(value)
    assert isinstance(data, dict)
    return [f"{indent}{title}", *key_values(data, indent + "  ")]


def dump_hosts(config: Config, snap: StateSnapshot, tags: Iterable[str]) -> Rendered:
    """`dump host[s] [H]`: config and every stored field of each host and its pairs."""
    lines: list[str] = []
    items: list[dict[str, object]] = []
    for tag in tags:
        host = config.host(tag)
        assert host is not None
        state = snap.hosts.get(tag, HostState())
        pairs = {vs: snap.pairs.get((vs, tag), PairState()) for vs, _ in host.weights}
        lines.extend(dump_fields(f"host {tag}", host))
        lines.extend(dump_fields("state", state, "  "))
        for vs, pair in pairs.items():
            lines.extend(dump_fields(f"pair {vs}/{tag}", pair, "  "))
        items.append({"config": jsonable(host), "state": jsonable(state), "pairs": jsonable(pairs)})
    return lines, {"hosts": items}


def dump_vss(config: Config, snap: StateSnapshot, tags: Iterable[str]) -> Rendered:
    """`dump vs [V]`: config and stored state of each virtual service."""
    lines: list[str] = []
    items: list[dict[str, object]] = []
    for tag in tags:
        vs = config.service(tag)
        assert vs is not None
        state = snap.vss.get(tag, VsState())
        managed = service_key(vs) in snap.managed
        lines.extend(dump_fields(f"vs {tag}", vs))
        lines.extend(dump_fields("state", state, "  "))
        lines.append(f"  managed = {int(managed)}")
        items.append({"config": jsonable(vs), "state": jsonable(state), "managed": managed})
    return lines, {"vss": items}


def dump_options(options: GlobalOptions, log_level: int | None) -> Rendered:
    """`dump options`: every global key as the config file spells it, with the value in force.

    `log_level` is the level in force now (a console's `log level N` changes it at run time;
    None: as the file says). The console token is a secret: never shown.
    """
    lines: list[str] = []
    data: dict[str, object] = {}
    for key in GLOBAL_KEYS:
        value: object = getattr(options, key.field)
        note = ""
        if key.field == "management_socket_token" and value:
            value = "(set, not shown)"
        elif key.field == "log_level" and log_level is not None and log_level != value:
            note = f"  # set at run time by 'log level {log_level}'; the file says {value}"
            value = log_level
        data[key.key] = jsonable(value)
        lines.append(f"{key.key} = {_plain(key.key, value)}{note}")
    return lines, {"options": data}
