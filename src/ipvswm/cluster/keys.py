"""The shared state's keys in etcd, and the two pure translations (issue 12).

Pure: no I/O. Under the prefix `/ipvswm/NAME/` (`Cluster.Name`):

    host/H/reason/R          a host-level reason           {"node", "at"}
    host/H/on                the last host-level enable     {"node", "at", "ramp"}
    host/H/vs/V/reason/R     a pair-level reason
    host/H/vs/V/on           the last pair-level enable
    host/H/vs/V/override     an override                    {"node", "at", "weight": N|null}
    forget/H                 the last `forget host H`       {"node", "at", "vss": [V…]|null}
    member/NODE              a director's presence (lease)  {"node", "pid", "since"}

One key per reason and per override, so two operators adding different reasons at once both win
(no read-modify-write). An enable writes its `on` key with the explicit ramp (null without `in N`)
in the same transaction as the deletions, so a director applying the deletions knows the ramp and
who typed it. `forget host H` deletes `host/H/` (or, for a host still configured where it was
typed, the `host/H/vs/V/` of its removed pairs) and writes `forget/H` in the same transaction, so
the other directors drop their own kept state of H too. Reasons are %-quoted (they may hold a `/`).

`ops_for` turns an admin event into a transaction; `diff` turns two versions of the shared keys
(what a director believed, what the store holds) into the admin events that lead from one to the
other, which each director then feeds to its own engine.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass

from ipvswm.cluster.etcd import Delete
from ipvswm.cluster.etcd import Op
from ipvswm.cluster.etcd import Put
from ipvswm.events import AdminEvent
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn

ROOT = "/ipvswm/"
MEMBER = "member/"
HOST = "host/"
FORGET = "forget/"


def cluster_prefix(name: str) -> str:
    """The key prefix of cluster `name`."""
    return f"{ROOT}{name}/"


def _q(reason: str) -> str:
    return urllib.parse.quote(reason, safe="")


def _meta(node: str, at: float, **more: object) -> str:
    return json.dumps({"node": node, "at": round(at, 6), **more}, sort_keys=True)


def host_base(host: str, vs: str | None = None) -> str:
    """The (relative) key prefix of a host, or of one of its pairs."""
    return f"{HOST}{host}/" if vs is None else f"{HOST}{host}/vs/{vs}/"


def ops_for(
    event: AdminEvent,
    node: str,
    now: float,
    vss_of: Callable[[str], tuple[str, ...]],
) -> list[Op]:
    """The transaction (relative keys) that shares `event`; `vss_of(host)` for an override
    without a VS list."""
    if isinstance(event, SetOverride):
        vss = event.vss if event.vss is not None else vss_of(event.host)
        value = _meta(node, now, weight=event.weight)
        return [Put(host_base(event.host, vs) + "override", value) for vs in vss]
    bases = (
        [host_base(event.host)]
        if isinstance(event, SetHostOff | SetHostOn)
        else [host_base(event.host, vs) for vs in event.vss]
    )
    ops: list[Op] = []
    for base in bases:
        if isinstance(event, SetHostOff | SetPairsOff):
            ops.extend(
                Put(f"{base}reason/{_q(r)}", _meta(node, now)) for r in sorted(event.reasons)
            )
            continue
        if event.reasons is None:
            ops.append(Delete(f"{base}reason/", prefix=True))
        else:
            ops.extend(Delete(f"{base}reason/{_q(r)}") for r in sorted(event.reasons))
        ops.append(Put(f"{base}on", _meta(node, now, ramp=event.ramp)))
    return ops


def forget_key(host: str) -> str:
    """The (relative) key that records the last `forget host H`."""
    return f"{FORGET}{host}"


def forget_ops(
    host: str, node: str = "?", now: float = 0.0, vss: tuple[str, ...] | None = None
) -> list[Op]:
    """`forget host H`: every shared key of the host goes (`vss`: only those of these pairs),
    and `forget/H` says who forgot it, for the other directors' own kept state."""
    bases = [host_base(host)] if vss is None else [host_base(host, vs) for vs in vss]
    ops: list[Op] = [Delete(base, prefix=True) for base in bases]
    listed = None if vss is None else list(vss)
    ops.append(Put(forget_key(host), _meta(node, now, vss=listed)))
    return ops


# --- reading keys back ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SharedChange:
    """One admin event learnt from the store, with who made it and when (their clock)."""

    event: AdminEvent | ForgetHost
    node: str
    at: float | None
    forgotten: bool = False  # a deletion made by `forget host` (see `diff`)


@dataclass(slots=True)
class _Subject:
    """The shared state of one host (vs None) or one pair."""

    reasons: dict[str, str]  # reason -> raw value
    on: str | None = None
    override: str | None = None


