"""Engine tests of a reload that adds pairs and VSs the kernel already has (SPEC §2.4, §6)."""

from __future__ import annotations

from ipvswm.config.model import Config
from ipvswm.engine.state import Phase
from ipvswm.events import CheckStatus
from ipvswm.events import ConfigLoaded
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import Driver
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

X = ServiceKey(Protocol.TCP, "192.0.2.5", 80)
WEB1, WEB2 = DestKey("198.51.100.1", 80), DestKey("198.51.100.2", 80)
SORRY = DestKey("198.51.100.99", 80)
RELOAD = T0 + 6


def _with_x(x_weight: int = 100) -> Config:
    """basic() plus VS x (sorry server `sorry`) with web1 on it."""
    return config(
        [vs("web"), vs("x", address="192.0.2.5", sorry_server="sorry")],
        [
            host("web1", "198.51.100.1", ("web", 100), ("x", x_weight)),
            host("web2", "198.51.100.2", ("web", 50)),
            host("sorry", "198.51.100.99"),
        ],
    )


def _kernel(d: Driver, x_dests: dict[DestKey, int]) -> Table:
    """What the kernel holds: the engine's own services plus x, set up by hand or by a past run."""
    services = dict(d.engine.desired_table().services)
    probe = Driver.start(_with_x()).engine.desired_table().services[X]  # x's service settings
    dests = {k: Destination(k, Forward.MASQ, w) for k, w in x_dests.items()}
    services[X] = type(probe)(probe.service, dests)
    return Table(services)


def _reloaded(x_dests: dict[DestKey, int]) -> tuple[Driver, Table]:
    d = healthy(basic())
    kernel = _kernel(d, x_dests)
    d.at(RELOAD).feed(ConfigLoaded(_with_x(), kernel))
    return d, kernel


def test_a_new_vs_in_the_kernel_keeps_its_weights_with_zero_ops() -> None:
    d, kernel = _reloaded({WEB1: 7})
    step = d.steps[-1]
    assert d.kernel_weights("x") == {WEB1: 7}
    assert (d.weight("x", "web1"), d.phase("x", "web1")) == (7, Phase.ENABLED)
    assert reconcile(d.engine.desired_table(), kernel, d.engine.service_keys()) == []
    assert X in d.engine.service_keys()  # desired, so the sync manages it: never re-created
    assert [(x.host, x.new_weight, x.cause) for x in step.decisions] == [
        ("web1", 7, "adopted from kernel")
    ]
    assert step.alerts == ()
    assert d.state("x", "web1").enabled_at is None


def test_an_adopted_pair_keeps_its_weight_until_a_result_with_a_status() -> None:
    d, _ = _reloaded({WEB1: 7})
    d.at(RELOAD + 0.5).check("x", "web1", True, status=CheckStatus.UNKNOWN)
    assert d.weight("x", "web1") == 7


def test_a_pass_that_started_before_the_reload_goes_straight_to_the_target() -> None:
    d, _ = _reloaded({WEB1: 7})
    step = d.at(RELOAD + 1).check("x", "web1", True, started=RELOAD - 0.5)
    assert (d.weight("x", "web1"), d.phase("x", "web1")) == (100, Phase.ENABLED)
    assert [(x.old_weight, x.new_weight) for x in step.decisions] == [(7, 100)]  # no 0 blip
    assert all(x.new_weight for x in d.steps[-2].decisions + step.decisions if x.vs == "x")


def test_an_adopted_pair_failing_its_first_check_goes_to_zero() -> None:
    d, _ = _reloaded({WEB1: 7})
    step = d.at(RELOAD + 1).check("x", "web1", False)
    assert (d.weight("x", "web1"), d.phase("x", "web1")) == (0, Phase.AWAIT_PASS)
    assert d.kernel_weights("x") == {WEB1: 0, SORRY: 1}
    assert [(a.vs, a.on, a.mail) for a in step.alerts] == [("x", True, True)]
    assert d.weight("web", "web1") == 0  # the same checker feeds web


