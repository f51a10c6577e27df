"""Rolling the engine back to a checkpoint undoes a step exactly (used when a commit fails)."""

from __future__ import annotations

from ipvswm.events import SetHostOff, SetOverride, SetPairsOff
from tests.unit.test_engine_fixtures import T0, basic, healthy


def test_rollback_undoes_an_admin_step_and_keeps_what_came_before() -> None:
    d = healthy(basic())
    d.at(T0 + 5).check("web", "web1", False)  # a check result earlier in the same batch
    snapshot, table = d.engine.snapshot(), d.engine.desired_table()
    wakeup = d.engine.next_wakeup()
    checkpoint = d.engine.checkpoint()
    d.feed(SetHostOff("web2", frozenset({"maint"})))
    d.feed(SetPairsOff("web1", ("web",), frozenset({"deploy"})))
    d.feed(SetOverride("web2", 7))
    assert d.engine.snapshot() != snapshot
    d.engine.rollback(checkpoint)
    assert d.engine.snapshot() == snapshot
    assert d.engine.desired_table() == table
    assert d.engine.next_wakeup() == wakeup
    assert d.weight("web", "web1") == 0  # the check result before the checkpoint stays
    # and the engine goes on exactly as one that never saw the undone commands
    twin = healthy(basic())
    twin.at(T0 + 5).check("web", "web1", False)
    for driver in (d, twin):
        driver.at(T0 + 7).check("web", "web1", True)
        driver.feed(SetHostOff("web2"))
    assert d.engine.snapshot() == twin.engine.snapshot()
    assert d.engine.desired_table() == twin.engine.desired_table()


def test_a_checkpoint_is_not_changed_by_later_steps() -> None:
    d = healthy(basic())
    checkpoint = d.engine.checkpoint()
    frozen = checkpoint.snapshot()
    d.at(T0 + 5).feed(SetHostOff("web1"))
    d.check("web", "web2", False)
    assert checkpoint.snapshot() == frozen
