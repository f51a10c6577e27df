"""Where the shared state meets this director's config (issue 12): pure helpers for the owner.

- `forget_scope`: which shared keys a `forget host H` typed here removes (the parts of H that are
  removed from this director's config and kept by its engine).
- `configured_here`: whether a shared change concerns a host/pair this director has; a deletion
  made by another director's `forget host` is skipped where its parts are not configured (the
  `ForgetHost` that follows drops this director's own kept state of them).
- `local_marks`: the changes made here with `local`, in words, for `show hosts`.
- `late_changes`: the shared state of hosts and pairs that a reload adds, so they get the
  reasons and overrides the other directors gave them at once, not at the next full read.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from collections.abc import Mapping

from ipvswm.cluster import keys
from ipvswm.config.model import Config
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn

PairId = tuple[str, str]  # (vs, host)


def forget_scope(
    config: Config, snap: StateSnapshot, host: str
) -> tuple[bool, tuple[str, ...] | None]:
    """(whether a `forget host H` here changes shared keys, the VSs it covers or None for all).

    Nothing is shared when the engine keeps nothing of H (it then refuses the command itself).
    """
    entry = snap.kept.get(host)
    if entry is None:
        return False, None
    if config.host(host) is None:
        return True, None
    return True, tuple(sorted(entry.pairs))


def configured_here(config: Config, change: keys.SharedChange) -> bool:
    """Whether `change` is about a host (or pair) this director's config has."""
    event = change.event
    if isinstance(event, ForgetHost):
        return True
    found = config.host(event.host)
    if found is None:
        return False
    if isinstance(event, SetHostOff | SetHostOn):
        return True
    have = {vs for vs, _ in found.weights}
    return event.vss is None or all(vs in have for vs in event.vss)


def local_marks(local: Iterable[str], shared: Mapping[str, str]) -> dict[str, list[str]]:
    """The `local` changes in force here, by host, in the console's words (for `show hosts`).

    A reason the store does not have was added here only; one it has was removed here only.
    """
    marks: dict[str, list[str]] = {}
    for key in sorted(local):
        parts = key.split("/")
        if len(parts) < 3 or parts[0] != "host":
            continue
        where = f" on vs {parts[3]}" if len(parts) >= 5 and parts[2] == "vs" else ""
        if parts[-1] == "override":
            text = f"override{where}"
        elif parts[-2] == "reason":
            reason = urllib.parse.unquote(parts[-1])
            text = f"{'without ' if key in shared else ''}reason {reason}{where}"
        else:
            continue
        marks.setdefault(parts[1], []).append(text)
    return marks


def pair_ids(config: Config) -> set[PairId]:
    """Every (vs, host) pair of a config."""
    return {(vs, h.tag) for h in config.hosts for vs, _ in h.weights}


def late_changes(
    shared: Mapping[str, str], local: Iterable[str], old: Config, new: Config
) -> list[keys.SharedChange]:
    """The shared state of the hosts and pairs `new` has and `old` did not, as admin events.

    Keys changed here with `local` are left out: this director differs from the store there on
    purpose. Host-level keys count for an added host, pair-level keys for an added pair.
    """
    old_hosts = {h.tag for h in old.hosts}
    added_hosts = {h.tag for h in new.hosts} - old_hosts
    added_pairs = pair_ids(new) - pair_ids(old)
    if not added_hosts and not added_pairs:
        return []
    bases = tuple(keys.host_base(h) + "reason/" for h in added_hosts)
    bases += tuple(keys.host_base(h, vs) for vs, h in added_pairs)
    skip = set(local)
    subset = {k: v for k, v in shared.items() if k.startswith(bases) and k not in skip}
    return keys.diff({}, subset)
