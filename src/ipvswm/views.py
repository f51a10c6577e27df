"""One pair as every reader shows it: config, engine state and kernel values together (pure).

The console (`show`, `wait`), the metrics, /status and the alert mails all read pairs through
`pair_views`, so they agree on what "the kernel weight of a pair" is: the destination the engine
asked for, which for dr/tun VSs sits on the VS's port whatever the real server's port is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ipvswm.config.model import Config
from ipvswm.config.model import Pair
from ipvswm.engine.mapping import dest_port
from ipvswm.engine.mapping import service_key
from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Table

__all__ = ["PairView", "pair_views", "service_key"]

_NO_PAIR = PairState()
_NO_HOST = HostState()


@dataclass(frozen=True, slots=True)
class PairView:
    """One pair: its config, its engine state and its kernel destination's values."""

    vs: str
    host: str
    address: str
    port: int  # the configured real-server port
    dest: DestKey  # where the kernel holds the pair (dr/tun: on the VS port)
    configured: int
    override: int | None
    desired: int
    phase: Phase
    pair_reasons: frozenset[str]
    host_reasons: frozenset[str]
    check: str  # the check status ("pass", "fail", …), or "none" for a pair without a check
    cause: str
    ramp_duration: float | None
    ramp_deadline: float | None
    kernel_weight: int | None  # None: absent from the kernel table
    active: int
    inactive: int

    @property
    def reasons(self) -> frozenset[str]:
        """Every reason holding the pair down, host-level or pair-level."""
        return self.pair_reasons | self.host_reasons

    @property
    def target(self) -> int:
        """T of SPEC §4: the override if set, else the configured weight."""
        return self.override if self.override is not None else self.configured

    @property
    def kernel_or_zero(self) -> int:
        """The kernel weight, 0 when the pair is absent from the kernel."""
        return self.kernel_weight or 0

    def pending(self) -> str | None:
        """None when settled, else what it is waiting for (AWAIT_PASS, RAMPING, FAILING_KEPT:
        a passing check, SYNC)."""
        if self.phase in (Phase.AWAIT_PASS, Phase.RAMPING, Phase.FAILING_KEPT):
            return str(self.phase.value)
        return None if self.kernel_or_zero == self.desired else "SYNC"


def pair_views(
    config: Config,
    snapshot: StateSnapshot,
    kernel: Table,
    *,
    hosts: Iterable[str] | None = None,
    vss: Iterable[str] | None = None,
    pairs: Iterable[Pair] | None = None,
) -> list[PairView]:
    """Every pair of the config in file order, optionally only of some hosts and VSs.

    `pairs` is `config.pairs()` computed earlier (a caller rendering often keeps it per config).
    """
    host_set = None if hosts is None else set(hosts)
    vs_set = None if vss is None else set(vss)
    by_tag = {vs.tag: vs for vs in config.services}
    keys = {tag: service_key(vs) for tag, vs in by_tag.items() if vs_set is None or tag in vs_set}
    views: list[PairView] = []
    for pair in config.pairs() if pairs is None else pairs:
        if (host_set is not None and pair.host not in host_set) or (
            vs_set is not None and pair.vs not in vs_set
        ):
            continue
        state = snapshot.pairs.get((pair.vs, pair.host), _NO_PAIR)
        dest_key = DestKey(pair.address, dest_port(by_tag[pair.vs], pair.port))
        dest = kernel.destination(keys[pair.vs], dest_key)
        views.append(
            PairView(
                vs=pair.vs,
                host=pair.host,
                address=pair.address,
                port=pair.port,
                dest=dest_key,
                configured=pair.weight,
                override=state.override,
                desired=state.weight,
                phase=state.phase,
                pair_reasons=state.reasons,
                host_reasons=snapshot.hosts.get(pair.host, _NO_HOST).reasons,
                check=state.check_status.value if pair.check is not None else "none",
                cause=state.check_cause,
                ramp_duration=state.ramp_duration,
                ramp_deadline=state.ramp_deadline,
                kernel_weight=None if dest is None else dest.weight,
                active=0 if dest is None else dest.active,
                inactive=0 if dest is None else dest.inactive,
            )
        )
    return views
