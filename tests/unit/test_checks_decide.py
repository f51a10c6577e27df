"""The checker's decisions as pure functions: rise/fall counting and start scheduling (no loop)."""

from __future__ import annotations

import itertools

import pytest

from ipvswm.checks.decide import Counts
from ipvswm.checks.decide import count
from ipvswm.checks.decide import first_offset
from ipvswm.checks.decide import first_start
from ipvswm.checks.decide import first_window
from ipvswm.checks.decide import next_gap
from ipvswm.checks.decide import next_start
from ipvswm.checks.decide import slot_of
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.events import CheckStatus
from tests.support.checks import RISE_FALL

P, F, U = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.UNKNOWN


def spec(rise: int = 1, fall: int = 1, interval: float = 5.0, fast: float = 1.0) -> CheckSpec:
    return CheckSpec(CheckKind.TCP, interval=interval, rise=rise, fall=fall, fast_interval=fast)


@pytest.mark.parametrize(
    ("passes", "rise", "fall", "statuses"),
    RISE_FALL,
)
def test_count_rises_and_falls(
    passes: list[bool], rise: int, fall: int, statuses: list[CheckStatus]
) -> None:
    counts = Counts()
    seen = []
    for passed in passes:
        counts = count(counts, passed, spec(rise, fall))
        seen.append(counts.status)
        assert (counts.passes > 0) is passed and (counts.fails > 0) is not passed
    assert seen == statuses


def test_count_keeps_runs_and_never_mutates() -> None:
    start = Counts(P, 4, 0)
    after = count(start, False, spec(fall=3))
    assert after == Counts(P, 0, 1) and start == Counts(P, 4, 0)
    assert count(Counts(P, 0, 2), False, spec(fall=3)) == Counts(F, 0, 3)
    assert count(Counts(F, 0, 9), True, spec(rise=2)) == Counts(F, 1, 0)


def test_first_offset_spreads_over_the_interval_or_the_first_window() -> None:
    assert first_offset(0.5, 10.0) == 5.0
    assert first_offset(0.5, 10.0, first_within=1.0) == 0.5
    assert first_offset(0.5, 0.4, first_within=1.0) == 0.2  # never beyond an interval
    assert first_offset(0.0, 10.0) == 0.0  # at once


def test_first_window_is_short_and_grows_with_the_checks() -> None:
    assert first_window(1) == 0.5
    assert first_window(15_000) == 3.0


def test_first_start_is_on_the_grid_only_on_callbacks() -> None:
    assert first_start(100.0, 0.3, 0.05, grid=False) == 100.3
    on_grid = first_start(100.0, 0.3001, 0.05, grid=True)
    assert on_grid == slot_of(100.3001, 0.05) and on_grid >= 100.3001


def test_next_start_is_start_to_start_then_right_after_an_overrun() -> None:
    # A 0.03 s check every 0.05 s: starts 0.05 apart, not 0.08 (its duration is not added).
    starts = [10.0]
    for _ in range(5):
        starts.append(next_start(starts[-1], starts[-1] + 0.03, 0.05, grid=False))
    assert [round(b - a, 9) for a, b in itertools.pairwise(starts)] == [0.05] * 5
    # A check longer than the gap: the next starts at its end, never overlapping.
    assert next_start(10.0, 10.2, 0.05, grid=False) == 10.2
    late = next_start(10.0, 10.2001, 0.05, grid=True)
    assert late >= 10.2001 and late == slot_of(10.2001, 0.05)  # the next slot: a new grid


def test_next_gap_confirms_a_failure_at_the_fast_interval() -> None:
    s = spec(fall=3, interval=5.0, fast=0.5)
    assert [next_gap(s, fails) for fails in range(5)] == [5.0, 0.5, 0.5, 5.0, 5.0]
    assert next_gap(spec(fall=3, interval=0.2, fast=1.0), 1) == 0.2  # capped at the interval
