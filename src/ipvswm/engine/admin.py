"""Admin events (reasons and overrides) turned into new base states, or refused with the reason."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace

from ipvswm.answers import Refused
from ipvswm.engine.layout import Layout
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import StateChanges
from ipvswm.events import AdminEvent
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.vocabulary import name_refusal

MAX_WEIGHT = 65535
NOTHING_TO_DO = "nothing to do"


@dataclass(frozen=True, slots=True)
class AdminPlan:
    """What an admin event changes: a host's reasons and the base states of pairs to re-evaluate
    (or, for `forget host`, the kept entry to drop); `changes` is what to commit before the
    engine applies it (the admin inputs; the weights they lead to come with the next commit)."""

    cause: str
    host: tuple[str, HostState] | None = None
    pairs: dict[PairId, PairState] = field(default_factory=dict)  # every pair to re-evaluate
    note: str | None = None
    forget: str | None = None  # the host whose kept admin state `forget host` drops
    changes: StateChanges = field(default_factory=StateChanges)
    made: int = -1  # the engine step it was made after (Engine.apply checks it)


def plan_admin(
    event: AdminEvent,
    layout: Layout,
    hosts: Mapping[str, HostState],
    pairs: Mapping[PairId, PairState],
    now: float,
) -> AdminPlan | Refused:
    """The plan of an admin event, or why it is refused (nothing applied)."""
    refusal = name_refusal(
        [event.host],
        () if isinstance(event, SetHostOff | SetHostOn) or event.vss is None else event.vss,
        is_host=layout.hosts.__contains__,
        is_vs=layout.vss.__contains__,
        is_pair=lambda vs, host: (vs, host) in layout.pairs,
    )
    if refusal is not None:
        return Refused(refusal)
    host_state = hosts.get(event.host, HostState())
    if isinstance(event, SetHostOff | SetHostOn):
        return _host_plan(event, layout, host_state, pairs, now)
    vss = event.vss if event.vss is not None else tuple(vs for vs, _ in layout.by_host[event.host])
    pids: list[PairId] = [(vs, event.host) for vs in vss]
    if isinstance(event, SetOverride):
        return _override_plan(event, pids, pairs)
    current = {pid: pairs[pid] for pid in pids}
    if isinstance(event, SetPairsOff):
        new = {pid: replace(st, reasons=st.reasons | event.reasons) for pid, st in current.items()}
        return _reason_plan(new, current, f"admin off ({_names(event.reasons)})")
    new = {}
    for pid, st in current.items():
        reasons = _remove(st.reasons, event.reasons)
        if st.reasons and not reasons and not host_state.reasons:
            new[pid] = replace(st, reasons=reasons, enabled_at=now, ramp_duration=event.ramp)
        else:
            new[pid] = replace(st, reasons=reasons)
    held = _holding(host_state.reasons, new)
    if all(new[pid].reasons == st.reasons for pid, st in current.items()) and held:
        where = f"host {event.host} on vs {','.join(vss)}"
        return Refused(
            f"nothing removed: {where} has no reason {_asked(event.reasons)}; still off ({held})"
        )
    plan = _reason_plan(new, current, _on_cause(event.ramp, host_state.reasons))
    return replace(plan, note=f"still off ({held})") if held and plan.note is None else plan


def _host_plan(
    event: SetHostOff | SetHostOn,
    layout: Layout,
    host_state: HostState,
    pairs: Mapping[PairId, PairState],
    now: float,
) -> AdminPlan | Refused:
    old = host_state.reasons
    new = old | event.reasons if isinstance(event, SetHostOff) else _remove(old, event.reasons)
    pids = layout.by_host[event.host]
    if new == old:
        held = _holding(new, {pid: pairs[pid] for pid in pids})
        if isinstance(event, SetHostOn) and held:
            # The operator wanted the host back and nothing changed: say what still holds it.
            asked = _asked(event.reasons)
            return Refused(
                f"nothing removed: host {event.host} has no reason {asked}; still off ({held})"
            )
        return AdminPlan(cause="", note=NOTHING_TO_DO)
    if isinstance(event, SetHostOff):
        cause = f"admin off ({_names(new)})"
        return AdminPlan(cause, (event.host, HostState(new)), {pid: pairs[pid] for pid in pids})
    states = {}
    for pid in pids:
        st = pairs[pid]
        if not new and not st.reasons:
            st = replace(st, enabled_at=now, ramp_duration=event.ramp)
        states[pid] = st
    held = _holding(new, {pid: pairs[pid] for pid in pids})
    note = f"still off ({held})" if held else None
    return AdminPlan(_on_cause(event.ramp, new), (event.host, HostState(new)), states, note)


def _override_plan(
    event: SetOverride, pids: list[PairId], pairs: Mapping[PairId, PairState]
) -> AdminPlan | Refused:
    if event.weight is not None and not 0 <= event.weight <= MAX_WEIGHT:
        return Refused(f"bad weight {event.weight} (0..{MAX_WEIGHT})")
    new = {pid: replace(pairs[pid], override=event.weight) for pid in pids}
    cause = "override cleared" if event.weight is None else f"override {event.weight}"
    note = None if any(pairs[pid].override != event.weight for pid in pids) else NOTHING_TO_DO
    return AdminPlan(cause, None, new, note)


def _reason_plan(
    new: dict[PairId, PairState], current: Mapping[PairId, PairState], cause: str
) -> AdminPlan:
    if all(new[pid].reasons == st.reasons for pid, st in current.items()):
        return AdminPlan(cause="", note=NOTHING_TO_DO)
    return AdminPlan(cause, None, new)


def _holding(host_reasons: frozenset[str], pairs: Mapping[PairId, PairState]) -> str:
    """What still keeps a host off: its own reasons, then each pair's (`b; vs www: deploy`)."""
    parts = [_names(host_reasons)] if host_reasons else []
    parts += [f"vs {vs}: {_names(st.reasons)}" for (vs, _), st in pairs.items() if st.reasons]
    return "; ".join(parts)


def _asked(reasons: frozenset[str] | None) -> str:
    return "at all" if reasons is None else f"'{_names(reasons)}'"


def _remove(reasons: frozenset[str], removed: frozenset[str] | None) -> frozenset[str]:
    return frozenset() if removed is None else reasons - removed


def _on_cause(ramp: float | None, still: frozenset[str]) -> str:
    if still:
        return f"admin on, host still off ({_names(still)})"
    return "admin on" if ramp is None else f"admin on in {ramp:g}s"


def _names(reasons: frozenset[str]) -> str:
    return ",".join(sorted(reasons))
