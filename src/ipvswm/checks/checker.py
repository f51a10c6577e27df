"""A checker: runs one distinct check every interval as decide.py decides (SPEC §3)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from ipvswm.checks import decide
from ipvswm.checks.probe import LoopCheck
from ipvswm.checks.probe import PreparedCheck
from ipvswm.checks.probe import Probe
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckTarget
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus

logger = logging.getLogger(__name__)

Sink = Callable[[CheckResult], None]
"""Where a checker sends each result (e.g. the engine queue's `put_nowait`)."""

INTERNAL_ERROR = "internal error"

_default_probe = probe


class Checker:
    """Runs `target`'s check every interval (start to start, never overlapping) and reports.

    Every decision is a pure function of `decide.py`: the first check starts after a random
    offset in [0, interval) so checks spread out (in a shorter window for a checker whose pairs
    carry no weight yet, `start`); the status goes to PASS after `rise` consecutive passes and to
    FAIL after `fall` consecutive failures (from UNKNOWN too); the checks confirming a failure
    run `fast_interval` apart (`next_gap`). Results are sent to the sink; logging them is the
    sink's job.

    One path runs every check: a loop timer starts it (`_begin`), its end records it and arms
    the timer of the next (`_end`). Plain HTTP, TCP and DNS checks with the built-in probe run on
    loop callbacks alone (`on_callbacks`): a check costs no task, sleep or future, and their
    starts fall on a shared grid of slots (`slot_of`), so checks of many checkers share loop
    wake-ups. Other checks (HTTPS, exec, a custom `probe=`) are awaited in a task per check, on
    an exact schedule.

    A check that could not be made on the director (`ProbeOutcome.local_error`, e.g. out of file
    descriptors) gives no verdict: it is counted in `local_errors` and logged at ERROR once per
    episode (until a check gives a verdict again), and changes nothing else: no result is sent,
    the rise/fall counts and the status stay as they were.
    """

    __slots__ = (
        "_check",
        "_counts",
        "_last",
        "_local_episode",
        "_loop",
        "_next",
        "_prepared",
        "_probe",
        "_rng",
        "_sink",
        "_started",
        "_task",
        "_timer",
        "checks",
        "local_errors",
        "on_callbacks",
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
        self.on_callbacks = self._prepared is not None and self._prepared.plain
        """Whether checks run on loop callbacks alone (no task), their starts on the slot grid."""
        self._counts = decide.Counts()
        self._last: CheckResult | None = None
        # The loop (None once cancelled), the next start (loop time), its timer, the check
        # running: on callbacks a LoopCheck, else the task awaiting the probe (kept once done).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False  # start() was called
        self._next = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._check: LoopCheck | None = None
        self._task: asyncio.Task[ProbeOutcome] | None = None

    @property
    def status(self) -> CheckStatus:
        """The status after rise/fall counting."""
        return self._counts.status

    @property
    def last_result(self) -> CheckResult | None:
        """The most recent result, if any."""
        return self._last

    @property
    def passes(self) -> int:
        """Consecutive passes so far."""
        return self._counts.passes

    @property
    def fails(self) -> int:
        """Consecutive failures so far."""
        return self._counts.fails

    @property
    def running(self) -> bool:
        """Whether the checker runs (started, not cancelled)."""
        return self._loop is not None

    @property
    def task(self) -> asyncio.Task[ProbeOutcome] | None:
        """The task of the check running or last run (None before one, and on callbacks)."""
        return self._task

    def start(self, first_within: float | None = None) -> None:
        """Start the checker on the running loop (once).

        `first_within`: the first check starts at a random offset in [0, first_within) instead
        of [0, interval) (a checker whose pairs carry no weight yet); later ones keep the
        interval from there."""
        if self._started:
            return
        self._started = True
        loop = self._loop = asyncio.get_running_loop()
        interval = self.target.spec.interval
        offset = decide.first_offset(self._rng.random(), interval, first_within)
        self._next = decide.first_start(loop.time(), offset, interval, grid=self.on_callbacks)
        self._timer = loop.call_at(self._next, self._begin)

    def cancel(self) -> None:
        """Stop the checker; no result is emitted after this returns.

        A check on callbacks has ended when this returns (it is closed); a check's task ends
        soon after (`stop()` waits for it).
        """
        self._loop = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._check is not None:
            self._check.cancel()
            self._check = None
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stop the checker and wait until it has ended."""
        self.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def _begin(self) -> None:
        """Timer callback: start one check; `_end` follows when it ends."""
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        if not self.on_callbacks:
            task = self._task = loop.create_task(self._awaited(), name=f"checker {self.target}")
            task.add_done_callback(self._task_done)
            return
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
        """A check on callbacks ended (called from its loop callback)."""
        if check is not self._check:
            return  # cancelled in the meantime (not expected: cancel() silences the check)
        self._check = None
        assert self._prepared is not None
        self._end(self._prepared.outcome(check))

    async def _awaited(self) -> ProbeOutcome:
        """One awaited probe; a bug in it becomes a failed result instead of a lost check."""
        started = time.time()
        try:
            if self._prepared is not None:
                return await self._prepared.run()
            return await self._probe(self.target)
        except Exception:
            logger.exception("checker %s: check raised", self.target)
            return ProbeOutcome(False, INTERNAL_ERROR, None, started, time.time())

    def _task_done(self, task: asyncio.Task[ProbeOutcome]) -> None:
        """An awaited check ended (its task's done callback)."""
        if task is not self._task or task.cancelled() or self._loop is None:
            return  # cancelled: nothing more is reported
        self._end(task.result())

    def _end(self, outcome: ProbeOutcome) -> None:
        """Record a check's outcome, then arm the timer of the next check."""
        self._record(outcome)
        loop = self._loop
        if loop is None:
            return  # cancelled, e.g. by the sink
        gap = decide.next_gap(self.target.spec, self._counts.fails)
        self._next = decide.next_start(self._next, loop.time(), gap, grid=self.on_callbacks)
        self._timer = loop.call_at(self._next, self._begin)

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
        before = self._counts.status
        self._counts = counts = decide.count(self._counts, outcome.passed, self.target.spec)
        result = CheckResult(
            target=self.target,
            passed=outcome.passed,
            status=counts.status,
            started=outcome.started,
            ended=outcome.ended,
            cause=outcome.cause,
            changed=counts.status is not before,
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
                self._counts.status.value,
            )
