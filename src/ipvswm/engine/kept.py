"""The admin state of removed hosts and pairs, kept to be restored when their tag comes back.

A mistaken edit, or a file caught half-written, must not put a host under maintenance back into
service when it reappears: its reasons, override and explicit ramp wait here (in the state
database) for `Config.ForgetAfter` seconds, or until `forget host H` (issue 10 item 2). Pure.
"""

from __future__ import annotations

from dataclasses import replace

from ipvswm.engine.state import HostState, KeptHost, KeptPair, PairState


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
