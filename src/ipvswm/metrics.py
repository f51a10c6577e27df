"""Prometheus metrics and the JSON /status document, served over HTTP (issue 7).

API for the daemon:

- ``Metrics()``: its own ``CollectorRegistry`` (never the global one). Feed it with
  ``check_result(result)`` for every finished check, ``kernel_apply(ops, failures)`` after every
  apply, ``backend_error(kind)`` when a backend call fails as a whole, ``reload(ok)`` after every
  reload attempt, and ``update_state(config, snapshot, kernel)`` after every engine step or kernel
  read (cheap: it only keeps references; the per-pair series are computed when scraped, so pairs
  and VSs gone from the config disappear from the output). ``retain_checks(targets)`` drops the
  series of checkers that no longer exist. ``render()`` gives the text exposition format.
- ``status_document(config, snapshot, kernel) -> dict``: pure; the same state as JSON-ready data.
- ``MetricsServer(metrics, status)``: ``await start("HOST:PORT")`` (``[::1]:9119`` for IPv6, port
  0 picks a free one, then see ``.port``) serves ``GET /metrics`` and ``GET /status`` (the
  ``status()`` callback's dict as JSON); ``await close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import platform
from collections.abc import Callable
from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import Info
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ipvswm import __version__
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.config.model import Pair
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import CheckResult
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.table import Table
from ipvswm.views import PairView
from ipvswm.views import pair_views
from ipvswm.views import service_key

log = logging.getLogger(__name__)

CHECK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _pair_json(view: PairView) -> dict[str, object]:
    return {
        "host": view.host,
        "address": view.address,
        "port": view.port,
        "configured": view.configured,
        "override": view.override,
        "desired": view.desired,
        "kernel": view.kernel_weight,
        "phase": view.phase.value,
        "reasons": sorted(view.reasons),
        "pair_reasons": sorted(view.pair_reasons),
        "host_reasons": sorted(view.host_reasons),
        "check": view.check,
        "cause": view.cause,
        "ramp_deadline": view.ramp_deadline,
        "ramp_duration": view.ramp_duration,
        "active": view.active,
        "inactive": view.inactive,
    }


def _check_latency(snapshot: StateSnapshot, vs: str, host: str) -> float | None:
    """Seconds the pair's last finished check took (None before its first one)."""
    state = snapshot.pairs.get((vs, host))
    if state is None or state.last_check_started is None or state.last_check_ended is None:
        return None
    if state.last_check_ended < state.last_check_started:  # a check is running: no pair yet
        return None
    return round(state.last_check_ended - state.last_check_started, 6)


def status_document(config: Config, snapshot: StateSnapshot, kernel: Table) -> dict[str, object]:
    """The daemon's state as JSON-ready data: per VS its sorry state and its pairs."""
    by_vs: dict[str, list[dict[str, object]]] = {vs.tag: [] for vs in config.services}
    for view in pair_views(config, snapshot, kernel):
        entry = _pair_json(view)
        entry["check_latency"] = _check_latency(snapshot, view.vs, view.host)
        by_vs[view.vs].append(entry)
    services: list[dict[str, object]] = []
    for vs in config.services:
        sorry = snapshot.vss.get(vs.tag)
        services.append(
            {
                "vs": vs.tag,
                "service": str(service_key(vs)),
                "email": vs.email,
                "sorry_server": vs.sorry_server or None,
                "in_kernel": service_key(vs) in kernel.services,
                "sorry": {
                    "on": bool(sorry and sorry.sorry_on),
                    "since": sorry.sorry_since if sorry else None,
                },
                "pairs": by_vs[vs.tag],
            }
        )
    return {"version": __version__, "config": config.path, "services": services}


