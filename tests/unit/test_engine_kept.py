"""Admin state of removed hosts and pairs is kept and restored (issue 10 item 2): pure engine."""

from __future__ import annotations

from ipvswm.answers import Refused
from ipvswm.config.model import Config
from ipvswm.engine.engine import Engine
from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import KeptPair
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import ConfigLoaded
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import config
from tests.unit.test_engine_fixtures import healthy
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_fixtures import vs

WEEK = 604800.0


def without_web2(**options: object) -> Config:
    return config([vs("web")], [host("web1", "198.51.100.1", ("web", 100))], **options)


def test_a_host_removed_and_back_keeps_its_reasons_and_override() -> None:
    d = healthy(basic())
    d.at(T0 + 2).feed(SetHostOff("web2", frozenset({"maint"})))
    d.feed(SetOverride("web2", 7, None))
    d.feed(SetPairsOff("web2", ("web",), frozenset({"deploy"})))
    step = d.at(T0 + 3).feed(ConfigLoaded(without_web2()))
    assert step.changes.kept == {
        "web2": KeptHost(T0 + 3, frozenset({"maint"}), {"web": KeptPair(frozenset({"deploy"}), 7)})
    }
    assert any("host web2 removed" in m and "forget host web2" in m for m in step.messages)
    assert "web2" in d.engine.snapshot().kept
    step = d.at(T0 + 4).feed(ConfigLoaded(basic()))
    # back under maintenance, not in service
    assert d.phase("web", "web2") is Phase.DISABLED and d.weight("web", "web2") == 0
    st = d.state("web", "web2")
    assert st.reasons == {"deploy"} and st.override == 7
    assert d.engine.snapshot().hosts["web2"].reasons == {"maint"}
    assert step.changes.kept == {"web2": None}
    assert d.engine.snapshot().kept == {}


def test_a_pair_removed_from_one_vs_keeps_its_state_while_the_host_stays() -> None:
    two = config(
        [vs("web"), vs("api", address="192.0.2.2")],
        [host("web1", "198.51.100.1", ("web", 100), ("api", 10))],
    )
    d = healthy(two)
    d.at(T0 + 2).feed(SetPairsOff("web1", ("api",), frozenset({"broken"})))
    one = config(
        [vs("web"), vs("api", address="192.0.2.2")], [host("web1", "198.51.100.1", ("web", 100))]
    )
    d.at(T0 + 3).feed(ConfigLoaded(one))
    assert d.engine.snapshot().kept["web1"].pairs == {"api": KeptPair(frozenset({"broken"}))}
    d.at(T0 + 4).feed(ConfigLoaded(two))
    assert d.state("api", "web1").reasons == {"broken"}
    assert d.phase("api", "web1") is Phase.DISABLED


def test_a_host_without_admin_state_keeps_nothing() -> None:
    d = healthy(basic())
    step = d.at(T0 + 3).feed(ConfigLoaded(without_web2()))
    assert step.changes.kept == {} and d.engine.snapshot().kept == {}


def test_forget_host_drops_the_kept_state() -> None:
    d = healthy(basic())
    d.at(T0 + 2).feed(SetHostOff("web2", frozenset({"maint"})))
    d.at(T0 + 3).feed(ConfigLoaded(without_web2()))
    assert d.feed(ForgetHost("nosuch")).error == Refused("no kept admin state for host 'nosuch'")
    step = d.feed(ForgetHost("web2"))
    assert step.error is None and step.note is not None and "maint" in step.note
    assert step.changes.kept == {"web2": None}
    d.at(T0 + 4).feed(ConfigLoaded(basic()))
    assert d.engine.snapshot().hosts.get("web2") is None  # comes back without reasons


def test_kept_state_is_forgotten_after_config_forget_after() -> None:
    d = healthy(basic(config_forget_after=100.0))
    d.at(T0 + 2).feed(SetHostOff("web2", frozenset({"maint"})))
    d.at(T0 + 3).feed(ConfigLoaded(without_web2(config_forget_after=100.0)))
    d.at(T0 + 50).feed(SetOverride("web1", 5, None))
    assert "web2" in d.engine.snapshot().kept
    step = d.at(T0 + 104).feed(SetOverride("web1", 6, None))
    assert step.changes.kept == {"web2": None}
    assert any("forgotten after Config.ForgetAfter=100s" in m for m in step.messages)


def test_state_of_hosts_removed_while_stopped_is_kept_at_start_and_restored_later() -> None:
    d = healthy(basic())
    d.at(T0 + 2).feed(SetHostOff("web2", frozenset({"maint"})))
    saved = d.engine.snapshot()
    # restarted with web2 gone from the file (an edit made while the daemon was down)
    restarted = Engine(without_web2(), T0 + 10, saved)
    first = restarted.startup_step()
    assert first.changes.hosts == {"web2": None}
    assert first.changes.kept["web2"] == KeptHost(T0 + 10, frozenset({"maint"}))
    kept_snapshot = StateSnapshot(kept=restarted.snapshot().kept)
    # and restarted again with web2 back: the kept reasons come back from the DB
    again = Engine(basic(), T0 + 20, kept_snapshot)
    step = again.startup_step()
    assert again.snapshot().hosts["web2"].reasons == {"maint"}
    assert again.snapshot().pairs[("web", "web2")].phase is Phase.DISABLED
    assert step.changes.kept == {"web2": None}
    # expired entries are dropped at start
    late = Engine(without_web2(), T0 + 10 + WEEK, kept_snapshot)
    assert late.startup_step().changes.kept == {"web2": None}
