"""A checker: runs one distinct check every interval and counts rise/fall (SPEC §3)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable

from ipvswm.checks.probe import LoopCheck, PreparedCheck, Probe, ProbeOutcome, probe
from ipvswm.config.model import CheckSpec, CheckTarget
from ipvswm.events import CheckResult, CheckStatus

logger = logging.getLogger(__name__)

Sink = Callable[[CheckResult], None]
"""Where a checker sends each result (e.g. the engine queue's `put_nowait`)."""

INTERNAL_ERROR = "internal error"

_default_probe = probe

SLOTS_PER_SECOND = 64
"""Checks on the callback path start on a grid of 1/64 s (1/64 of the interval if shorter)."""


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


class Checker:
    """Runs `target`'s check every interval (start to start, never overlapping) and reports.

    The first check starts after a random offset in [0, interval) so checks spread out (in a
    shorter window for a checker whose pairs carry no weight yet, `start`). The
    status goes to PASS after `rise` consecutive passes and to FAIL after `fall` consecutive
    failures (from UNKNOWN too); the checks confirming a failure run `fast_interval` apart
    (`next_gap`). Results are sent to the sink; logging them is the sink's job.

    Plain HTTP and TCP checks with the built-in probe run on loop callbacks alone: one timer
    starts each check and the check's end schedules the next, so a check costs no task wake-up,
    sleep or future; their starts fall on a shared grid of slots (`slot_of`), so checks of many
    checkers share loop wake-ups. Other checks (HTTPS, a custom `probe=`) run in one task per
    checker, on an exact schedule.

    A check that could not be made on the director (`ProbeOutcome.local_error`, e.g. out of file
    descriptors) gives no verdict: it is counted in `local_errors` and logged at ERROR once per
    episode (until a check gives a verdict again), and changes nothing else: no result is sent,
    the rise/fall counts and the status stay as they were.
    """

    __slots__ = (
        "_check",
        "_fails",
        "_last",
        "_local_episode",
        "_loop",
        "_next",
        "_passes",
        "_prepared",
        "_probe",
        "_rng",
        "_sink",
        "_started",
        "_status",
        "_task",
        "_timer",
        "checks",
        "local_errors",
        "target",
    )

    def __init__(
        self,
        target: CheckTarget,
        sink: Sink,
        *,
        rng: random.Random | None = None,
        probe: Probe = probe,
    ) -> None:
        self.target = target
        self.checks = 0  # checks run since start (with a verdict or not)
        self.local_errors = 0  # checks without a verdict: could not be made on the director
        self._local_episode = 0  # such checks in a row (0: the last check gave a verdict)
        self._sink = sink
        self._rng = rng if rng is not None else random.Random()
        self._probe = probe
        # The built-in probe runs from a plan made once (request bytes, socket address).
        self._prepared = PreparedCheck(target) if probe is _default_probe else None
        self._status = CheckStatus.UNKNOWN
        self._passes = 0  # consecutive
        self._fails = 0  # consecutive
        self._last: CheckResult | None = None
        self._task: asyncio.Task[None] | None = None
        # The callback path: the loop, the next start (loop time), its timer, the check running.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False  # start() was called (on either path)
        self._next = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._check: LoopCheck | None = None

    @property
    def status(self) -> CheckStatus:
        """The status after rise/fall counting."""
        return self._status

    @property
    def last_result(self) -> CheckResult | None:
        """The most recent result, if any."""
        return self._last

    @property
    def passes(self) -> int:
        """Consecutive passes so far."""
        return self._passes

    @property
    def fails(self) -> int:
        """Consecutive failures so far."""
        return self._fails

    @property
    def running(self) -> bool:
        """Whether the checker runs (started, not cancelled; on the task path: its task alive)."""
        if self._task is not None:
            return not self._task.done()
        return self._loop is not None

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The checker's task (None before `start()`, and always on the callback path)."""
        return self._task

    def start(self, first_within: float | None = None) -> None:
        """Start the checker on the running loop (once).

        `first_within`: the first check starts at a random offset in [0, first_within) instead
        of [0, interval) (a checker whose pairs carry no weight yet); later ones keep the
        interval from there."""
        if self._started:
            return
        self._started = True
        loop = asyncio.get_running_loop()
        interval = self.target.spec.interval
        spread = interval if first_within is None else min(first_within, interval)
        offset = self._rng.random() * spread
        if self._prepared is None or not self._prepared.plain:
            self._task = loop.create_task(self._run(offset), name=f"checker {self.target}")
            return
        self._loop = loop
        # The random offset, on the slot grid: start to start, later starts stay on it.
        self._next = slot_of(loop.time() + offset, interval)
        self._timer = loop.call_at(self._next, self._begin)

    def cancel(self) -> None:
        """Stop the checker; no result is emitted after this returns.

        On the callback path it has ended when this returns (the check running is closed); a task
        ends soon after (`stop()` waits for it).
        """
        if self._task is not None:
            self._task.cancel()
        self._loop = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._check is not None:
            self._check.cancel()
            self._check = None

    async def stop(self) -> None:
        """Stop the checker and wait until it has ended."""
        self.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    # --- the callback path -----------------------------------------------------------------

    def _begin(self) -> None:
        """Timer callback: start one check; `_done` follows when it ends."""
        self._timer = None
        assert self._prepared is not None
        check: LoopCheck | None = None
        try:
            check = self._check = self._prepared.plain_check(self._done)
            check.start()  # may end (and call _done) before it returns
        except Exception:
            logger.exception("checker %s: check raised", self.target)
            if check is not None and check is not self._check:
                return  # it had ended and been reported: the next one is scheduled
            if check is not None:
                check.cancel()
            self._check = None
            now = time.time()
            self._end(ProbeOutcome(False, INTERNAL_ERROR, None, now, now))

    def _done(self, check: LoopCheck) -> None:
        """The check's end (called from its loop callback): record it, schedule the next."""
        if check is not self._check:
            return  # cancelled in the meantime (not expected: cancel() silences the check)
        self._check = None
        assert self._prepared is not None
        self._end(self._prepared.outcome(check))

    def _end(self, outcome: ProbeOutcome) -> None:
        self._record(outcome)
        loop = self._loop
        if loop is None:
            return  # cancelled, e.g. by the sink
        # Start to start; after an overrun the next check starts in the next slot, on a new grid.
        gap = next_gap(self.target.spec, self._fails)
        self._next = max(self._next + gap, slot_of(loop.time(), gap))
        self._timer = loop.call_at(self._next, self._begin)

    # --- the task path ---------------------------------------------------------------------

    async def _run(self, offset: float) -> None:
        loop = asyncio.get_running_loop()
        next_start = loop.time() + offset
        while True:
            delay = next_start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome = await self._check_once()
            self._record(outcome)
            # Start to start; after an overrun the next check starts right away, on a new grid.
            next_start = max(next_start + next_gap(self.target.spec, self._fails), loop.time())

    async def _check_once(self) -> ProbeOutcome:
        """One probe; a bug in it becomes a failed result instead of killing the checker."""
        started = time.time()
        try:
            if self._prepared is not None:
                return await self._prepared.run()
            return await self._probe(self.target)
        except Exception:
            logger.exception("checker %s: check raised", self.target)
            return ProbeOutcome(False, INTERNAL_ERROR, None, started, time.time())

    def _record(self, outcome: ProbeOutcome) -> None:
        """Count rise/fall, keep and send the result (never raises)."""
        self.checks += 1
        if outcome.local_error:
            self._no_verdict(outcome)
            return
        if self._local_episode:
            logger.warning(
                "check %s: verdicts again, after %d check(s) without one",
                self.target,
                self._local_episode,
            )
            self._local_episode = 0
        before = self._status
        spec = self.target.spec
        if outcome.passed:
            self._passes += 1
            self._fails = 0
            if self._passes >= spec.rise:
                self._status = CheckStatus.PASS
        else:
            self._fails += 1
            self._passes = 0
            if self._fails >= spec.fall:
                self._status = CheckStatus.FAIL
        changed = self._status is not before
        result = CheckResult(
            target=self.target,
            passed=outcome.passed,
            status=self._status,
            started=outcome.started,
            ended=outcome.ended,
            cause=outcome.cause,
            changed=changed,
            weight_pct=outcome.weight_pct,
        )
        self._last = result
        try:
            self._sink(result)
        except Exception:
            logger.exception("checker %s: sink failed", self.target)

    def _no_verdict(self, outcome: ProbeOutcome) -> None:
        """A check that could not be made on the director: counted and logged, nothing else."""
        self.local_errors += 1
        self._local_episode += 1
        if self._local_episode == 1:  # once per episode: not every interval of a long shortage
            logger.error(
                "check %s: no verdict: %s; status %s kept until a check can be made",
                self.target,
                outcome.cause,
                self._status.value,
            )