def _label(value: str) -> str:
    """A label value escaped for the text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, doc: str, lines: list[str]) -> str:
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n" + "".join(lines)


class _StateText:
    """Per-pair and per-VS gauges, written straight in the text format.

    prometheus-client spends ~5 us per sample; a director with thousands of pairs would stall a
    scrape for a large part of a second, so these (8 samples per pair) are formatted here.
    """

    def __init__(self) -> None:
        # One tuple, replaced whole, so a render in another thread sees one consistent state.
        self._state: tuple[Config, tuple[Pair, ...], StateSnapshot, Table] | None = None

    def update(self, config: Config, snapshot: StateSnapshot, kernel: Table) -> None:
        old = self._state
        pairs = old[1] if old is not None and old[0] is config else tuple(config.pairs())
        self._state = (config, pairs, snapshot, kernel)

    def render(self) -> str:
        state = self._state
        if state is None:
            return ""
        config, pairs, snapshot, kernel = state
        configured: list[str] = []
        desired: list[str] = []
        actual: list[str] = []
        phase: list[str] = []
        reasons: list[str] = []
        for view in pair_views(config, snapshot, kernel, pairs=pairs):
            key = f'vs="{_label(view.vs)}",host="{_label(view.host)}"'
            configured.append(f"ipvswm_pair_configured_weight{{{key}}} {view.configured}\n")
            desired.append(f"ipvswm_pair_desired_weight{{{key}}} {view.desired}\n")
            if view.kernel_weight is not None:
                actual.append(f"ipvswm_pair_kernel_weight{{{key}}} {view.kernel_weight}\n")
            for p in Phase:
                one = 1 if p is view.phase else 0
                phase.append(f'ipvswm_pair_phase{{{key},phase="{p.value}"}} {one}\n')
            reasons.append(f"ipvswm_pair_reasons{{{key}}} {len(view.reasons)}\n")
        sorry: list[str] = []
        in_kernel: list[str] = []
        for vs in config.services:
            vs_state = snapshot.vss.get(vs.tag)
            key = f'vs="{_label(vs.tag)}"'
            sorry.append(
                f"ipvswm_vs_sorry_server{{{key}}} {int(bool(vs_state and vs_state.sorry_on))}\n"
            )
            in_kernel.append(
                f"ipvswm_vs_in_kernel{{{key}}} {int(service_key(vs) in kernel.services)}\n"
            )
        return "".join(
            (
                _family(
                    "ipvswm_pair_configured_weight", "Weight of the pair in the config.", configured
                ),
                _family(
                    "ipvswm_pair_desired_weight",
                    "Weight the engine wants for the pair (override, ramp and reasons applied).",
                    desired,
                ),
                _family(
                    "ipvswm_pair_kernel_weight",
                    "Weight of the pair in the last kernel table (absent: not in it).",
                    actual,
                ),
                _family("ipvswm_pair_phase", "Phase of the pair (1 for the current one).", phase),
                _family(
                    "ipvswm_pair_reasons",
                    "Number of reasons (host-level and pair-level) disabling the pair.",
                    reasons,
                ),
                _family(
                    "ipvswm_vs_sorry_server", "1 while the sorry server of the VS is in.", sorry
                ),
                _family(
                    "ipvswm_vs_in_kernel", "1 if the VS is in the last kernel table.", in_kernel
                ),
            )
        )


class Metrics:
    """Every metric of the daemon, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        info = Info("ipvswm_build", "Version of ipvswm and Python.", registry=reg)
        info.info({"version": __version__, "python": platform.python_version()})
        self._checks = Counter(
            "ipvswm_check_results",
            "Finished checks by checker and result.",
            ["target", "result"],
            registry=reg,
        )
        self._check_failures = Counter(
            "ipvswm_check_failures",
            "Failed checks by checker and cause.",
            ["target", "cause"],
            registry=reg,
        )
        self._check_seconds = Histogram(
            "ipvswm_check_duration_seconds",
            "Duration of checks by checker.",
            ["target"],
            buckets=CHECK_BUCKETS,
            registry=reg,
        )
        self._applies = Counter(
            "ipvswm_kernel_applies", "Batches of operations sent to the kernel.", registry=reg
        )
        self._ops = Counter(
            "ipvswm_kernel_operations", "Operations sent to the kernel.", registry=reg
        )
        self._op_failures = Counter(
            "ipvswm_kernel_operation_failures", "Operations the kernel refused.", registry=reg
        )
        self._backend_errors = Counter(
            "ipvswm_kernel_backend_errors",
            "Backend calls that failed as a whole, by kind.",
            ["kind"],
            registry=reg,
        )
        self._reloads = Counter(
            "ipvswm_config_reloads", "Config reloads by result.", ["result"], registry=reg
        )
        for result in ("ok", "rejected"):
            self._reloads.labels(result=result)
        for kind in FailureKind:
            self._backend_errors.labels(kind=kind.value)
        self._known_targets: set[str] = set()
        self._failure_labels: set[tuple[str, str]] = set()
        self._state = _StateText()

    def check_result(self, result: CheckResult) -> None:
        """Count one finished check and observe its duration."""
        target = str(result.target)
        self._known_targets.add(target)
        self._checks.labels(target=target, result="pass" if result.passed else "fail").inc()
        if not result.passed:
            cause = result.cause or "unknown"
            self._failure_labels.add((target, cause))
            self._check_failures.labels(target=target, cause=cause).inc()
        self._check_seconds.labels(target=target).observe(max(result.ended - result.started, 0.0))

    def retain_checks(self, targets: Iterable[CheckTarget]) -> None:
        """Forget the series of checkers not in `targets` (removed by a reload)."""
        keep = {str(t) for t in targets}
        for target in self._known_targets - keep:
            for result in ("pass", "fail"):
                self._remove(self._checks, target, result)
            self._remove(self._check_seconds, target)
        for target, cause in {fl for fl in self._failure_labels if fl[0] not in keep}:
            self._remove(self._check_failures, target, cause)
            self._failure_labels.discard((target, cause))
        self._known_targets &= keep

    @staticmethod
    def _remove(metric: Counter | Histogram, *labels: str) -> None:
        with contextlib.suppress(KeyError):  # older prometheus-client raises for unknown labels
            metric.remove(*labels)

    def kernel_apply(self, ops: int, failures: int) -> None:
        """Count one apply of `ops` operations of which `failures` were refused."""
        self._applies.inc()
        self._ops.inc(ops)
        self._op_failures.inc(failures)

    def backend_error(self, kind: FailureKind) -> None:
        """Count a backend call that failed as a whole."""
        self._backend_errors.labels(kind=kind.value).inc()

    def reload(self, ok: bool) -> None:
        """Count a reload attempt: applied, or rejected as invalid."""
        self._reloads.labels(result="ok" if ok else "rejected").inc()

    def update_state(self, config: Config, snapshot: StateSnapshot, kernel: Table) -> None:
        """Remember the state the per-pair and per-VS gauges show from now on (cheap)."""
        self._state.update(config, snapshot, kernel)

    def render(self) -> bytes:
        """Every metric in the Prometheus text format (thread-safe: the state is immutable)."""
        return generate_latest(self.registry) + self._state.render().encode()


