"""The admin state of removed hosts and pairs, kept to be restored when their tag comes back.

A mistaken edit, or a file caught half-written, must not put a host under maintenance back into
service when it reappears: its reasons, override and explicit ramp wait here (in the state
database) for `Config.ForgetAfter` seconds, or until `forget host H` (issue 10 item 2). Pure:
`KeptBook` is the engine's working copy, changed only within an engine step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ipvswm.engine.builder import StepBuilder
from ipvswm.engine.state import HostState
from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import KeptPair
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState


def pair_admin(state: PairState) -> KeptPair | None:
    """What of a pair's state is admin state worth keeping (None: nothing)."""
    if not state.reasons and state.override is None and state.ramp_duration is None:
        return None
    return KeptPair(state.reasons, state.override, state.ramp_duration)


def with_pair(entry: KeptHost | None, vs: str, admin: KeptPair, now: float) -> KeptHost:
    """`entry` (or a new one) also keeping a removed pair's admin state."""
    base = entry if entry is not None else KeptHost(now)
    return replace(base, removed_at=now, pairs={**base.pairs, vs: admin})


def with_host(entry: KeptHost | None, host: HostState, now: float) -> KeptHost:
    """`entry` (or a new one) also keeping a removed host's reasons."""
    base = entry if entry is not None else KeptHost(now)
    return replace(base, removed_at=now, reasons=host.reasons)


def restore_pair(state: PairState, admin: KeptPair) -> PairState:
    """A returning pair's state with its kept admin state back."""
    return replace(
        state, reasons=admin.reasons, override=admin.override, ramp_duration=admin.ramp_duration
    )


def describe(entry: KeptHost) -> str:
    """The kept state in operator words: `host reasons maint; vs www: reasons deploy, …`."""
    parts = []
    if entry.reasons:
        parts.append(f"host reasons {','.join(sorted(entry.reasons))}")
    for vs, admin in sorted(entry.pairs.items()):
        what = []
        if admin.reasons:
            what.append(f"reasons {','.join(sorted(admin.reasons))}")
        if admin.override is not None:
            what.append(f"override {admin.override}")
        if admin.ramp_duration is not None:
            what.append(f"ramp {admin.ramp_duration:g}s")
        parts.append(f"vs {vs}: {', '.join(what)}")
    return "; ".join(parts)


FORGET_NOTE = (
    "its admin state is kept and restored if it comes back within Config.ForgetAfter"
    " ('forget host {0}' drops it)"
)


class KeptBook:
    """The kept admin state of every removed host and pair, as one step changes it: each change
    is recorded in the step's builder (persisted, and logged in operator words)."""

    def __init__(self, entries: Mapping[str, KeptHost]) -> None:
        self.entries: dict[str, KeptHost] = dict(entries)
        self._due: float | None = None  # when the oldest entry expires (cache)

    def due(self, now: float) -> bool:
        """Whether an entry may have expired by `now` (`expire` then forgets it)."""
        return bool(self.entries) and (self._due is None or now >= self._due)

    def expired(self, host: str, now: float, keep_for: float) -> bool:
        """Whether the host's entry (if any) is past Config.ForgetAfter at `now`."""
        entry = self.entries.get(host)
        return entry is not None and entry.removed_at + keep_for <= now

    def set(self, host: str, entry: KeptHost | None, b: StepBuilder) -> None:
        """Keep `entry` for the host (an empty or None entry: forget it)."""
        if entry:
            self.entries[host] = entry
        elif self.entries.pop(host, None) is None and host not in b.kept:
            return
        b.kept[host] = entry or None
        self._due = None

    def keep_pair(self, pid: PairId, state: PairState, now: float, b: StepBuilder) -> None:
        """A pair removed: keep its admin state, if it has any."""
        admin = pair_admin(state)
        if admin is not None:
            self.set(pid[1], with_pair(self.entries.get(pid[1]), pid[0], admin, now), b)
            b.messages.append(f"vs {pid[0]} host {pid[1]} removed: {FORGET_NOTE.format(pid[1])}")

    def keep_host(self, tag: str, state: HostState, now: float, b: StepBuilder) -> None:
        """A host removed: keep its reasons, if it has any."""
        if state.reasons:
            self.set(tag, with_host(self.entries.get(tag), state, now), b)
            b.messages.append(f"host {tag} removed: {FORGET_NOTE.format(tag)}")

    def restore_pair(self, pid: PairId, base: PairState, b: StepBuilder) -> PairState:
        """A pair (back) in the config: `base` with its kept admin state, if any."""
        vs, host = pid
        entry = self.entries.get(host)
        if entry is None or vs not in entry.pairs:
            return base
        admin = entry.pairs[vs]
        self.set(host, replace(entry, pairs={k: v for k, v in entry.pairs.items() if k != vs}), b)
        b.messages.append(
            f"vs {vs} host {host} is back: its kept admin state is restored"
            f" ({describe(KeptHost(pairs={vs: admin}))})"
        )
        return restore_pair(base, admin)

    def restore_host(self, tag: str, b: StepBuilder) -> HostState | None:
        """A host (back) in the config: its kept reasons, if any (taken from the book)."""
        entry = self.entries.get(tag)
        if entry is None or not entry.reasons:
            return None
        self.set(tag, replace(entry, reasons=frozenset()), b)
        b.messages.append(
            f"host {tag} is back: its kept host reasons are restored"
            f" ({','.join(sorted(entry.reasons))})"
        )
        return HostState(entry.reasons)

    def expire(self, now: float, keep_for: float, b: StepBuilder) -> None:
        """Forget entries older than Config.ForgetAfter (`keep_for` seconds)."""
        for tag, entry in list(self.entries.items()):
            if entry.removed_at + keep_for <= now:
                self.set(tag, None, b)
                b.messages.append(
                    f"host {tag}: kept admin state forgotten after Config.ForgetAfter="
                    f"{keep_for:g}s ({describe(entry)})"
                )
        self._due = min((e.removed_at for e in self.entries.values()), default=now) + keep_for

    def forget(self, host: str, b: StepBuilder) -> None:
        """`forget host H`: drop the kept admin state of H's removed parts."""
        entry = self.entries.get(host)
        if entry is not None:
            self.set(host, None, b)
            b.messages.append(f"host {host}: kept admin state forgotten ({describe(entry)})")