def test_without_a_kernel_table_a_new_pair_waits_for_a_pass_after_the_reload() -> None:
    d = healthy(basic())
    d.at(RELOAD).feed(ConfigLoaded(_with_x()))
    assert (d.weight("x", "web1"), d.phase("x", "web1")) == (0, Phase.AWAIT_PASS)
    assert d.state("x", "web1").enabled_at == RELOAD
    d.at(RELOAD + 1).check("x", "web1", True, started=RELOAD - 0.5)
    assert d.weight("x", "web1") == 0
    d.at(RELOAD + 2).check("x", "web1", True)
    assert d.weight("x", "web1") == 100


def test_a_new_pair_absent_from_the_kernel_starts_at_zero() -> None:
    d, _ = _reloaded({WEB2: 9})  # x is in the kernel, web1 is not on it
    assert (d.weight("x", "web1"), d.phase("x", "web1")) == (0, Phase.AWAIT_PASS)
    assert d.kernel_weights("x") == {WEB1: 0, SORRY: 1}  # web2 is not x's: removed
    assert d.state("x", "web1").enabled_at == RELOAD
    d.at(RELOAD + 1).check("x", "web1", True, started=RELOAD - 0.5)
    assert d.weight("x", "web1") == 0


def test_a_new_host_on_a_known_vs_adopts_its_kernel_weight() -> None:
    d = healthy(basic())
    kernel = _kernel(d, {})
    web3 = DestKey("198.51.100.3", 80)
    entry = kernel.services[d.engine.service_key("web")]
    dests = {**entry.destinations, web3: Destination(web3, Forward.MASQ, 20)}
    kernel = Table({**kernel.services, entry.service.key: type(entry)(entry.service, dests)})
    cfg = config(
        [vs("web")],
        [
            host("web1", "198.51.100.1", ("web", 100)),
            host("web2", "198.51.100.2", ("web", 50)),
            host("web3", "198.51.100.3", ("web", 30)),
        ],
    )
    d.at(RELOAD).feed(ConfigLoaded(cfg, kernel))
    assert d.kernel_weights("web") == {WEB1: 100, WEB2: 50, web3: 20}
    d.at(RELOAD + 1).check("web", "web3", True, started=RELOAD - 1)
    assert d.weight("web", "web3") == 30


def test_an_adopted_pair_disabled_then_enabled_waits_for_a_new_pass() -> None:
    d, _ = _reloaded({WEB1: 7})
    d.at(RELOAD + 1).feed(SetHostOff("web1"))
    assert d.weight("x", "web1") == 0
    d.at(RELOAD + 2).feed(SetHostOn("web1"))
    assert d.weight("x", "web1") == 0  # not the kernel's old 7: the pair was disabled since
    d.at(RELOAD + 3).check("x", "web1", True, started=RELOAD + 1.5)
    assert d.weight("x", "web1") == 0
    d.at(RELOAD + 4).check("x", "web1", True)
    assert d.weight("x", "web1") == 100


def test_a_new_vs_in_sorry_state_in_the_kernel_starts_in_it_quietly() -> None:
    d, kernel = _reloaded({WEB1: 0, SORRY: 1})
    step = d.steps[-1]
    assert d.engine.snapshot().vss["x"].sorry_on
    assert step.changes.vss["x"] is not None and step.changes.vss["x"].sorry_on
    assert step.alerts == ()  # no switch: the sorry server was in already
    assert reconcile(d.engine.desired_table(), kernel, d.engine.service_keys()) == []
    # Its first check confirms the outage: announced (and mailed) once.
    step = d.at(RELOAD + 1).check("x", "web1", False)
    assert [(a.vs, a.on, a.at, a.mail) for a in step.alerts] == [("x", True, RELOAD, True)]
    assert d.at(RELOAD + 2).check("x", "web1", False).alerts == ()
    step = d.at(RELOAD + 3).check("x", "web1", True)
    assert [(a.on, a.after, a.mail) for a in step.alerts] == [(False, 3.0, True)]


def test_a_new_vs_in_the_kernel_whose_weight_comes_back_is_quiet() -> None:
    d, _ = _reloaded({WEB1: 0, SORRY: 1})
    step = d.at(RELOAD + 1).check("x", "web1", True)
    assert d.kernel_weights("x") == {WEB1: 100}
    assert [(a.on, a.mail) for a in step.alerts] == [(False, False)]
