"""A fake daemon behind the console's `Control` protocol, with in-memory state (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from ipvswm.answers import Answer, Applied, Refused
from ipvswm.config.model import CheckKind, CheckSpec, Config, GlobalOptions, Host, VirtualService
from ipvswm.console.commands import STARTING
from ipvswm.console.control import CheckView, ReloadOutcome
from ipvswm.engine.mapping import dest_port, service_key
from ipvswm.engine.state import HostState, PairState, Phase, StateSnapshot, VsState
from ipvswm.events import (
    AdminEvent,
    CheckStatus,
    SetHostOff,
    SetHostOn,
    SetOverride,
    SetPairsOff,
    SetPairsOn,
)
from ipvswm.kernel.table import Destination, DestKey, Service, ServiceEntry, Table


def sample_config() -> Config:
    """Two VSs (www with a sorry server, api), two web hosts and a sorry host."""
    http = CheckSpec(CheckKind.HTTP, url_host="www.example.org", path="/health")
    return Config(
        path="/etc/ipvs-weightman.conf",
        options=GlobalOptions(sorry_server_fallback_ip="192.0.2.99"),
        services=(
            VirtualService("www", "192.0.2.1", 80, 80, http, sorry_server="sorry"),
            VirtualService("api", "192.0.2.1", 8080, 8080, CheckSpec(CheckKind.TCP)),
            VirtualService("empty", "2001:db8::1", 443, 443, CheckSpec(CheckKind.NONE)),
        ),
        hosts=(
            Host("web1", "127.0.0.2", weights=(("www", 100), ("api", 50))),
            Host("web2", "127.0.0.3", weights=(("www", 100),)),
            Host("sorry", "127.0.0.9"),
        ),
    )


class FakeControl:
    """The daemon as the console sees it: admin events applied at once to in-memory state.

    Desired weights follow a simplified engine (reasons → DISABLED 0, else ENABLED at T); the
    kernel table changes only when a test says so (or at once with `auto_kernel`).
    """

    def __init__(self, config: Config | None = None, *, auto_kernel: bool = False) -> None:
        self._config = config or sample_config()
        self.auto_kernel = auto_kernel
        self.submitted: list[AdminEvent] = []
        self.log_level = 1
        self.reloads = 0
        self.forced = 0
        self.kernel_reads = 0
        self.kernel_readable = True  # what refresh_kernel() answers
        self.is_ready = True  # what ready() answers
        self.became_ready = asyncio.Event()  # set by become_ready()
        self.ready_wait = 0.05  # how long wait_ready() waits at most (not the daemon's seconds)
        self.reload_outcome = ReloadOutcome(ok=True, actions=("add vs new",))
        self.check_outcome = ReloadOutcome(ok=True)
        self.submit_error: str | None = None
        self.submit_note: str | None = None  # what the engine says of an applied command
        self._changed = asyncio.Event()
        self.snap = StateSnapshot(
            hosts={h.tag: HostState() for h in self._config.hosts},
            pairs={(p.vs, p.host): PairState() for p in self._config.pairs()},
            vss={vs.tag: VsState() for vs in self._config.services},
        )
        self._recompute()
        self.table = Table()
        self.table = self.desired_table()
        self.check_views = [
            CheckView(
                "127.0.0.2:80 http://www.example.org/health",
                CheckStatus.PASS,
                1_700_000_000.0,
                0.012,
                "",
                ("www/web1",),
            ),
            CheckView("127.0.0.3:80 tcp://", CheckStatus.FAIL, None, None, "connect refused", ()),
        ]

    # --- the Control protocol ---
    def config(self) -> Config:
        return self._config

    def snapshot(self) -> StateSnapshot:
        return self.snap

    def kernel(self) -> Table:
        return self.table

    def checks(self) -> list[CheckView]:
        return list(self.check_views)

    async def submit(self, event: AdminEvent) -> Answer:
        await asyncio.sleep(0)  # the real one awaits a commit
        if self.submit_error is not None:
            return Refused(self.submit_error)
        self.submitted.append(event)
        self._apply(event)
        self._recompute()
        if self.auto_kernel:
            self.table = self.desired_table()
        self.notify()
        return Applied(self.submit_note)

    async def forget(self, host: str) -> Answer:
        await asyncio.sleep(0)
        return Refused(f"no kept admin state for host '{host}'")

    async def reload(self, force: bool = False) -> ReloadOutcome:
        self.reloads += 1
        self.forced += force
        return self.reload_outcome

    async def config_diff(self) -> ReloadOutcome:
        return self.reload_outcome

    async def config_check(self) -> ReloadOutcome:
        return self.check_outcome

    def set_log_level(self, level: int) -> None:
        self.log_level = level

    def log_level_in_force(self) -> int | None:
        return self.log_level

    def status(self) -> dict[str, object]:
        return {"pid": 4242, "backend": "dry-run", "config": self._config.path, "pairs": 3}

    async def refresh_kernel(self) -> bool:
        self.kernel_reads += 1
        return self.kernel_readable

    def ready(self) -> bool:
        return self.is_ready

    async def wait_ready(self, within: float) -> str | None:
        if not self.is_ready:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.became_ready.wait(), min(within, self.ready_wait))
        return None if self.is_ready else STARTING

    def become_ready(self) -> None:
        """The daemon has loaded its state and read the kernel."""
        self.is_ready = True
        self.became_ready.set()

    async def wait_change(self) -> None:
        await self._changed.wait()

    # --- test helpers ---
    def notify(self) -> None:
        """Wake every `wait_change()` caller (an engine step or kernel read happened)."""
        self._changed.set()
        self._changed = asyncio.Event()

    def set_kernel(self, vs: str, host: str, *, weight: int | None = None, active: int = 0) -> None:
        """Change one destination in the kernel table (weight None: keep it)."""
        vs_cfg = self._config.service(vs)
        pair = next(p for p in self._config.pairs() if p.vs == vs and p.host == host)
        assert vs_cfg is not None
        key = service_key(vs_cfg)
        entry = self.table.services[key]
        dkey = DestKey(pair.address, dest_port(vs_cfg, pair.port))
        old = entry.destinations[dkey]
        new = dataclasses.replace(
            old, weight=old.weight if weight is None else weight, active=active
        )
        dests = {**entry.destinations, dkey: new}
        self.table = Table({**self.table.services, key: ServiceEntry(entry.service, dests)})
        self.notify()

    def desired_table(self) -> Table:
        """The kernel table the desired weights give (connection counts kept)."""
        services = {}
        for vs in self._config.services:
            key = service_key(vs)
            dests = {}
            for p in self._config.pairs():
                if p.vs == vs.tag:
                    dkey = DestKey(p.address, dest_port(vs, p.port))  # dr/tun: the VS port
                    old = self.table.destination(key, dkey)
                    active = old.active if old is not None else 0
                    weight = self.snap.pairs[(p.vs, p.host)].weight
                    dests[dkey] = Destination(dkey, weight=weight, active=active)
            services[key] = ServiceEntry(Service(key, scheduler="wrr"), dests)
        return Table(services)

    def _pairs_of(self, host: str, vss: tuple[str, ...] | None) -> list[tuple[str, str]]:
        return [
            (p.vs, p.host)
            for p in self._config.pairs()
            if p.host == host and (vss is None or p.vs in vss)
        ]

    def _apply(self, event: AdminEvent) -> None:
        hosts = dict(self.snap.hosts)
        pairs = dict(self.snap.pairs)
        match event:
            case SetHostOff(host, reasons):
                hosts[host] = HostState(hosts[host].reasons | reasons)
            case SetHostOn(host, reasons, _):
                left = frozenset() if reasons is None else hosts[host].reasons - reasons
                hosts[host] = HostState(left)
            case SetPairsOff(host, vss, reasons):
                for pid in self._pairs_of(host, vss):
                    pairs[pid] = dataclasses.replace(
                        pairs[pid], reasons=pairs[pid].reasons | reasons
                    )
            case SetPairsOn(host, vss, reasons, _):
                for pid in self._pairs_of(host, vss):
                    left = frozenset() if reasons is None else pairs[pid].reasons - reasons
                    pairs[pid] = dataclasses.replace(pairs[pid], reasons=left)
            case SetOverride(host, weight, vss):
                for pid in self._pairs_of(host, vss):
                    pairs[pid] = dataclasses.replace(pairs[pid], override=weight)
        self.snap = dataclasses.replace(self.snap, hosts=hosts, pairs=pairs)

    def _recompute(self) -> None:
        weights = {(p.vs, p.host): p.weight for p in self._config.pairs()}
        pairs = {}
        for pid, state in self.snap.pairs.items():
            off = state.reasons or self.snap.hosts[pid[1]].reasons
            target = state.override if state.override is not None else weights[pid]
            pairs[pid] = dataclasses.replace(
                state,
                weight=0 if off else target,
                phase=Phase.DISABLED if off else Phase.ENABLED,
            )
        self.snap = dataclasses.replace(self.snap, pairs=pairs)