def parse_listen(listen: str) -> tuple[str, int]:
    """Split `HOST:PORT` / `[V6]:PORT` / `:PORT` into a host and a port; ValueError if malformed."""
    host, sep, port = listen.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"bad listen address {listen!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"bad listen address {listen!r}: write an IPv6 address as [ADDR]:PORT")
    return host, int(port)


class MetricsServer:
    """Serves /metrics (Prometheus) and /status (JSON) with aiohttp."""

    def __init__(self, metrics: Metrics, status: Callable[[], dict[str, object]]) -> None:
        self._metrics = metrics
        self._status = status
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, listen: str) -> None:
        """Listen on `HOST:PORT`; raises ValueError for a malformed address, OSError on bind."""
        host, port = parse_listen(listen)
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/metrics", self._scrape)
        app.router.add_get("/status", self._status_json)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host or None, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("metrics: listening on %s (port %d)", listen, self.port)

    async def close(self) -> None:
        """Stop listening and close open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _index(self, request: web.Request) -> web.Response:
        """The live dashboard (dashboard.py): one page that polls /status."""
        from ipvswm.dashboard import PAGE

        return web.Response(
            text=PAGE, content_type="text/html", headers={"Cache-Control": "no-cache"}
        )

    async def _scrape(self, request: web.Request) -> web.Response:
        # In a thread: formatting thousands of samples must not stall checks and the console.
        body = await asyncio.to_thread(self._metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _status_json(self, request: web.Request) -> web.Response:
        try:
            document = self._status()
        except Exception:
            log.exception("metrics: /status failed")
            raise web.HTTPInternalServerError(text="status unavailable\n") from None
        body = await asyncio.to_thread(json.dumps, document, default=str)
        return web.Response(body=body.encode(), content_type="application/json")
