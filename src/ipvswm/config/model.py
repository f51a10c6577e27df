"""The configuration model: immutable values produced by the parser (SPEC §2)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Protocol
from typing import TypeVar


class Proto(enum.Enum):
    """Transport protocol of a virtual service."""

    TCP = "tcp"
    UDP = "udp"


class Method(enum.Enum):
    """IPVS forwarding method of the pairs of a virtual service."""

    NAT = "nat"
    DR = "dr"
    TUN = "tun"


class CheckKind(enum.Enum):
    """What a check does: an HTTP(S) request, a TCP connect, a DNS query, a program, or nothing."""

    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"
    NONE = "none"
    DNS = "dns"
    EXEC = "exec"


StatusRange = tuple[int, int]
"""An inclusive range of HTTP statuses that pass, e.g. (200, 299)."""


def shown_address(address: str) -> str:
    """An address as written beside a port: an IPv6 address in brackets."""
    return f"[{address}]" if ":" in address else address


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """How to check a real server, whichever it is (the parsed CHECK column plus options).

    `url_host`/`url_port` are what the URL names (`http://NAME[:PORT]/PATH`); for the `/PATH` form
    `url_host` is None and the real server's address is sent as Host. `port` of the target (not of
    the spec) decides where to connect: `url_port` if given, else the pair's real-server port.
    """

    kind: CheckKind
    url_host: str | None = None
    url_port: int | None = None
    path: str = "/"
    expect: tuple[StatusRange, ...] = ((200, 200),)
    verify: bool = False
    interval: float = 5.0
    connect_timeout: float = 1.0
    response_timeout: float = 3.0
    rise: int = 1
    fall: int = 1
    # HTTP(S): the request method, extra headers, text the body must contain (None: any body).
    http_method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    # TCP: a line sent once connected, a prefix the first bytes read must start with.
    send: str | None = None
    banner: str | None = None
    # DNS: the query type (the name is `url_host`) and the rcodes that pass.
    dns_type: str = "A"
    dns_rcodes: tuple[str, ...] = ("NOERROR",)
    # EXEC: the program and its arguments (`%a`/`%p` not yet substituted); exit codes as weights.
    argv: tuple[str, ...] = ()
    dynamic: bool = False
    # Start to start of the checks confirming a first failure while fall > 1 (HAProxy's
    # `fastinter`); never longer than `interval`.
    fast_interval: float = 1.0

    def passes_status(self, status: int) -> bool:
        """Whether an HTTP status is one of the expected ones."""
        return any(low <= status <= high for low, high in self.expect)

    def describe(self) -> str:
        """A short human form, as written in the config (`http://name/path`, `tcp://:81`, `-`)."""
        if self.kind is CheckKind.NONE:
            return "-"
        port = f":{self.url_port}" if self.url_port is not None else ""
        if self.kind is CheckKind.TCP:
            return f"tcp://{port}"
        if self.kind is CheckKind.EXEC:
            return "exec:" + " ".join(self.argv)
        if self.kind is CheckKind.DNS:
            return f"dns://{self.url_host}{port}?type={self.dns_type}"
        if self.url_host is None:
            return self.path
        return f"{self.kind.value}://{self.url_host}{port}{self.path}"


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """One distinct check: what one checker runs (real-server address, effective port, spec)."""

    address: str
    port: int
    spec: CheckSpec

    def host_header(self) -> str:
        """The Host header value: the URL's name (and port), else the real server's address."""
        if self.spec.url_host is None:
            return shown_address(self.address)
        if self.spec.url_port is not None:
            return f"{self.spec.url_host}:{self.spec.url_port}"
        return self.spec.url_host

    def __str__(self) -> str:
        addr = shown_address(self.address)
        return f"{addr}:{self.port} {self.spec.describe()}"


@dataclass(frozen=True, slots=True)
class VirtualService:
    """A `!` line: one virtual service and how its real servers are checked."""

    tag: str
    address: str  # normalised IP address (IPv4 dotted, IPv6 compressed, no brackets)
    port: int
    rs_port: int  # default real-server port (the VS port unless `ADDR:PORT:RSPORT`)
    check: CheckSpec
    proto: Proto = Proto.TCP
    email: bool = False
    sorry_server: str | None = None  # a host tag
    scheduler: str = "wrr"
    method: Method = Method.NAT
    persistent: int | None = None  # seconds
    name: str = ""  # the address as written in the file (a hostname stays readable in logs)
    # Where it stands in the file, for messages only: a line added above changes no VS, so a
    # reload that only adds comments is a no-op (issue 16 goal 4).
    line: int = field(default=0, compare=False)
    # Failing checks may take pairs out only while those left carry this share (0..1) of the
    # eligible target weight (SPEC §4, depool threshold); 0 = no limit.
    depool_threshold: float = 0.0
    # Agent feedback (SPEC §11, HAProxy's agent-check): the agent's port on each real server,
    # and seconds between two polls (None: the check's interval).
    agent_port: int | None = None
    agent_interval: float | None = None


@dataclass(frozen=True, slots=True)
class Host:
    """A host line: one real server and its weight on each virtual service it serves."""

    tag: str
    address: str  # normalised IP address
    port: int | None = None  # overrides the VS's real-server port for this host
    weights: tuple[tuple[str, int], ...] = ()  # (vs tag, weight) in file order
    name: str = ""
    line: int = field(default=0, compare=False)  # for messages only, as VirtualService.line
    # Host options (`agent=PORT|off`, `agent_interval=S`): they win over the VS's; 0 = off.
    agent_port: int | None = None
    agent_interval: float | None = None


@dataclass(frozen=True, slots=True)
class AgentTarget:
    """One agent to poll: one connection per distinct (real-server address, agent port)."""

    address: str
    port: int

    def __str__(self) -> str:
        addr = shown_address(self.address)
        return f"agent {addr}:{self.port}"


@dataclass(frozen=True, slots=True)
class Pair:
    """One host on one virtual service: one IPVS destination with its configured weight."""

    vs: str
    host: str
    address: str
    port: int  # effective real-server port
    weight: int  # configured weight (0 = drained by config)
    check: CheckTarget | None  # None when the VS's check is `-` (always passing)
    agent: AgentTarget | None = None  # the agent whose answers scale or drain the pair
    agent_interval: float = 0.0  # seconds between two polls of that agent


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """Every `Key=value` option, typed, with the original's defaults (SPEC §2.1)."""

    management_socket_ip: str = "127.0.0.1"
    management_socket_port: int = 9000
    management_socket_path: str = "/run/ipvswm.sock"
    management_fifo_path: str = "/run/ipvswm.fifo"  # unset in a file: beside the Unix socket
    management_socket_token: str = ""  # required for a console not on loopback (`auth TOKEN`)
    management_socket_allow_users: tuple[str, ...] = ()  # may change state, besides root
    management_socket_allow_groups: tuple[str, ...] = ()
    config_path: str = ""
    config_check_period: float = 3.0
    config_auto_check: bool = True
    config_max_removed_share: float = 0.5  # a reload removing more pairs needs `force`
    config_forget_after: float = 604800.0  # admin state of removed hosts is kept this long (7 d)
    log_path: str = "/var/log/ipvs-weightman.log"
    log_syslog: bool = False
    log_syslog_facility: str = "daemon"
    log_stderr: bool = False
    log_level: int = 1
    ramping_trigger_time: float = 120.0
    ramping_duration: float = 10.0
    db: str = "/var/run/ipvs-weightman.db"
    ipvsadm: str = "/sbin/ipvsadm"
    email_smtp: str = "127.0.0.1"
    email_from: str = ""
    email_to: str = ""
    email_reply_to: str = ""
    sorry_server_default: str = ""
    sorry_server_fallback_host: str = ""
    sorry_server_fallback_ip: str = ""
    sorry_server_fallback_title: str = ""
    ipvs_backend: str = "ipvsadm"
    ipvs_scheduler: str = "wrr"
    ipvs_method: Method = Method.NAT
    ipvs_resync_period: float = 10.0
    check_interval: float = 5.0
    check_timeout_connect: float = 1.0
    check_timeout_response: float = 3.0
    check_rise: int = 1
    check_fall: int = 1
    check_exec_max_concurrent: int = 16
    metrics_listen: str = ""
    # Director pairs (issue 12): all off unless Cluster.Etcd is set.
    cluster_etcd: str = ""
    cluster_name: str = ""
    cluster_node: str = ""
    cluster_etcd_cacert: str = ""
    cluster_etcd_cert: str = ""
    cluster_etcd_key: str = ""
    cluster_etcd_user: str = ""
    cluster_etcd_password_file: str = ""
    check_depool_threshold: float = 0.0
    # Seconds an ipvsadm call of up to kernel.ipvsadm.OPS_PER_TIMEOUT operations may take; a
    # larger batch gets proportionally more (issue 16).
    ipvs_timeout: float = 5.0


