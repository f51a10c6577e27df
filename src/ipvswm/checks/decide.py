"""A checker's decisions as pure values: rise/fall counting and when checks start (SPEC §3).

Nothing here reads a clock, draws a random number or touches the loop: the time (`now`, loop
time) and the random draw are arguments, so every decision is tested without an event loop
(tests/unit/test_checks_decide.py). `Checker` (checker.py) only carries them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ipvswm.config.model import CheckSpec
from ipvswm.events import CheckStatus

SLOTS_PER_SECOND = 64
"""Checks on the callback path start on a grid of 1/64 s (1/64 of the interval if shorter)."""

FIRST_CHECKS_PER_SECOND = 5000.0
"""How fast the first checks of checkers whose pairs carry no weight yet are started."""

FIRST_WINDOW_MIN = 0.5
"""The shortest window those first checks are spread over (seconds)."""


@dataclass(frozen=True, slots=True)
class Counts:
    """A checker's status after rise/fall counting, and its consecutive passes and failures."""

    status: CheckStatus = CheckStatus.UNKNOWN
    passes: int = 0
    fails: int = 0


def count(counts: Counts, passed: bool, spec: CheckSpec) -> Counts:
    """The counts after one check with a verdict.

    The status goes to PASS after `rise` consecutive passes and to FAIL after `fall` consecutive
    failures (from UNKNOWN too); in between it stays what it was. A check without a verdict (a
    local error) is not counted at all: the caller keeps the counts as they are.
    """
    if passed:
        passes = counts.passes + 1
        return Counts(CheckStatus.PASS if passes >= spec.rise else counts.status, passes, 0)
    fails = counts.fails + 1
    return Counts(CheckStatus.FAIL if fails >= spec.fall else counts.status, 0, fails)


def first_window(count: int) -> float:
    """The window over which `count` urgent first checks start (never beyond an interval).

    At start-up (and for pairs a reload adds) a pair waits for its first pass before it gets
    any weight: spreading those checks over a whole interval made 5,000 pairs take the whole
    5 s and ~50 kernel calls. Half a second, or longer when there are more checks than
    FIRST_CHECKS_PER_SECOND can start in it, so the burst stays within what one loop probes.
    """
    return max(FIRST_WINDOW_MIN, count / FIRST_CHECKS_PER_SECOND)


def first_offset(draw: float, interval: float, first_within: float | None = None) -> float:
    """How long after its start a checker runs its first check, for a random `draw` in [0, 1).

    Spread over [0, interval) so that checks spread out, or over [0, first_within) (never more
    than an interval) for a checker whose pairs carry no weight yet (`first_window`).
    """
    spread = interval if first_within is None else min(first_within, interval)
    return draw * spread


def slot_of(when: float, interval: float) -> float:
    """`when` rounded up to the start grid of checkers with this interval (shared on one loop).

    Checks due in the same slot start in one loop iteration, and their connects and answers tend
    to be handled in shared iterations too, instead of each check waking the loop on its own.
    """
    slot = min(interval, 1.0) / SLOTS_PER_SECOND
    if slot <= 0:
        return when  # a zero interval (never from a parsed config): no grid
    # The small tolerance keeps a start already on the grid (up to float error) in its slot.
    return math.ceil(when / slot - 1e-6) * slot


def next_gap(spec: CheckSpec, fails: int) -> float:
    """Start to start from this check to the next: `fast_interval` while a failure is being
    confirmed (1 <= consecutive failures < fall), else `interval`.

    A failure waits on average half an interval to be seen; with fall=3 and whole intervals
    between the confirming checks it would take two more. HAProxy's `fastinter` confirms at a
    short interval instead; once the status is FAIL (or a check passes) the interval is normal.
    """
    if 0 < fails < spec.fall:
        return min(spec.fast_interval, spec.interval)
    return spec.interval


def first_start(now: float, offset: float, interval: float, *, grid: bool) -> float:
    """When (loop time) the first check starts: `offset` from `now`, on the slot grid if `grid`."""
    return slot_of(now + offset, interval) if grid else now + offset


def next_start(previous: float, now: float, gap: float, *, grid: bool) -> float:
    """When the next check starts, `now` being the end of the check that started at `previous`.

    Start to start: `gap` after `previous` (a slow check never adds its duration). After an
    overrun (the check ended later than that) the next one starts right away, never overlapping:
    at `now` itself, or on the grid the slot after `now` (a new grid).
    """
    return max(previous + gap, slot_of(now, gap) if grid else now)
