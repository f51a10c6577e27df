"""Property test of the engine: random events and time steps, invariants after every step."""

from __future__ import annotations

import math

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.stateful import initialize
from hypothesis.stateful import invariant
from hypothesis.stateful import rule

from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.engine import Engine
from ipvswm.engine.outputs import Step
from ipvswm.engine.rules import MIN_RAMP_STEP
from ipvswm.engine.state import PairId
from ipvswm.engine.state import Phase
from ipvswm.engine.state import VsState
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import ConfigLoaded
from ipvswm.events import EngineEvent
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.events import SetPairsOn
from ipvswm.events import Tick
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceEntry
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from tests.unit.test_engine_fixtures import NO_CHECK
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

HOSTS = ("h1", "h2", "h3")
REASONS = ("default", "maint", "deploy")


D_WEIGHTS = {"h1": 30, "h3": 5}  # the pairs of VS d, which reloads add and remove


def _config(h2_weight: int, with_d: bool = False) -> Config:
    d = [vs("d", address="192.0.2.5")] if with_d else []
    on_d = {tag: (("d", w),) if with_d else () for tag, w in D_WEIGHTS.items()}
    return config(
        [
            vs("a", sorry_server="sorry"),
            vs("b", address="192.0.2.2", sorry_server="h1"),  # sorry host is a real server
            vs("c", address="192.0.2.3", check=NO_CHECK),
            vs("empty", address="192.0.2.4"),
            *d,
        ],
        [
            host("h1", "198.51.100.1", ("a", 100), ("b", 20), *on_d["h1"]),  # one checker: a, b, d
            host("h2", "198.51.100.2", ("a", h2_weight), ("c", 10)),
            host("h3", "198.51.100.3", ("b", 0), ("c", 7), *on_d["h3"]),
            host("sorry", "198.51.100.99"),
        ],
        ramping_trigger_time=30.0,
        ramping_duration=10.0,
        sorry_server_default="sorry",
    )


def _curve(target: int, deadline: float, now: float) -> int:
    """The original's ramp curve, written independently of the engine's."""
    return math.ceil(target / (round(max(deadline - now, 0.0), 6) + 1))


reason_sets = st.frozensets(st.sampled_from(REASONS), min_size=1, max_size=2)
on_reasons = st.one_of(st.none(), reason_sets)
ramps = st.one_of(st.none(), st.sampled_from([0.0, 5.0, 20.0]))


