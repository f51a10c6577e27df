"""A new config applied to the engine as a diff (SPEC §7): what is gone is kept or dropped, what
is new starts (adopted from the kernel if it is there already), what is unchanged is untouched.

Only the pairs whose configuration changed are re-evaluated, and only the desired entries of the
VSs that changed are rebuilt: a reload changing one weight costs that pair, not all of them.
A pair that no event would move keeps its state as it is (evaluating it again at the same inputs
yields the same state); ramping pairs and pairs the depool threshold keeps are evaluated anyway,
as before.
"""

from __future__ import annotations

from ipvswm.config.model import Config
from ipvswm.engine.agent import AgentBook
from ipvswm.engine.builder import StepBuilder
from ipvswm.engine.core import Core
from ipvswm.engine.layout import Layout
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import TargetCheck
from ipvswm.engine.state import VsState
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

_MOVING = (Phase.RAMPING, Phase.FAILING_KEPT)


class Reloading(Core):
    """The engine's core, able to take a new config."""

    def _reload(self, config: Config, kernel: Table | None, now: float, b: StepBuilder) -> None:
        if config == self._layout.config:
            return  # e.g. only comments changed: every pair keeps its state as it is
        old = self._layout
        new = Layout(config, old)
        before = dict(self._desired())
        everything = old.config.options != config.options  # ramping times, sorry defaults, ...
        gone_vss = {t for t in old.vss if t not in new.vss or old.keys[t] != new.keys[t]}
        dirty: set[str] = set()  # VSs whose desired entry must be rebuilt
        for pid, pair in old.pairs.items():
            if pid not in new.pairs or pid[0] in gone_vss:
                st = self._pairs.pop(pid)
                self._kept.keep_pair(pid, st, now, b)
                self._adopted.pop(pid, None)
                self._ramps.set(pid, None)
                b.pairs[pid] = None
                if pair.vs not in gone_vss:
                    self._vs_sum[pair.vs] -= st.weight
                    dirty.add(pair.vs)
        gone_keys = {old.keys[tag] for tag in gone_vss}
        for tag in gone_vss:
            del self._vss[tag], self._vs_sum[tag]
            self._entries.pop(old.keys[tag], None)
            b.vss[tag] = None
        for tag in old.hosts:
            if tag not in new.hosts and (host_state := self._hosts.pop(tag, None)) is not None:
                b.hosts[tag] = None
                self._kept.keep_host(tag, host_state, now, b)
        for tag in new.hosts:
            if tag not in self._hosts:
                self._restore_host(tag, b)
        changed_vss = {t for t, vs in new.vss.items() if everything or old.vss.get(t) != vs}
        stale: list[set[PairId]] = []
        awaiting: list[set[PairId]] = []
        checks: dict[int, TargetCheck] = {}
        for tid, pids in enumerate(new.by_tid):
            if not pids:  # the id of a check gone (Layout)
                stale.append(set())
                awaiting.append(set())
                continue
            # A checker of a pair whose host and VS are unchanged is the same checker: found by
            # that pair, which saves hashing its target (a nested dataclass) for every checker.
            first = pids[0]
            if new.pairs[first] is old.pairs.get(first):
                old_tid: int | None = old.tids[first]
            else:
                old_tid = old.target_ids.get(new.pairs[first].check)  # type: ignore[arg-type]
            if old_tid is None:
                stale.append(set())
                awaiting.append(set())
                continue
            was_stale, was_awaiting = self._stale[old_tid], self._awaiting[old_tid]
            members = set(pids) if was_stale or was_awaiting else set()
            stale.append(was_stale & members)
            awaiting.append(was_awaiting & members)
            if old_tid in self._checks:
                checks[tid] = self._checks[old_tid]
        born = [tag for tag in new.vss if tag not in self._vss]
        for tag in born:
            self._vss[tag] = VsState()
            self._vs_sum[tag] = 0
        dirty |= changed_vss
        dirty.update(t for t in new.vss if old.sorry.get(t) != new.sorry[t])
        causes: dict[PairId, str] = {}
        todo: set[PairId] = set()  # the pairs whose configuration changed (or new ones)
        for pid, pair in new.pairs.items():
            if pid not in self._pairs:
                todo.add(pid)
                dirty.add(pair.vs)
                if kernel is None or kernel.destination(new.keys[pair.vs], new.dests[pid]) is None:
                    # A new pair, enabled now: it waits for a pass that starts after the reload,
                    # even if its checker already runs for another pair.
                    self._pairs[pid] = self._kept.restore_pair(pid, PairState(enabled_at=now), b)
                    continue
                # In the kernel already: adopted as at start-up (no enable time, so a pass of
                # the live server that began before the reload counts).
                self._pairs[pid] = self._kept.restore_pair(pid, PairState(), b)
                self._adopted[pid] = new.adoption(pid, self._vss[pair.vs], kernel)
                causes[pid] = "adopted from kernel"
                if pair.check is not None:
                    stale[new.tids[pid]].add(pid)
                continue
            before_pair = old.pairs[pid]
            if pair is before_pair:
                continue  # the same host on the same VS (Layout keeps its object)
            if pair == before_pair and pair.vs not in changed_vss:
                continue
            todo.add(pid)
            dirty.add(pair.vs)
            if pair.check is not None and pair.check != before_pair.check:
                stale[new.tids[pid]].add(pid)  # keep its weight until the new checker reports
                same_dest = old.dests[pid] == new.dests[pid]
                self._adopted[pid] = self._pairs[pid].weight if same_dest else 0
        self._notices.reload(old, new, born)
        self._first.keep(tag for tag in new.vss if tag not in born)
        for tag in born:
            # A VS the kernel has is managed from now on; its sorry state starts as the kernel's.
            in_kernel = kernel is not None and new.keys[tag] in kernel.services
            if not in_kernel:
                self._first.wait(new, tag, now)  # its sorry server waits for its first checks
            elif not sum(self._adopted.get(pid, 0) for pid in new.by_vs[tag]):
                self._vss[tag] = b.vss[tag] = VsState(True, now)
                self._notices.quiet_start(tag)
        self._layout = layout = new
        self._agents = AgentBook(new, self._pairs, self._agents)
        self._checks = checks
        self._stale = stale
        self._awaiting = awaiting
        self._dirty |= dirty
        for pid in new.pairs:
            state = self._pairs[pid]
            if everything or pid in todo or state.phase in _MOVING:
                self._settle(pid, state, now, causes.get(pid, "config reload"), b)
        b.limit.update(tag for tag, vs in new.vss.items() if vs.depool_threshold > 0)
        b.recheck.update(layout.vss)
        self._close(b, now)
        keys: set[ServiceKey] = gone_keys | {new.keys[tag] for tag in self._dirty}
        after = self._desired()
        b.touched.update(k for k in keys if before.get(k) != after.get(k))
