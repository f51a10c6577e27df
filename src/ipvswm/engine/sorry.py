"""Sorry-server switches as SorryChange alerts, and which of them are mailed (SPEC §4, §8).

Every switch of a VS's sorry server (on or off) is a SorryChange: the daemon logs each one and
mails those with `mail=True` (when the VS has `email=true`). The mail rule:

- A VS is *unchecked* from its birth (engine start, or a reload that adds it) until every one of
  its checked pairs has had a check status (PASS or FAIL) reported since then. Statuses restored
  from saved state do not count: they say nothing about the servers now.
- Switching ON is mailed unless the VS is unchecked: a VS with no weight yet that goes into
  sorry state before its checkers reported (one whose first round missed its deadline, see
  `FirstRound`; an admin switch) is no outage worth a mail yet.
- Switching OFF is mailed exactly when the ON before it was mailed, so mails always come in
  FAIL/OK pairs (no "OK" for a quiet start-up ON). A sorry state restored from saved state counts
  as mailed: the previous run announced it.
- When a VS becomes checked while its sorry server is (still) in after a quiet ON, a
  SorryChange(on=True, mail=True) is emitted once: the outage is real and is announced now.

A VS with no checked pair (no hosts, or only check `-`) has nothing to wait for: never unchecked.

`FirstRound` holds the sorry decision itself back for a VS born cold (the kernel not serving it,
at start-up or added by a reload): its pairs start at weight 0 until their first checks, so
deciding at once put the sorry server in and took it out again seconds later. The decision is
taken once the VS is checked, or at its deadline (its longest check interval plus timeouts after
its birth) if a checker never reports.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from ipvswm.engine.layout import Layout
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.state import PairId
from ipvswm.engine.state import VsState


class SorryNotices:
    """Tracks which VSs are unchecked and which sorry-ons went unmailed; builds the alerts."""

    def __init__(self, layout: Layout) -> None:
        self._unchecked: dict[str, set[PairId]] = {}  # VS -> checked pairs with no status yet
        self._by_tid: list[set[PairId]] = [set() for _ in layout.by_tid]  # same, per checker
        self._unmailed: set[str] = set()  # VSs whose sorry server went in quietly
        for tag in layout.vss:
            self._watch(layout, tag, _checked_pairs(layout, tag))

    def reported(self, tid: int) -> list[str]:
        """A checker reported a status: the VSs that are checked from now on."""
        waiting = self._by_tid[tid]
        if not waiting:
            return []  # the steady state: O(1) per result
        done: list[str] = []
        for pid in waiting:
            pending = self._unchecked.get(pid[0])
            if pending is None:
                continue
            pending.discard(pid)
            if not pending:
                del self._unchecked[pid[0]]
                done.append(pid[0])
        waiting.clear()
        return done

    def reload(self, old: Layout, new: Layout, born: Iterable[str]) -> None:
        """Carry the bookkeeping over to a new config; the VSs `born` now start unchecked.

        A VS still unchecked keeps waiting for the pairs that have not reported, plus its new
        pairs and those whose check changed.
        """
        born = set(born)
        before, self._unchecked = self._unchecked, {}
        self._by_tid = [set() for _ in new.by_tid]
        for tag in new.vss:
            pids = _checked_pairs(new, tag)
            if tag not in born:
                if tag not in before:
                    continue
                pending = before[tag]
                pids = [
                    pid
                    for pid in pids
                    if pid in pending
                    or pid not in old.pairs
                    or old.pairs[pid].check != new.pairs[pid].check
                ]
            self._watch(new, tag, pids)
        self._unmailed = {tag for tag in self._unmailed if tag in new.vss and tag not in born}

    def unchecked(self, tag: str) -> bool:
        """Whether some checked pair of the VS has not reported a status since its birth."""
        return tag in self._unchecked

    def quiet_start(self, tag: str) -> None:
        """A VS born with its sorry server already in (adopted from the kernel): not mailed yet."""
        self._unmailed.add(tag)

    def switch(self, tag: str, old: VsState, on: bool, now: float, label: str) -> SorryChange:
        """The alert for a switch from `old` to `on` (see the module docstring for `mail`)."""
        if on:
            mail = tag not in self._unchecked
            if not mail:
                self._unmailed.add(tag)
            return SorryChange(tag, True, now, None, label, mail)
        mail = tag not in self._unmailed
        self._unmailed.discard(tag)
        after = None if old.sorry_since is None else max(now - old.sorry_since, 0.0)
        return SorryChange(tag, False, now, after, label, mail)

    def confirm(self, tag: str, state: VsState, now: float, label: str) -> SorryChange | None:
        """The once-only mailed ON for a VS that is checked now and still in a quiet sorry state."""
        if tag in self._unchecked or tag not in self._unmailed:
            return None
        self._unmailed.discard(tag)
        if not state.sorry_on:
            return None
        at = now if state.sorry_since is None else state.sorry_since
        return SorryChange(tag, True, at, None, label, True)

    def _watch(self, layout: Layout, tag: str, pids: Iterable[PairId]) -> None:
        pending = set(pids)
        if not pending:
            return
        self._unchecked[tag] = pending
        for pid in pending:
            self._by_tid[layout.tids[pid]].add(pid)


class FirstRound:
    """The VSs whose sorry server waits for their first round of checks, with their deadlines."""

    def __init__(self) -> None:
        self._deadline: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (deadline, tag); entries of VSs gone linger

    def wait(self, layout: Layout, tag: str, now: float) -> None:
        """A VS born cold: its sorry server is decided after its first round (none: at once)."""
        pids = _checked_pairs(layout, tag)
        if not pids:
            return
        targets = {layout.pairs[pid].check for pid in pids}
        bound = max(
            t.spec.interval + t.spec.connect_timeout + t.spec.response_timeout
            for t in targets
            if t is not None
        )
        self._deadline[tag] = now + bound
        heapq.heappush(self._heap, (now + bound, tag))

    def holds(self, tag: str, unchecked: bool, now: float) -> bool:
        """Whether the VS's sorry decision still waits; once it does not, it never will again."""
        deadline = self._deadline.get(tag)
        if deadline is None:
            return False
        if unchecked and now < deadline:
            return True
        del self._deadline[tag]
        return False

    def due(self, now: float) -> list[str]:
        """The waiting VSs whose deadline has come."""
        found: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, tag = heapq.heappop(self._heap)
            if self._deadline.get(tag) == deadline:
                found.append(tag)
        return found

    def keep(self, tags: Iterable[str]) -> None:
        """A reload: only the VSs `tags` (those not born anew) may still wait."""
        kept = set(tags)
        self._deadline = {tag: at for tag, at in self._deadline.items() if tag in kept}

    def next(self) -> float | None:
        """The earliest deadline of a VS still waiting."""
        while self._heap and self._deadline.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None


def _checked_pairs(layout: Layout, tag: str) -> list[PairId]:
    return [pid for pid in layout.by_vs[tag] if pid in layout.tids]