class EngineMachine(RuleBasedStateMachine):
    """Drives one engine and an independent model of reasons, enables and check history."""

    @initialize()
    def start(self) -> None:
        self.now = T0
        self.cfg = _config(50)
        self.engine = Engine(self.cfg, self.now)
        self.host_reasons: dict[str, frozenset[str]] = dict.fromkeys(HOSTS, frozenset())
        self.pair_reasons: dict[PairId, frozenset[str]] = {}
        # Reasons of pairs a reload removed: the engine keeps them and restores them when the
        # pair comes back (issue 10 item 2).
        self.kept_reasons: dict[PairId, frozenset[str]] = {}
        self.enabled_at: dict[PairId, float] = {}  # last command that left the pair with no reason
        self.target_status: dict[CheckTarget, CheckStatus] = {}
        self.last_pass: dict[CheckTarget, float] = {}
        self.last_fail: dict[CheckTarget, float] = {}
        self.last_end: dict[CheckTarget, float] = {}
        self.prev_weights: dict[PairId, int] = {}
        self.perturbed: set[PairId] = set()
        # Pairs a reload adopted from the kernel, by checker: exempt until it reports a status.
        self.adopted: dict[PairId, CheckTarget] = {}
        self.kernel_weight: dict[PairId, int] = {}  # what they keep (0 once disabled)
        # Per VS, the checkers it has not heard from since it was born; and its mailed state.
        self.unchecked: dict[str, set[CheckTarget]] = {
            service.tag: self._targets(service.tag) for service in self.cfg.services
        }
        self.mailed_on: dict[str, bool] = {service.tag: False for service in self.cfg.services}
        # VSs born cold (no kernel service) whose sorry server waits for their first round of
        # checks, until their deadline (interval + timeouts after birth).
        self.deciding: dict[str, float] = {}
        for service in self.cfg.services:
            self._born_cold(service.tag)
        self.table = self.engine.desired_table()
        self._feed(Tick())

    # --- helpers ------------------------------------------------------------------------------

    def _pairs(self) -> dict[PairId, CheckTarget | None]:
        return {(p.vs, p.host): p.check for p in self.cfg.pairs()}

    def _targets(self, vs_tag: str) -> set[CheckTarget]:
        return {t for pid, t in self._pairs().items() if pid[0] == vs_tag and t is not None}

    def _born_cold(self, vs_tag: str) -> None:
        bounds = [
            t.spec.interval + t.spec.connect_timeout + t.spec.response_timeout
            for t in self._targets(vs_tag)
        ]
        if bounds:
            self.deciding[vs_tag] = self.now + max(bounds)

    def _reasons(self, pid: PairId) -> frozenset[str]:
        return self.host_reasons[pid[1]] | self.pair_reasons.get(pid, frozenset())

    def _feed(self, event: EngineEvent) -> Step:
        snap = self.engine.snapshot()
        self.prev_weights = {pid: s.weight for pid, s in snap.pairs.items()}
        before = self.table
        step = self.engine.handle(event, self.now)
        for tag, deadline in list(self.deciding.items()):
            if not self.unchecked.get(tag) or self.now >= deadline:
                del self.deciding[tag]  # decided from now on
        for pid in self.adopted:
            if self._reasons(pid):
                self.kernel_weight[pid] = 0  # disabled: the kernel has 0 from now on
        self.table = self.engine.desired_table()
        for key in before.services.keys() | self.table.services.keys():
            if before.services.get(key) != self.table.services.get(key):
                assert key in step.touched, f"{key} changed but is not in touched"
        self._sorry_alerts(snap.vss, step)
        return step

    def _sorry_alerts(self, old: dict[str, VsState], step: Step) -> None:
        """Every switch has its alert; mails alternate FAIL, OK per VS, once it is checked."""
        new = self.engine.snapshot().vss
        for tag, state in new.items():
            if tag in old and old[tag].sorry_on != state.sorry_on:
                assert [a.on for a in step.alerts if a.vs == tag] == [state.sorry_on], tag
        for alert in step.alerts:
            if alert.mail:
                assert not self.unchecked[alert.vs], alert  # no mail before its checkers report
                assert self.mailed_on[alert.vs] != alert.on, alert
                self.mailed_on[alert.vs] = alert.on

    def _admin(self, event: EngineEvent, pids: list[PairId], refused: bool = False) -> None:
        before = {pid: self._reasons(pid) for pid in pids}
        return_step = self._feed(event)
        if refused:  # an `on` that removed no reason while others hold the host (issue 10)
            assert return_step.error is not None
            assert return_step.error.reason.startswith("nothing removed: host ")
            return
        assert return_step.error is None
        for pid in pids:
            if before[pid] and not self._reasons(pid):
                self.enabled_at[pid] = self.now
        self.perturbed = set(pids)

    # --- rules --------------------------------------------------------------------------------

    @rule(dt=st.floats(min_value=0.0, max_value=45.0))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.perturbed = set()
        self._feed(Tick())
        self._ramps_follow_the_curve()

    @rule()
    def wake_up(self) -> None:
        wake = self.engine.next_wakeup()
        if wake is not None:
            assert wake > self.now
            self.now = wake
        self.perturbed = set()
        self._feed(Tick())
        self._ramps_follow_the_curve()

    def _ramps_follow_the_curve(self) -> None:
        """After a tick every ramp weight is the curve's value (sampled every MIN_RAMP_STEP)."""
        for pid, state in self.engine.snapshot().pairs.items():
            if state.phase is not Phase.RAMPING or state.ramp_deadline is None:
                continue
            pair = next(p for p in self.cfg.pairs() if (p.vs, p.host) == pid)
            target = pair.weight if state.override is None else state.override
            low = _curve(target, state.ramp_deadline, self.now - MIN_RAMP_STEP - 1e-3)
            assert low <= state.weight <= _curve(target, state.ramp_deadline, self.now)

    @rule(
        data=st.data(),
        passed=st.booleans(),
        back=st.floats(min_value=0.0, max_value=3.0),
    )
    def check(self, data: st.DataObject, passed: bool, back: float) -> None:
        targets = sorted(self.cfg.check_targets(), key=str)
        target = data.draw(st.sampled_from(targets))
        started = max(self.now - back, self.last_end.get(target, T0))
        self.last_end[target] = self.now
        status = CheckStatus.PASS if passed else CheckStatus.FAIL
        self.target_status[target] = status
        if passed:
            self.last_pass[target] = started
        else:
            self.last_fail[target] = self.now
        self.perturbed = {pid for pid, t in self._pairs().items() if t == target and not passed}
        for pid in [pid for pid, t in self.adopted.items() if t == target]:
            del self.adopted[pid]
            self.perturbed.add(pid)  # its kernel weight may be above its target
        for waiting in self.unchecked.values():
            waiting.discard(target)
        self._feed(CheckResult(target, passed, status, started, self.now, "" if passed else "x"))

    @rule(name=st.sampled_from(HOSTS), reasons=reason_sets)
    def host_off(self, name: str, reasons: frozenset[str]) -> None:
        self.host_reasons[name] |= reasons
        self._admin(SetHostOff(name, reasons), [p for p in self._pairs() if p[1] == name])

    @rule(name=st.sampled_from(HOSTS), reasons=on_reasons, ramp=ramps)
    def host_on(self, name: str, reasons: frozenset[str] | None, ramp: float | None) -> None:
        pids = [p for p in self._pairs() if p[1] == name]
        before = {pid: self._reasons(pid) for pid in pids}
        old = self.host_reasons[name]
        self.host_reasons[name] = frozenset() if reasons is None else old - reasons
        step = self._feed(SetHostOn(name, reasons, ramp))
        held = old or any(self.pair_reasons.get(pid) for pid in pids)
        if self.host_reasons[name] == old and held:  # removed nothing: refused, says why
            assert step.error is not None and step.error.reason.startswith("nothing removed: host ")
            return
        assert step.error is None
        for pid in pids:
            # Enabled only when the host's last reason goes and the pair has none of its own.
            if old and not self.host_reasons[name] and before[pid] and not self._reasons(pid):
                self.enabled_at[pid] = self.now
        self.perturbed = set(pids)

    @rule(data=st.data(), off=st.booleans(), reasons=on_reasons, ramp=ramps)
    def pair_admin(
        self, data: st.DataObject, off: bool, reasons: frozenset[str] | None, ramp: float | None
    ) -> None:
        pid = data.draw(st.sampled_from(sorted(self._pairs())))
        old = self.pair_reasons.get(pid, frozenset())
        if off:
            added = reasons if reasons is not None else frozenset({"default"})
            self.pair_reasons[pid] = old | added
            self._admin(SetPairsOff(pid[1], (pid[0],), added), [pid])
        else:
            new = frozenset() if reasons is None else old - reasons
            self.pair_reasons[pid] = new
            refused = new == old and bool(new or self.host_reasons[pid[1]])
            self._admin(SetPairsOn(pid[1], (pid[0],), reasons, ramp), [pid], refused)

    @rule(name=st.sampled_from(HOSTS), weight=st.one_of(st.none(), st.integers(0, 200)))
    def override(self, name: str, weight: int | None) -> None:
        self._feed(SetOverride(name, weight))
        self.perturbed = {p for p in self._pairs() if p[1] == name}

    @rule(data=st.data(), h2_weight=st.sampled_from([0, 50, 80]), with_d=st.booleans())
    def reload(self, data: st.DataObject, h2_weight: int, with_d: bool) -> None:
        had_d = "d" in self.unchecked
        self.cfg = _config(h2_weight, with_d)
        kernel = self.table  # what the daemon has cached: the last desired table, applied
        in_kernel: dict[str, int] = {}
        if with_d and not had_d:
            # d (re-)appears; the kernel may have it from a past run or from an operator.
            if data.draw(st.booleans()):
                tags = st.sampled_from(sorted(D_WEIGHTS))
                in_kernel = data.draw(st.dictionaries(tags, st.integers(0, 60)))
                kernel = _with_d(kernel, in_kernel)
            else:
                self._born_cold("d")
            for tag in D_WEIGHTS:
                pid = ("d", tag)
                if pid in self.kept_reasons:
                    self.pair_reasons[pid] = self.kept_reasons.pop(pid)
                if tag in in_kernel:
                    self.enabled_at.pop(pid, None)
                    check = self._pairs()[pid]
                    assert check is not None
                    self.adopted[pid] = check
                    self.kernel_weight[pid] = in_kernel[tag]
                else:
                    self.enabled_at[pid] = self.now
            self.unchecked["d"] = self._targets("d")
            self.mailed_on["d"] = False
        elif had_d and not with_d:
            for tag in D_WEIGHTS:
                if self.pair_reasons.get(("d", tag)):
                    self.kept_reasons[("d", tag)] = self.pair_reasons[("d", tag)]
                for gone in (self.pair_reasons, self.enabled_at, self.adopted, self.kernel_weight):
                    gone.pop(("d", tag), None)
            del self.unchecked["d"], self.mailed_on["d"]
            self.deciding.pop("d", None)
        self._feed(ConfigLoaded(self.cfg, kernel))
        self.perturbed = set(self._pairs())

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def weight_implies_enabled_and_a_recent_pass(self) -> None:
        snap = self.engine.snapshot()
        for pid, check in self._pairs().items():
            state = snap.pairs[pid]
            if state.weight == 0 or pid in self.adopted:
                continue
            assert not self._reasons(pid), (pid, state)
            assert state.phase in (Phase.ENABLED, Phase.RAMPING)
            if check is None:
                continue
            assert self.target_status.get(check) is CheckStatus.PASS, (pid, state)
            passed = self.last_pass[check]
            assert passed >= self.enabled_at.get(pid, T0), (pid, state)
            assert passed >= self.last_fail.get(check, T0), (pid, state)

    @invariant()
    def ramps_stay_under_target_and_never_fall(self) -> None:
        snap = self.engine.snapshot()
        for pid, pair_state in snap.pairs.items():
            pair = next(p for p in self.cfg.pairs() if (p.vs, p.host) == pid)
            target = pair.weight if pair_state.override is None else pair_state.override
            assert pair_state.weight <= target or pid in self.adopted, (pid, pair_state)
            previous = self.prev_weights.get(pid, 0)
            if pid not in self.perturbed and previous > 0:
                assert pair_state.weight >= previous, (pid, previous, pair_state)

    @invariant()
    def sorry_server_iff_no_weight(self) -> None:
        """The sorry server is in exactly when the VS has no weight, once it is decided."""
        snap = self.engine.snapshot()
        table: Table = self.table
        layout = {(p.vs, p.host): p for p in self.cfg.pairs()}
        for service in self.cfg.services:
            total = sum(s.weight for pid, s in snap.pairs.items() if pid[0] == service.tag)
            on = snap.vss[service.tag].sorry_on
            assert on == (total == 0 and service.tag not in self.deciding), service.tag
            dests = table.services[self.engine.service_key(service.tag)].destinations
            sorry_tag = service.sorry_server or "sorry"
            sorry_host = self.cfg.host(sorry_tag)
            assert sorry_host is not None
            sorry = DestKey(sorry_host.address, service.port)
            real = {
                DestKey(p.address, p.port): pid
                for pid, p in layout.items()
                if pid[0] == service.tag
            }
            if on:
                assert dests[sorry].weight == 1
            elif sorry in real:
                assert dests[sorry].weight == snap.pairs[real[sorry]].weight
            else:
                assert sorry not in dests
            for key, pid in real.items():
                if key != sorry or not on:
                    assert dests[key].weight == snap.pairs[pid].weight

    @invariant()
    def adopted_pairs_keep_their_kernel_weight(self) -> None:
        snap = self.engine.snapshot()
        for pid in self.adopted:
            expected = 0 if self._reasons(pid) else self.kernel_weight[pid]
            assert snap.pairs[pid].weight == expected, (pid, snap.pairs[pid])

    @invariant()
    def checked_vss_have_their_sorry_state_mailed(self) -> None:
        """Once every checker of a VS has reported, its last mail says what its state is."""
        for tag, state in self.engine.snapshot().vss.items():
            if not self.unchecked[tag]:
                assert self.mailed_on[tag] == state.sorry_on, tag


def _with_d(kernel: Table, weights: dict[str, int]) -> Table:
    """The kernel table plus VS d with some of its hosts at the given weights."""
    key = ServiceKey(Protocol.TCP, "192.0.2.5", 80)
    addresses = {"h1": "198.51.100.1", "h3": "198.51.100.3"}
    dests = {DestKey(addresses[t], 80): w for t, w in weights.items()}
    entry = ServiceEntry(
        Service(key, scheduler="wrr"),
        {k: Destination(k, Forward.MASQ, w) for k, w in dests.items()},
    )
    return Table({**kernel.services, key: entry})


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
