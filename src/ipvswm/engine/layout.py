"""Indexes of one config for the engine: pairs by id, check target, host and VS; sorry servers."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from ipvswm.config.model import CheckTarget, Config, Host, Method, Pair, VirtualService
from ipvswm.engine.state import PairId, PairState, VsState
from ipvswm.kernel.table import (
    Destination,
    DestKey,
    Forward,
    Protocol,
    Service,
    ServiceEntry,
    ServiceKey,
    Table,
)

_FORWARD = {Method.NAT: Forward.MASQ, Method.DR: Forward.ROUTE, Method.TUN: Forward.TUNNEL}


@dataclass(frozen=True, slots=True)
class SorryTarget:
    """Where a VS's sorry server is: a host (by tag) or the fallback address."""

    label: str  # the host tag, or the fallback title (else its IP)
    dest: DestKey  # where the kernel holds it (dr/tun: on the VS port)
    port: int  # its configured port (its own, else the VS's real-server port)


def service_key(vs: VirtualService) -> ServiceKey:
    """The kernel identity of a VS."""
    return ServiceKey(Protocol(vs.proto.value), vs.address, vs.port)


def dest_port(vs: VirtualService, port: int) -> int:
    """With dr/tun the kernel forces the destination port to the VS port; follow it, or the
    reconciler would fight the kernel forever."""
    return port if vs.method is Method.NAT else vs.port


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

    def __init__(self, config: Config) -> None:
        self.config = config
        self.vss: dict[str, VirtualService] = {vs.tag: vs for vs in config.services}
        self.hosts: dict[str, Host] = {h.tag: h for h in config.hosts}
        self.keys: dict[str, ServiceKey] = {tag: service_key(vs) for tag, vs in self.vss.items()}
        self.pairs: dict[PairId, Pair] = {}
        self.dests: dict[PairId, DestKey] = {}
        # Check targets are interned to small ints: hashing a CheckTarget (a nested dataclass)
        # costs microseconds, and the engine looks a pair's checker up on every evaluation.
        self.target_ids: dict[CheckTarget, int] = {}
        self.by_tid: list[list[PairId]] = []
        self.tids: dict[PairId, int] = {}
        self.by_host: dict[str, list[PairId]] = {tag: [] for tag in self.hosts}
        self.by_vs: dict[str, list[PairId]] = {tag: [] for tag in self.vss}
        for pair in config.pairs():
            pid = (pair.vs, pair.host)
            self.pairs[pid] = pair
            self.dests[pid] = DestKey(pair.address, dest_port(self.vss[pair.vs], pair.port))
            self.by_host[pair.host].append(pid)
            self.by_vs[pair.vs].append(pid)
            if pair.check is not None:
                tid = self.target_ids.setdefault(pair.check, len(self.by_tid))
                if tid == len(self.by_tid):
                    self.by_tid.append([])
                self.by_tid[tid].append(pid)
                self.tids[pid] = tid
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
        forward = _FORWARD[vs.method]
        dests: dict[DestKey, Destination] = {}
        for pid in self.by_vs[vs_tag]:
            key = self.dests[pid]
            dests[key] = Destination(key, forward=forward, weight=states[pid].weight)
        sorry = self.sorry[vs_tag]
        if sorry_on and sorry is not None:
            dests[sorry.dest] = Destination(sorry.dest, forward=forward, weight=1)
        service = Service(self.keys[vs_tag], scheduler=vs.scheduler, persistent=vs.persistent)
        return ServiceEntry(service, dests)


def resolve_sorry(
    config: Config, vs: VirtualService, hosts: Mapping[str, Host] | None = None
) -> SorryTarget | None:
    """The VS's `sorry_server` host, else SorryServer.Default, else the fallback IP, else none.

    A sorry server of the other address family than the VS is skipped (IPVS cannot mix them).
    `hosts` (tag -> host) saves a scan of the config when the caller has it.
    """
    opts = config.options
    for tag in (vs.sorry_server, opts.sorry_server_default):
        host = (hosts.get(tag) if hosts is not None else config.host(tag)) if tag else None
        if host is not None and _same_family(host.address, vs.address):
            port = host.port if host.port is not None else vs.rs_port
            return SorryTarget(host.tag, DestKey(host.address, dest_port(vs, port)), port)
    ip = opts.sorry_server_fallback_ip
    if ip and _same_family(ip, vs.address):
        label = opts.sorry_server_fallback_title or ip
        return SorryTarget(label, DestKey(ip, dest_port(vs, vs.rs_port)), vs.rs_port)
    return None


def _same_family(a: str, b: str) -> bool:
    return (":" in a) == (":" in b)
