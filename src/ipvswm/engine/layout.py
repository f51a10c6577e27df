"""Indexes of one config for the engine: pairs by id, check target, host and VS; sorry servers.

How a config maps onto the kernel table (service keys, destination ports, sorry servers) is
`engine.mapping`, the public part that readers outside the engine use too.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Mapping

from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import Pair
from ipvswm.config.model import VirtualService
from ipvswm.engine.mapping import FORWARD
from ipvswm.engine.mapping import SorryTarget
from ipvswm.engine.mapping import dest_port
from ipvswm.engine.mapping import resolve_sorry
from ipvswm.engine.mapping import service_key
from ipvswm.engine.state import PairId
from ipvswm.engine.state import PairState
from ipvswm.engine.state import VsState
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table


def unweighted_targets(
    config: Config, table: Table, among: Collection[CheckTarget] | None = None
) -> set[CheckTarget]:
    """The checks (of `among`, default all) none of whose pairs carries weight in `table`
    (absent counts as 0).

    Their first check runs at once (checks.checkset.first_window): nothing is served through
    them until it passes, while a checker with a weighted pair can wait for its turn.
    """
    weighted: set[CheckTarget] = set()
    unweighted: set[CheckTarget] = set()
    by_tag = {vs.tag: vs for vs in config.services}
    for pair in config.pairs():
        if pair.check is None or pair.check in weighted:
            continue
        if among is not None and pair.check not in among:
            continue
        vs = by_tag[pair.vs]
        dest = table.destination(service_key(vs), DestKey(pair.address, dest_port(vs, pair.port)))
        if dest is not None and dest.weight > 0:
            weighted.add(pair.check)
            unweighted.discard(pair.check)
        else:
            unweighted.add(pair.check)
    return unweighted


class Layout:
    """Everything about a config that the engine looks up on each event, indexed once."""

    holes: int  # check ids without pairs (checks a reload removed)

    def __init__(self, config: Config, previous: Layout | None = None) -> None:
        """Index `config`; the pairs of a host and a VS both unchanged since `previous` (the
        layout of the config before a reload) are its very objects (`pair is old` means the same
        pair), and fewer objects are made at once (a reload at 50,000 pairs, issue 14)."""
        self.config = config
        self.vss: dict[str, VirtualService] = {vs.tag: vs for vs in config.services}
        self.hosts: dict[str, Host] = {h.tag: h for h in config.hosts}
        self.keys: dict[str, ServiceKey] = {tag: service_key(vs) for tag, vs in self.vss.items()}
        self.pairs: dict[PairId, Pair] = {}
        self.dests: dict[PairId, DestKey] = {}
        # Check targets are interned to small ints: hashing a CheckTarget (a nested dataclass)
        # costs microseconds, and the engine looks a pair's checker up on every evaluation. A
        # reload keeps the ids (copying the dict hashes nothing); the ids of checks gone are
        # holes (no pairs) until they are half of all, when the ids are made afresh.
        keep_ids = previous is not None and previous.holes * 2 <= len(previous.by_tid)
        self.target_ids: dict[CheckTarget, int] = {}
        self.by_tid: list[list[PairId]] = []
        if previous is not None and keep_ids:
            self.target_ids = dict(previous.target_ids)
            self.by_tid = [[] for _ in previous.by_tid]
        self.tids: dict[PairId, int] = {}
        self.by_host: dict[str, list[PairId]] = {tag: [] for tag in self.hosts}
        self.by_vs: dict[str, list[PairId]] = {tag: [] for tag in self.vss}
        # The hosts and VSs unchanged since `previous`: their pairs are the same.
        same_hosts = {t for t, h in self.hosts.items() if previous and previous.hosts.get(t) == h}
        same_vss = {t for t, vs in self.vss.items() if previous and previous.vss.get(t) == vs}
        for pair in config.pairs():
            pid = (pair.vs, pair.host)
            tid: int | None = None
            if previous is not None and pair.host in same_hosts and pair.vs in same_vss:
                pair, dest = previous.pairs[pid], previous.dests[pid]
                tid = previous.tids.get(pid) if keep_ids else None
            else:
                dest = DestKey(pair.address, dest_port(self.vss[pair.vs], pair.port))
            self.pairs[pid] = pair
            self.dests[pid] = dest
            self.by_host[pair.host].append(pid)
            self.by_vs[pair.vs].append(pid)
            if pair.check is not None:
                if tid is None:
                    tid = self.target_ids.setdefault(pair.check, len(self.by_tid))
                    if tid == len(self.by_tid):
                        self.by_tid.append([])
                self.by_tid[tid].append(pid)
                self.tids[pid] = tid
        gone = [target for target, tid in self.target_ids.items() if not self.by_tid[tid]]
        for target in gone:
            del self.target_ids[target]
        self.holes = len(self.by_tid) - len(self.target_ids)  # ids without pairs
        self.sorry: dict[str, SorryTarget | None] = {
            tag: self._resolve_sorry(vs) for tag, vs in self.vss.items()
        }

    def pairs_of(self, target: CheckTarget) -> list[PairId]:
        """The pairs one checker feeds (none for a target of another config)."""
        tid = self.target_ids.get(target)
        return [] if tid is None else self.by_tid[tid]

    def adoption(self, pid: PairId, vs_state: VsState, kernel: Table | None) -> int:
        """The weight a pair keeps until its first check: the kernel's (none known: 0)."""
        key, dest = self.keys[pid[0]], self.dests[pid]
        found = None if kernel is None else kernel.destination(key, dest)
        weight = 0 if found is None else found.weight
        sorry = self.sorry[pid[0]]
        if weight == 1 and vs_state.sorry_on and sorry is not None and sorry.dest == dest:
            return 0  # that 1 is the sorry server's, not the pair's
        return weight

    def _resolve_sorry(self, vs: VirtualService) -> SorryTarget | None:
        return resolve_sorry(self.config, vs, self.hosts)

    def entry(
        self, vs_tag: str, states: Mapping[PairId, PairState], sorry_on: bool
    ) -> ServiceEntry:
        """The desired kernel entry of a VS: its pairs at their weights, plus the sorry server.

        A sorry server that is also a real server of the VS is not added twice: that destination
        gets weight 1 while the sorry state is on.
        """
        vs = self.vss[vs_tag]
        forward = FORWARD[vs.method]
        dests: dict[DestKey, Destination] = {}
        for pid in self.by_vs[vs_tag]:
            key = self.dests[pid]
            dests[key] = Destination(key, forward=forward, weight=states[pid].weight)
        sorry = self.sorry[vs_tag]
        if sorry_on and sorry is not None:
            dests[sorry.dest] = Destination(sorry.dest, forward=forward, weight=1)
        service = Service(self.keys[vs_tag], scheduler=vs.scheduler, persistent=vs.persistent)
        return ServiceEntry(service, dests)
