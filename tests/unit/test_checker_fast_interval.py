"""fast_interval= (issue 16 goal 5): a first failure is confirmed at a short interval."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

import pytest

from ipvswm.checks.checker import Checker
from ipvswm.checks.decide import next_gap
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.parser import parse_text
from ipvswm.events import CheckStatus
from tests.support.checks import Results
from tests.support.virtualtime import run_virtual

HOUR = 3600.0  # an interval no test waits for: a check that ran came at the fast interval


class Now(random.Random):
    def random(self) -> float:
        return 0.0  # the first check at once


def spec(fall: int, fast: float = 0.01, interval: float = HOUR) -> CheckSpec:
    return CheckSpec(CheckKind.TCP, interval=interval, fall=fall, fast_interval=fast)


@pytest.mark.parametrize(
    ("fall", "fails", "gap"),
    [
        (3, 0, HOUR),  # passing: the interval
        (3, 1, 0.01),  # a first failure: confirmed fast
        (3, 2, 0.01),
        (3, 3, HOUR),  # FAIL reached: back to the interval
        (3, 7, HOUR),
        (1, 1, HOUR),  # fall=1: nothing to confirm
    ],
)
def test_next_gap_is_fast_only_while_a_failure_is_confirmed(
    fall: int, fails: int, gap: float
) -> None:
    assert next_gap(spec(fall), fails) == gap


def test_a_fast_interval_longer_than_the_interval_is_capped() -> None:
    assert next_gap(spec(3, fast=10.0, interval=2.0), 1) == 2.0


class Failing:
    """A probe that always fails, recording when (loop time) each check started."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    async def __call__(self, target: CheckTarget) -> ProbeOutcome:
        self.starts.append(asyncio.get_running_loop().time())
        now = time.time()
        return ProbeOutcome(False, "status 503", None, now, now)


def test_task_path_confirms_at_the_fast_interval_then_waits_an_interval() -> None:
    probe = Failing()

    async def main() -> list[CheckStatus]:
        sink = Results()
        checker = Checker(CheckTarget("192.0.2.10", 80, spec(3)), sink, rng=Now(), probe=probe)
        checker.start()
        results = await sink.wait(3)
        await asyncio.sleep(HOUR - 1)  # virtual time: no check comes before the interval
        await checker.stop()
        return [r.status for r in results]

    assert run_virtual(main()) == [CheckStatus.UNKNOWN] * 2 + [CheckStatus.FAIL]
    # On virtual time, exactly: two confirming checks at the fast interval, then the interval.
    gaps = [b - a for a, b in itertools.pairwise(probe.starts)]
    assert gaps == pytest.approx([0.01, 0.01])


async def test_callback_path_confirms_at_the_fast_interval() -> None:
    # A plain TCP check to a closed loopback port: refused, on the callback path.
    target = CheckTarget("127.0.0.37", 9, spec(3))
    sink = Results()
    checker = Checker(target, sink, rng=Now())
    checker.start()
    assert checker.task is None
    results = await sink.wait(3)
    await checker.stop()
    assert [r.passed for r in results] == [False] * 3
    assert results[-1].status is CheckStatus.FAIL
    assert checker.checks == 3


def parsed_spec(options: str, globals_: str = "") -> CheckSpec:
    result = parse_text(f"{globals_}! www 192.0.2.1:80 /health {options}\nweb 127.0.0.1:80 www=1\n")
    assert result.config is not None, list(result.messages())
    return result.config.services[0].check


def test_fast_interval_option_defaults_and_validation() -> None:
    assert parsed_spec("fall=3").fast_interval == 1.0
    assert parsed_spec("fall=3,fast_interval=0.25").fast_interval == 0.25
    short = parsed_spec("interval=0.5,fall=3")  # the default, capped at a shorter interval
    assert (short.fast_interval, next_gap(short, 1)) == (1.0, 0.5)
    bad = parse_text("! www 192.0.2.1:80 /health interval=2,fast_interval=3\n")
    assert bad.config is None
    assert any("fast_interval=3 is longer than the check interval" in m for m in bad.messages())
    zero = parse_text("! www 192.0.2.1:80 /health fast_interval=0\n")
    assert zero.config is None