def _parse(shared: Mapping[str, str]) -> dict[tuple[str, str | None], _Subject]:
    subjects: dict[tuple[str, str | None], _Subject] = {}
    for key, value in shared.items():
        parts = key.split("/")
        if len(parts) < 3 or parts[0] != "host":
            continue
        host = parts[1]
        vs: str | None = None
        rest = parts[2:]
        if len(rest) >= 2 and rest[0] == "vs":
            vs, rest = rest[1], rest[2:]
        subject = subjects.setdefault((host, vs), _Subject({}))
        if len(rest) == 2 and rest[0] == "reason":
            subject.reasons[urllib.parse.unquote(rest[1])] = value
        elif rest == ["on"]:
            subject.on = value
        elif rest == ["override"] and vs is not None:
            subject.override = value
    return subjects


def _load(value: str | None) -> dict[str, object]:
    if value is None:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _who(value: str | None) -> tuple[str, float | None]:
    data = _load(value)
    at = data.get("at")
    return str(data.get("node", "?")), float(at) if isinstance(at, int | float) else None


def diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[SharedChange]:
    """The admin events that take a director from the shared keys `old` to `new`.

    A `forget host H` comes last for its host, and the deletions it made are attributed to its
    author and marked `forgotten` (a director where those parts are not configured skips them).
    """
    before, after = _parse(old), _parse(new)
    forgets = {
        key[len(FORGET) :]: value
        for key, value in new.items()
        if key.startswith(FORGET) and old.get(key) != value
    }
    changes: list[SharedChange] = []
    for host, vs in sorted(before.keys() | after.keys(), key=lambda s: (s[0], s[1] or "")):
        was = before.get((host, vs), _Subject({}))
        now = after.get((host, vs), _Subject({}))
        if host in forgets and (host, vs) not in after:
            node, at = _who(forgets[host])
            changes.extend(
                SharedChange(c.event, node, at, forgotten=True)
                for c in _changes(host, vs, was, now)
            )
            continue
        changes.extend(_changes(host, vs, was, now))
    for host in sorted(forgets):
        node, at = _who(forgets[host])
        changes.append(SharedChange(ForgetHost(host), node, at))
    return changes


def _changes(host: str, vs: str | None, was: _Subject, now: _Subject) -> list[SharedChange]:
    """The admin events that take one host (vs None) or one pair from `was` to `now`."""
    changes: list[SharedChange] = []
    added = now.reasons.keys() - was.reasons.keys()
    removed = was.reasons.keys() - now.reasons.keys()
    if added:
        node, at = _who(now.reasons[min(added)])
        reasons = frozenset(added)
        off: AdminEvent = (
            SetHostOff(host, reasons) if vs is None else SetPairsOff(host, (vs,), reasons)
        )
        changes.append(SharedChange(off, node, at))
    if removed:
        on_value = now.on if now.on is not None else was.on
        node, at = _who(on_value)
        ramp = _load(now.on).get("ramp")
        ramp_s = float(ramp) if isinstance(ramp, int | float) else None
        gone = frozenset(removed)
        on: AdminEvent = (
            SetHostOn(host, gone, ramp_s) if vs is None else SetPairsOn(host, (vs,), gone, ramp_s)
        )
        changes.append(SharedChange(on, node, at))
    if vs is not None and now.override != was.override:
        weight = _load(now.override).get("weight")
        node, at = _who(now.override if now.override is not None else was.override)
        value = weight if isinstance(weight, int) and not isinstance(weight, bool) else None
        changes.append(SharedChange(SetOverride(host, value, (vs,)), node, at))
    return changes


def describe_event(event: AdminEvent | ForgetHost) -> str:
    """An admin event in the console's words, for `from director NODE: …` log lines."""
    if isinstance(event, ForgetHost):
        return f"forget host {event.host}"
    where = ""
    if not isinstance(event, SetHostOff | SetHostOn) and event.vss is not None:
        where = f" for vs {','.join(event.vss)}"
    if isinstance(event, SetOverride):
        weight = "default" if event.weight is None else str(event.weight)
        return f"set host {event.host} weight {weight}{where}"
    if isinstance(event, SetHostOff | SetPairsOff):
        return f"set host {event.host} off{where} for reason {','.join(sorted(event.reasons))}"
    reasons = "*" if event.reasons is None else ",".join(sorted(event.reasons))
    ramp = f" in {event.ramp:g}" if event.ramp is not None else ""
    return f"set host {event.host} on{where} reason {reasons}{ramp}"


def touched_keys(ops: list[Op]) -> tuple[set[str], set[str], set[str]]:
    """(reason/override keys written, keys deleted, prefixes deleted) of a transaction."""
    written = {op.key for op in ops if isinstance(op, Put) and not op.key.endswith("/on")}
    deleted = {op.key for op in ops if isinstance(op, Delete) and not op.prefix}
    prefixes = {op.key for op in ops if isinstance(op, Delete) and op.prefix}
    return written, deleted, prefixes
