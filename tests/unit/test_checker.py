"""Checker: rise/fall counting, schedule, robustness, with a scripted fake probe (no network).

Schedules run on virtual time (tests/support/virtualtime.py): starts are where the checker
decided, to the float; the decisions themselves are tested pure in test_checks_decide.py.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Sequence
from typing import Any

import pytest

from ipvswm.checks import plain
from ipvswm.checks.checker import Checker
from ipvswm.checks.decide import SLOTS_PER_SECOND
from ipvswm.checks.decide import slot_of
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from tests.support.checks import RISE_FALL
from tests.support.checks import FailingSink
from tests.support.checks import Results
from tests.support.virtualtime import run_virtual

P, F, U = CheckStatus.PASS, CheckStatus.FAIL, CheckStatus.UNKNOWN


def target(interval: float = 0.01, rise: int = 1, fall: int = 1) -> CheckTarget:
    spec = CheckSpec(CheckKind.TCP, interval=interval, rise=rise, fall=fall)
    return CheckTarget("192.0.2.10", 80, spec)


class Script:
    """A fake probe returning scripted pass/fail outcomes (then passes), recording its calls."""

    def __init__(self, passes: Sequence[bool] = (), duration: float = 0.0) -> None:
        self.passes = list(passes)
        self.duration = duration
        self.starts: list[float] = []
        self.running = 0
        self.max_running = 0

    async def __call__(self, target: CheckTarget) -> ProbeOutcome:
        self.starts.append(asyncio.get_running_loop().time())
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        started = time.time()
        try:
            if self.duration:
                await asyncio.sleep(self.duration)  # simulated check time, not a readiness wait
            passed = self.passes.pop(0) if self.passes else True
            return ProbeOutcome(passed, "" if passed else "status 503", None, started, time.time())
        finally:
            self.running -= 1


async def run(
    passes: Sequence[bool], *, rise: int = 1, fall: int = 1
) -> tuple[Checker, list[CheckResult]]:
    sink = Results()
    checker = Checker(target(rise=rise, fall=fall), sink, probe=Script(passes))
    checker.start()
    results = await sink.wait(len(passes))
    await checker.stop()
    return checker, results


@pytest.mark.parametrize(
    ("passes", "rise", "fall", "statuses"),
    RISE_FALL,
)
def test_rise_and_fall(
    passes: list[bool], rise: int, fall: int, statuses: list[CheckStatus]
) -> None:
    _, results = run_virtual(run(passes, rise=rise, fall=fall))
    assert [r.status for r in results] == statuses
    assert [r.passed for r in results] == passes
    before = [U, *statuses[:-1]]
    assert [r.changed for r in results] == [
        a is not b for a, b in zip(before, statuses, strict=True)
    ]
    assert all(r.cause == ("" if r.passed else "status 503") for r in results)


class HeldScript(Script):
    """A Script whose calls after the scripted outcomes never end (until the checker stops)."""

    async def __call__(self, target: CheckTarget) -> ProbeOutcome:
        if not self.passes:
            await asyncio.Event().wait()  # held: no result after the scripted ones
        return await super().__call__(target)


async def test_view_properties() -> None:
    # The probe holds after the script: a 4th result cannot land between the wait and the stop.
    sink = Results()
    checker = Checker(target(rise=1, fall=2), sink, probe=HeldScript([True, True, False]))
    checker.start()
    results = await sink.wait(3)
    await checker.stop()
    assert checker.status is P
    assert checker.last_result == results[-1]
    assert (checker.passes, checker.fails) == (0, 1)
    assert checker.checks >= 3
    assert not checker.running


async def test_probe_exception_becomes_internal_error_and_checker_goes_on() -> None:
    calls = 0

    async def flaky(t: CheckTarget) -> ProbeOutcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug in a probe")
        now = time.time()
        return ProbeOutcome(True, "", 200, now, now)

    sink = Results()
    checker = Checker(target(), sink, probe=flaky)
    checker.start()
    first, second = await sink.wait(2)
    await checker.stop()
    assert (first.passed, first.cause, first.status) == (False, "internal error", F)
    assert (second.passed, second.status, second.changed) == (True, P, True)


async def test_sink_exception_does_not_stop_the_checker() -> None:
    sink = FailingSink()
    checker = Checker(target(), sink, probe=Script())
    checker.start()
    await asyncio.wait_for(sink.done.wait(), 5)
    await checker.stop()
    assert len(sink.seen) >= 3


class Fixed(random.Random):
    def random(self) -> float:
        return 0.5


def test_start_to_start_interval_and_random_offset() -> None:
    script = Script(duration=0.03)

    async def main() -> float:
        sink = Results()
        checker = Checker(target(interval=0.05), sink, rng=Fixed(), probe=script)
        started = asyncio.get_running_loop().time()
        checker.start()
        await sink.wait(8)
        await checker.stop()
        return started

    started = run_virtual(main())
    assert script.starts[0] - started == pytest.approx(0.025)  # the offset: half the interval
    gaps = [b - a for a, b in itertools.pairwise(script.starts)]
    # Start to start: 0.05, not 0.05 plus the 0.03 the check took (an exact schedule: not HTTP
    # or TCP with the built-in probe, so no grid).
    assert gaps == pytest.approx([0.05] * 7)


def test_an_overrunning_check_never_overlaps_and_the_next_starts_right_after() -> None:
    script = Script(duration=0.03)

    async def main() -> None:
        sink = Results()
        checker = Checker(target(interval=0.01), sink, probe=script)
        checker.start()
        await sink.wait(5)
        await checker.stop()

    run_virtual(main())
    assert script.max_running == 1
    gaps = [b - a for a, b in itertools.pairwise(script.starts)]
    assert gaps == pytest.approx([0.03] * (len(script.starts) - 1))  # each at the last one's end


def test_stop_emits_nothing_more_and_ends_the_task() -> None:
    async def main() -> None:
        sink = Results()
        checker = Checker(target(), sink, probe=Script(duration=0.01))
        checker.start()
        await sink.wait(2)
        await checker.stop()
        count = len(sink.items)
        assert checker.task is not None and checker.task.done()
        await asyncio.sleep(60)  # a window in which a leaked timer or task would have reported
        assert len(sink.items) == count

    run_virtual(main())


@pytest.mark.parametrize("interval", [0.01, 0.05, 1.0, 5.0, 60.0])
def test_slot_of_rounds_up_to_a_grid_shared_by_checkers_of_the_interval(interval: float) -> None:
    slot = min(interval, 1.0) / SLOTS_PER_SECOND
    rng = random.Random(7)
    for _ in range(200):
        when = rng.uniform(0, 10_000)
        start = slot_of(when, interval)
        assert when - 1e-6 * slot <= start < when + slot
        assert round(start / slot) == pytest.approx(start / slot, abs=1e-6)  # on the grid
        assert slot_of(start, interval) == pytest.approx(start, abs=1e-9)  # stays in its slot
        # Later starts of a checker stay on the grid (start to start).
        assert slot_of(start + interval, interval) == pytest.approx(start + interval, abs=1e-9)


def test_slot_of_a_zero_interval_is_the_time_itself() -> None:
    assert slot_of(12.345, 0.0) == 12.345


async def test_plain_checks_run_on_callbacks_others_in_a_task() -> None:
    class Late(random.Random):
        def random(self) -> float:
            return 0.99  # the first check is ~10 s away: nothing is contacted before the stop

    http = CheckTarget("192.0.2.10", 80, CheckSpec(CheckKind.HTTP, interval=10.0))
    https = CheckTarget("192.0.2.10", 443, CheckSpec(CheckKind.HTTPS, interval=10.0))
    sink = Results()
    plain, tls, fake = (
        Checker(http, sink, rng=Late()),
        Checker(https, sink, rng=Late()),
        Checker(http, sink, rng=Late(), probe=Script()),
    )
    for checker in (plain, tls, fake):
        checker.start()
        checker.start()  # once
        assert checker.running and checker.task is None  # a task only while a check is awaited
    assert plain.on_callbacks
    assert not tls.on_callbacks and not fake.on_callbacks
    for checker in (plain, tls, fake):
        await checker.stop()
        assert not checker.running
    assert sink.items == []


class Outcomes:
    """A fake probe returning outcomes by letter: P pass, F fail, L no verdict (EMFILE).

    When the letters are used up (all recorded), `done` is set and the next check never ends.
    """

    def __init__(self, letters: str) -> None:
        self.letters = list(letters)
        self.done = asyncio.Event()

    async def __call__(self, target: CheckTarget) -> ProbeOutcome:
        now = time.time()
        if not self.letters:
            self.done.set()
            await asyncio.Event().wait()  # until the checker is stopped
        letter = self.letters.pop(0)
        if letter == "L":
            cause = "EMFILE (the director is out of file descriptors)"
            return ProbeOutcome(False, cause, None, now, now, local_error=True)
        return ProbeOutcome(letter == "P", "" if letter == "P" else "status 503", None, now, now)


async def run_letters(
    letters: str, *, rise: int = 1, fall: int = 1
) -> tuple[Checker, list[CheckResult]]:
    sink = Results()
    script = Outcomes(letters)
    checker = Checker(target(rise=rise, fall=fall), sink, probe=script)
    checker.start()
    await asyncio.wait_for(script.done.wait(), 5)
    await checker.stop()
    return checker, sink.items


@pytest.mark.parametrize(
    ("letters", "rise", "fall", "statuses", "local"),
    [
        # A healthy server stays PASS with fall=1 while the director is out of descriptors.
        ("PLLLP", 1, 1, [P, P], 3),
        # No verdict neither breaks nor extends a run: F L F is two failures in a row.
        ("PFLF", 1, 2, [P, P, F], 1),
        ("FPLP", 2, 1, [F, F, P], 1),
        ("LLP", 1, 1, [P], 2),
    ],
)
async def test_a_local_error_is_no_verdict(
    letters: str, rise: int, fall: int, statuses: list[CheckStatus], local: int
) -> None:
    checker, results = await run_letters(letters, rise=rise, fall=fall)
    assert [r.status for r in results] == statuses
    assert all(r.cause in ("", "status 503") for r in results)  # none is sent for "L"
    assert checker.local_errors == local
    assert checker.checks == len(letters)


async def test_no_verdict_is_logged_once_per_episode(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ipvswm.checks.checker")
    checker, results = await run_letters("PLLLLPLLP")
    assert [r.passed for r in results] == [True, True, True]
    assert checker.local_errors == 6
    assert checker.status is P
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    line = (
        f"check {checker.target}: no verdict: EMFILE (the director is out of file descriptors); "
        "status pass kept until a check can be made"
    )
    assert errors == [line, line]  # one per episode, not one per check
    again = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert again == [
        f"check {checker.target}: verdicts again, after 4 check(s) without one",
        f"check {checker.target}: verdicts again, after 2 check(s) without one",
    ]


async def test_no_verdict_before_any_result_keeps_unknown() -> None:
    checker, results = await run_letters("LLL")
    assert results == []
    assert checker.status is U and checker.last_result is None
    assert (checker.local_errors, checker.passes, checker.fails) == (3, 0, 0)


class Unroutable(socket.socket):
    """A socket whose connect fails at once as when no local port is free (never contacts)."""

    def connect_ex(self, address: object) -> int:
        return errno.EADDRNOTAVAIL


class DirectorShort:
    """The socket module as `plain` sees it, with sockets failing for a director-local reason."""

    def __init__(self, err: int) -> None:
        self.err = err

    def __getattr__(self, name: str) -> object:
        return getattr(socket, name)

    def socket(self, *args: Any) -> socket.socket:
        if self.err == errno.EADDRNOTAVAIL:
            return Unroutable(*args)
        raise OSError(self.err, os.strerror(self.err))


@pytest.mark.parametrize(
    ("err", "why"),
    [
        (errno.EMFILE, "the director is out of file descriptors"),
        (errno.ENFILE, "the director's system-wide file table is full"),
        (errno.ENOBUFS, "the director is out of socket buffer memory"),
        (errno.EADDRNOTAVAIL, "the director has no free local port or address for it"),
    ],
)
async def test_callback_path_local_error_is_no_verdict(
    err: int, why: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(plain, "socket", DirectorShort(err))
    starts = 0
    three = asyncio.Event()
    real_start = plain.PlainCheck.start

    def counted(check: plain.PlainCheck) -> None:
        nonlocal starts
        starts += 1
        if starts == 3:
            three.set()
        real_start(check)

    monkeypatch.setattr(plain.PlainCheck, "start", counted)
    sink = Results()
    checker = Checker(target(), sink)  # the built-in probe: the callback path
    checker.start()
    assert checker.task is None
    await asyncio.wait_for(three.wait(), 5)
    await checker.stop()
    assert sink.items == []
    assert checker.status is U and checker.local_errors == checker.checks >= 2
    name = errno.errorcode[err]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"check {checker.target}: no verdict: {name} ({why}); "
        "status unknown kept until a check can be made"
    ]
