"""Plan, commit, apply: an admin command is planned as a value (nothing changes), committed by
the owner, and applied only then; a plan whose commit failed is dropped and the engine is as if
the command had never come (issue 14 item 3; it replaced checkpoint and rollback)."""

from __future__ import annotations

import pytest

from ipvswm.answers import Refused
from ipvswm.engine.admin import AdminPlan
from ipvswm.engine.state import HostState
from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import basic
from tests.unit.test_engine_fixtures import healthy


def test_plan_is_pure_and_carries_the_admin_input_to_commit() -> None:
    d = healthy(basic())
    before, table = d.engine.snapshot(), d.engine.desired_table()
    plan = d.engine.plan(SetHostOff("web1", frozenset({"maint"})), T0 + 5)
    assert isinstance(plan, AdminPlan)
    assert d.engine.snapshot() == before and d.engine.desired_table() == table
    assert plan.changes.hosts == {"web1": HostState(frozenset({"maint"}))}
    assert not plan.changes.pairs  # the weight it leads to comes with the batch's commit
    step = d.engine.apply(plan, T0 + 5)
    assert d.weight("web", "web1") == 0
    assert step.changes.hosts == plan.changes.hosts
    assert step.changes.pairs[("web", "web1")] is not None  # weight 0, DISABLED: derived
    assert [x.cause for x in step.decisions] == ["admin off (maint)"]


def test_a_plan_not_applied_leaves_the_engine_as_if_the_command_never_came() -> None:
    """What a failed commit does: the owner drops the plan; what follows is as without it."""
    d, twin = healthy(basic()), healthy(basic())
    plan = d.engine.plan(SetOverride("web1", 5), T0 + 5)
    assert isinstance(plan, AdminPlan)
    assert d.engine.snapshot() == twin.engine.snapshot()
    for driver in (d, twin):
        driver.at(T0 + 6).check("web", "web1", False)
    assert d.steps[-1] == twin.steps[-1]
    assert d.engine.snapshot() == twin.engine.snapshot()
    assert d.engine.desired_table() == twin.engine.desired_table()


def test_a_plan_applies_only_to_the_state_it_was_made_on() -> None:
    d = healthy(basic())
    plan = d.engine.plan(SetHostOff("web1"), T0 + 5)
    assert isinstance(plan, AdminPlan)
    d.at(T0 + 6).check("web", "web2", False)  # a step in between
    with pytest.raises(ValueError, match="another state"):
        d.engine.apply(plan, T0 + 6)


def test_a_refusal_is_a_value_and_changes_nothing() -> None:
    d = healthy(basic())
    before = d.engine.snapshot()
    assert d.engine.plan(SetPairsOff("web1", ("api",)), T0 + 5) == Refused("no such vs 'api'")
    assert d.engine.plan(SetHostOn("nosuch"), T0 + 5) == Refused("no such host 'nosuch'")
    assert d.engine.plan(ForgetHost("web1"), T0 + 5) == Refused(
        "no kept admin state for host 'web1'"
    )
    assert d.engine.snapshot() == before


def test_forget_host_is_planned_then_applied() -> None:
    kept = {"gone": KeptHost(T0, frozenset({"maint"}))}
    d = healthy(basic())
    d.engine = type(d.engine)(basic(), T0, StateSnapshot(kept=kept))
    plan = d.engine.plan(ForgetHost("gone"), T0 + 1)
    assert isinstance(plan, AdminPlan)
    assert plan.changes.kept == {"gone": None}
    assert d.engine.snapshot().kept == kept  # not yet
    step = d.engine.apply(plan, T0 + 1)
    assert step.note == "forgot host reasons maint"
    assert d.engine.snapshot().kept == {}
    assert step.changes.kept == {"gone": None}


def test_an_expired_kept_entry_cannot_be_forgotten_twice() -> None:
    kept = {"gone": KeptHost(T0, frozenset({"maint"}))}
    d = healthy(basic(config_forget_after=10.0))
    d.engine = type(d.engine)(basic(config_forget_after=10.0), T0, StateSnapshot(kept=kept))
    assert d.engine.plan(ForgetHost("gone"), T0 + 11) == Refused(
        "no kept admin state for host 'gone'"
    )
