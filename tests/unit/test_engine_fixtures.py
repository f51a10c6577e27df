"""Builders shared by the engine tests: configs from the real model classes, a driven engine."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import VirtualService
from ipvswm.engine import Engine
from ipvswm.engine.outputs import Step
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import EngineEvent
from ipvswm.events import Tick
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Table

T0 = 1_000_000.0
HTTP = CheckSpec(CheckKind.HTTP, url_host="www.example.org", path="/health")
NO_CHECK = CheckSpec(CheckKind.NONE)


def vs(
    tag: str,
    address: str = "192.0.2.1",
    port: int = 80,
    check: CheckSpec = HTTP,
    method: Method = Method.NAT,
    sorry_server: str | None = None,
    rs_port: int | None = None,
) -> VirtualService:
    """A virtual service (addresses from 192.0.2.0/24 are never contacted)."""
    return VirtualService(
        tag=tag,
        address=address,
        port=port,
        rs_port=port if rs_port is None else rs_port,
        check=check,
        method=method,
        sorry_server=sorry_server,
    )


def host(tag: str, address: str, *weights: tuple[str, int], port: int | None = None) -> Host:
    """A host with (vs tag, weight) pairs."""
    return Host(tag=tag, address=address, port=port, weights=tuple(weights))


def config(services: list[VirtualService], hosts: list[Host], **options: object) -> Config:
    """A config with the given global options."""
    return Config(
        path="test.conf",
        options=GlobalOptions(**options),  # type: ignore[arg-type]
        services=tuple(services),
        hosts=tuple(hosts),
    )


def basic(**options: object) -> Config:
    """One HTTP VS `web` with hosts web1 (100) and web2 (50)."""
    return config(
        [vs("web")],
        [host("web1", "198.51.100.1", ("web", 100)), host("web2", "198.51.100.2", ("web", 50))],
        **options,
    )


@dataclass
class Driver:
    """An engine fed step by step on a fake clock."""

    engine: Engine
    now: float = T0
    steps: list[Step] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        cfg: Config,
        now: float = T0,
        snapshot: StateSnapshot | None = None,
        kernel: Table | None = None,
    ) -> Driver:
        """A driver whose start-up step is already consumed."""
        d = cls(Engine(cfg, now, snapshot, kernel), now)
        d.feed(Tick())
        return d

    def at(self, when: float) -> Driver:
        """Move the clock (never backwards)."""
        assert when >= self.now
        self.now = when
        return self

    def feed(self, event: EngineEvent) -> Step:
        """Handle one event at the current time."""
        step = self.engine.handle(event, self.now)
        self.steps.append(step)
        return step

    def target(self, vs_tag: str, host_tag: str) -> CheckTarget:
        for pair in self.engine.config().pairs():
            if (pair.vs, pair.host) == (vs_tag, host_tag):
                assert pair.check is not None
                return pair.check
        raise KeyError((vs_tag, host_tag))

    def check(
        self,
        vs_tag: str,
        host_tag: str,
        passed: bool,
        started: float | None = None,
        cause: str = "",
        status: CheckStatus | None = None,
    ) -> Step:
        """A check of the pair's target that ends now (started 0.1 s ago unless given)."""
        start = self.now - 0.1 if started is None else started
        if status is None:
            status = CheckStatus.PASS if passed else CheckStatus.FAIL
        if not cause and not passed:
            cause = "connect refused"
        result = CheckResult(
            target=self.target(vs_tag, host_tag),
            passed=passed,
            status=status,
            started=start,
            ended=self.now,
            cause=cause,
        )
        return self.feed(result)

    def tick(self, when: float) -> Step:
        return self.at(when).feed(Tick())

    def state(self, vs_tag: str, host_tag: str) -> PairState:
        return self.engine.snapshot().pairs[(vs_tag, host_tag)]

    def weight(self, vs_tag: str, host_tag: str) -> int:
        return self.state(vs_tag, host_tag).weight

    def phase(self, vs_tag: str, host_tag: str) -> Phase:
        return self.state(vs_tag, host_tag).phase

    def kernel_weights(self, vs_tag: str) -> dict[DestKey, int]:
        """The desired table's destinations of a VS, with weights."""
        entry = self.engine.desired_table().services[self.engine.service_key(vs_tag)]
        return {k: d.weight for k, d in entry.destinations.items()}


def healthy(cfg: Config, now: float = T0) -> Driver:
    """A driver where every checked pair has passed once (started after start-up)."""
    d = Driver.start(cfg, now)
    d.at(now + 1)
    for pair in cfg.pairs():
        if pair.check is not None:
            d.check(pair.vs, pair.host, True)
    return d


def big_config(n_vs: int, n_hosts: int) -> Config:
    """Every host on every VS, each VS with its own HTTP check: n_vs x n_hosts pairs."""
    services = [
        vs(
            f"vs{i}",
            address=f"192.0.2.{i % 250 + 1}",
            port=1000 + i,
            rs_port=80,
            check=CheckSpec(CheckKind.HTTP, url_host=f"s{i}.example.org", path="/health"),
        )
        for i in range(n_vs)
    ]
    hosts = [
        host(f"h{j}", f"198.51.100.{j % 250 + 1}", *[(f"vs{i}", 100) for i in range(n_vs)])
        for j in range(n_hosts)
    ]
    return config(services, hosts)
