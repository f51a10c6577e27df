"""Random edits of a busy config: the reload (only what changed re-evaluated, engine.reload) ends
as the reload that re-evaluates every pair (an options change forces it): a differential test."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ipvswm.config.model import Config
from ipvswm.events import ConfigLoaded
from tests.unit.test_engine_fixtures import T0
from tests.unit.test_engine_fixtures import host
from tests.unit.test_engine_reload_diff import _busy
from tests.unit.test_engine_reload_diff import _config
from tests.unit.test_engine_reload_diff import _partial_and_full

_WEIGHTS = st.integers(min_value=0, max_value=100)


@st.composite
def _edited(draw: st.DrawFn) -> Config:
    """`_config(50)` with random weights, hosts dropped or added, a VS setting changed."""
    cfg = _config(draw(_WEIGHTS))
    hosts = list(cfg.hosts)
    for i, h in enumerate(hosts):
        if h.weights and draw(st.booleans()):
            weights = tuple((tag, draw(_WEIGHTS)) for tag, _ in h.weights)
            hosts[i] = replace(h, weights=weights)
    for tag in draw(st.sets(st.sampled_from(["a", "b", "c", "d", "sorry"]))):
        hosts = [h for h in hosts if h.tag != tag]
    if draw(st.booleans()):
        on = draw(st.sets(st.sampled_from(["web", "api"]), min_size=1))
        hosts.insert(-1, host("e", "198.51.100.5", *((tag, draw(_WEIGHTS)) for tag in sorted(on))))
    services = list(cfg.services)
    if draw(st.booleans()):
        services[0] = replace(services[0], depool_threshold=draw(st.sampled_from([0.0, 0.5])))
    return replace(cfg, hosts=tuple(hosts), services=tuple(services))


@settings(max_examples=60, deadline=None)
@given(_edited())
def test_a_random_edit_reloads_like_a_full_re_evaluation(changed: Config) -> None:
    step, reference = _partial_and_full(_config(50), changed)  # asserts state and desired table
    assert (step.decisions, step.touched, step.messages) == (
        reference.decisions,
        reference.touched,
        reference.messages,
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(_edited(), min_size=2, max_size=4))
def test_random_reloads_in_a_row_keep_what_a_full_re_evaluation_keeps(edits: list[Config]) -> None:
    """Hosts dropped and brought back: their kept state (engine.kept) returns in both engines."""
    partial, full = _busy(_config(50)), _busy(_config(50))
    for i, changed in enumerate([*edits, _config(50)]):
        at = T0 + 230 + i
        step = partial.at(at).feed(ConfigLoaded(changed))
        period = 9.0 + i % 2  # differs from the one before: every pair re-evaluated
        options = replace(changed.options, config_check_period=period)
        reference = full.at(at).feed(ConfigLoaded(replace(changed, options=options)))
        assert partial.engine.snapshot() == full.engine.snapshot()
        assert partial.engine.desired_table() == full.engine.desired_table()
        assert (step.decisions, step.touched) == (reference.decisions, reference.touched)
