"""The console's `Control` over a real engine on a virtual clock, for the console tests.

Admin commands go through `Engine.handle` as the daemon's owner feeds them (the engine's refusal
is the reply); the kernel table follows the desired table after every step unless a test holds
it (`follow_kernel = False`, then `set_kernel` / `apply_desired`). What is the daemon's and not
the engine's (reload outcomes, checker views, log level, readiness, a slow commit) is a plain
field a test sets.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

from ipvswm.answers import Answer
from ipvswm.answers import Applied
from ipvswm.answers import Refused
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Host
from ipvswm.config.model import VirtualService
from ipvswm.console.control import CheckView
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.engine.engine import Engine
from ipvswm.engine.mapping import dest_port
from ipvswm.engine.mapping import service_key
from ipvswm.engine.outputs import Step
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import EngineEvent
from ipvswm.events import ForgetHost
from ipvswm.events import Tick
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import Table
from ipvswm.vocabulary import STARTING

T0 = 1_700_000_000.0  # the virtual clock's start


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


class EngineControl:
    """The daemon as the console sees it: one real `Engine`, every checked pair passed once."""

    def __init__(self, config: Config | None = None, *, follow_kernel: bool = True) -> None:
        self._config = config or sample_config()
        self.now = T0  # the engine's clock: moved by tests, never by real time
        self.engine = Engine(self._config, self.now)
        self.follow_kernel = follow_kernel
        self.submitted: list[AdminEvent | ForgetHost] = []  # what the engine applied
        self.shown: StateSnapshot | None = None  # a stored state to show (times no command sets)
        self.submit_delay = 0.0  # seconds a commit takes
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
        self._changed = asyncio.Event()
        self._waiting: dict[asyncio.Event, int] = {}  # wait_change() callers per change
        self._looked = asyncio.Event()  # set (and renewed) when a wait looks: see until_waiting
        self.table = Table()
        self.pass_checks()
        self.apply_desired()
        self.check_views = [
            CheckView(
                "127.0.0.2:80 http://www.example.org/health",
                CheckStatus.PASS,
                T0,
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
        return self.shown if self.shown is not None else self.engine.snapshot()

    def kernel(self) -> Table:
        return self.table

    def checks(self) -> list[CheckView]:
        return list(self.check_views)

    async def submit(self, event: AdminEvent, local: bool = False) -> Answer:
        return await self._admin(event)

    async def forget(self, host: str, local: bool = False) -> Answer:
        return await self._admin(ForgetHost(host))

    async def _admin(self, event: AdminEvent | ForgetHost) -> Answer:
        await asyncio.sleep(self.submit_delay)  # the real one awaits a commit
        plan = self.engine.plan(event, self.now)  # as the owner: plan, (commit,) apply
        if isinstance(plan, Refused):
            return plan
        step = self.engine.apply(plan, self.now)
        if self.follow_kernel:
            self.apply_desired()
        else:
            self.notify()
        self.submitted.append(event)
        return Applied(step.note)

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
        self._poke()
        return self.kernel_readable

    def ready(self) -> bool:
        return self.is_ready

    async def wait_ready(self, within: float) -> Refused | None:
        if not self.is_ready:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.became_ready.wait(), min(within, self.ready_wait))
        return None if self.is_ready else Refused(STARTING)

    async def wait_change(self) -> None:
        changed = self._changed
        self._waiting[changed] = self._waiting.get(changed, 0) + 1
        self._poke()
        try:
            await changed.wait()
        finally:
            self._waiting[changed] -= 1

    def cluster_view(self) -> dict[str, object] | None:
        return None

    # --- test helpers ---
    def become_ready(self) -> None:
        """The daemon has loaded its state and read the kernel."""
        self.is_ready = True
        self.became_ready.set()

    def feed(self, event: EngineEvent) -> Step:
        """One engine step at `now`, as the owner takes it; the kernel follows if it does."""
        step = self.engine.handle(event, self.now)
        if self.follow_kernel:
            self.apply_desired()
        else:
            self.notify()
        return step

    def pass_checks(self) -> None:
        """A second later every checker has passed once (a pair switched back on waits for a
        check started after it)."""
        started, self.now = self.now, self.now + 1.0
        for target in dict.fromkeys(p.check for p in self._config.pairs() if p.check):
            self.feed(CheckResult(target, True, CheckStatus.PASS, started, self.now))

    def advance(self, seconds: float) -> Step:
        """Move the virtual clock; the engine sees the time pass (ramps advance)."""
        self.now += seconds
        return self.feed(Tick())

    async def until_waiting(self, count: int = 1) -> None:
        """Until `count` callers wait for the next change (a `wait` has looked since the last
        one and found its state not reached): no sleep, no real time."""
        while self._waiting.get(self._changed, 0) < count:
            await self._looked.wait()

    async def until_read(self, count: int = 1) -> None:
        """Until the kernel has been re-read `count` times (a quiescent `wait` has looked)."""
        while self.kernel_reads < count:
            await self._looked.wait()

    def _poke(self) -> None:
        self._looked.set()
        self._looked = asyncio.Event()

    def notify(self) -> None:
        """Wake every `wait_change()` caller (an engine step or kernel read happened)."""
        self._changed.set()
        self._waiting.pop(self._changed, None)
        self._changed = asyncio.Event()

    def apply_desired(self) -> None:
        """The kernel takes the desired table (connection counts kept)."""
        services = {}
        for key, entry in self.engine.desired_table().services.items():
            dests = {}
            for dkey, dest in entry.destinations.items():
                old = self.table.destination(key, dkey)
                active = old.active if old is not None else 0
                dests[dkey] = dataclasses.replace(dest, active=active)
            services[key] = ServiceEntry(entry.service, dests)
        self.table = Table(services)
        self.notify()

    def set_kernel(self, vs: str, host: str, *, weight: int | None = None, active: int = 0) -> None:
        """Change one destination in the kernel table (weight None: keep it)."""
        vs_cfg = self._config.service(vs)
        assert vs_cfg is not None
        key = service_key(vs_cfg)
        entry = self.table.services[key]
        dkey = self._dest(vs, host)
        old = entry.destinations[dkey]
        new = dataclasses.replace(
            old, weight=old.weight if weight is None else weight, active=active
        )
        dests = {**entry.destinations, dkey: new}
        self.table = Table({**self.table.services, key: ServiceEntry(entry.service, dests)})
        self.notify()

    def _dest(self, vs: str, host: str) -> DestKey:
        pair = next(p for p in self._config.pairs() if p.vs == vs and p.host == host)
        vs_cfg = self._config.service(vs)
        assert vs_cfg is not None
        return DestKey(pair.address, dest_port(vs_cfg, pair.port))  # dr/tun: the VS port