class _Tagged(Protocol):
    @property
    def tag(self) -> str: ...


_T = TypeVar("_T", bound=_Tagged)
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, valid configuration file.

    Immutable, so what is derived from it (its pairs, its check targets, the tag indexes) is
    computed once and kept: at 50,000 pairs `pairs()` costs about 0.4 s and a reload asks for
    it several times. `warm()` computes them where that is cheap for the daemon (the parse
    thread), so the owner task only reads them.
    """

    path: str = ""
    options: GlobalOptions = field(default_factory=GlobalOptions)
    services: tuple[VirtualService, ...] = ()
    hosts: tuple[Host, ...] = ()
    # Derived values, keyed by name; not part of the value (equality, repr, replace()).
    _derived: dict[str, object] = field(default_factory=dict, init=False, compare=False, repr=False)

    def service(self, tag: str) -> VirtualService | None:
        """The virtual service with this tag, if any."""
        return self._services_by_tag().get(tag)

    def host(self, tag: str) -> Host | None:
        """The host with this tag, if any."""
        by_tag = self._derived.get("hosts")
        if by_tag is None:
            by_tag = self._derived["hosts"] = _first_by_tag(self.hosts)
        assert isinstance(by_tag, dict)
        return by_tag.get(tag)

    def pairs(self) -> Iterator[Pair]:
        """Every (VS, host) pair in file order of hosts, with its effective port and check."""
        return iter(self.pair_list())

    def pair_list(self) -> tuple[Pair, ...]:
        """`pairs()` as a tuple (computed once)."""
        pairs = self._derived.get("pairs")
        if pairs is None:
            pairs = self._derived["pairs"] = tuple(self._make_pairs())
        assert isinstance(pairs, tuple)
        return pairs

    def check_targets(self) -> frozenset[CheckTarget]:
        """The distinct checks of this config: one checker each."""
        targets = self._derived.get("targets")
        if targets is None:
            targets = self._derived["targets"] = frozenset(
                p.check for p in self.pair_list() if p.check is not None
            )
        assert isinstance(targets, frozenset)
        return targets

    def derived(self, name: str, compute: Callable[[Config], _V]) -> _V:
        """A value computed from this config once (`compute(self)`), kept under `name`."""
        if name not in self._derived:
            self._derived[name] = compute(self)
        return self._derived[name]  # type: ignore[return-value]

    def warm(self) -> Config:
        """Compute the derived values now (returns self)."""
        self.check_targets()
        self.host("")
        return self

    def _services_by_tag(self) -> dict[str, VirtualService]:
        by_tag = self._derived.get("services")
        if by_tag is None:
            by_tag = self._derived["services"] = _first_by_tag(self.services)
        assert isinstance(by_tag, dict)
        return by_tag

    def _make_pairs(self) -> Iterator[Pair]:
        by_tag = self._services_by_tag()
        for host in self.hosts:
            for vs_tag, weight in host.weights:
                vs = by_tag[vs_tag]
                port = host.port if host.port is not None else vs.rs_port
                yield Pair(
                    vs=vs.tag,
                    host=host.tag,
                    address=host.address,
                    port=port,
                    weight=weight,
                    check=check_target(vs.check, host.address, port),
                    agent=agent_target(vs, host),
                    agent_interval=host.agent_interval or vs.agent_interval or vs.check.interval,
                )


def _first_by_tag(items: tuple[_T, ...]) -> dict[str, _T]:
    """Index by tag; the first of a repeated tag wins (as a search in file order finds it)."""
    by_tag: dict[str, _T] = {}
    for item in items:
        by_tag.setdefault(item.tag, item)
    return by_tag


def check_target(spec: CheckSpec, address: str, rs_port: int) -> CheckTarget | None:
    """The check of a pair: the real server's address, the URL's port or else the pair's port."""
    if spec.kind is CheckKind.NONE:
        return None
    port = spec.url_port if spec.url_port is not None else rs_port
    return CheckTarget(address=address, port=port, spec=spec)


def agent_target(vs: VirtualService, host: Host) -> AgentTarget | None:
    """The agent of a pair: the host's `agent=` if given (0 = off), else the VS's."""
    port = host.agent_port if host.agent_port is not None else vs.agent_port
    return AgentTarget(host.address, port) if port else None
