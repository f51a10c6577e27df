"""A checker: the recurring task that runs one distinct check and counts rise/fall (SPEC §3)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from ipvswm.checks.probe import PreparedCheck, Probe, ProbeOutcome, probe
from ipvswm.config.model import CheckTarget
from ipvswm.events import CheckResult, CheckStatus

logger = logging.getLogger(__name__)

Sink = Callable[[CheckResult], None]
"""Where a checker sends each result (e.g. the engine queue's `put_nowait`)."""

INTERNAL_ERROR = "internal error"

_default_probe = probe


class Checker:
    """Runs `target`'s check every interval (start to start, never overlapping) and reports.

    The first check starts after a random offset in [0, interval) so checks spread out. The
    status goes to PASS after `rise` consecutive passes and to FAIL after `fall` consecutive
    failures (from UNKNOWN too). Results are sent to the sink; logging them is the sink's job.
    """

    __slots__ = (
        "_fails",
        "_last",
        "_passes",
        "_prepared",
        "_probe",
        "_rng",
        "_sink",
        "_status",
        "_task",
        "checks",
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
        self.checks = 0  # checks run since start
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
        """Whether the checker's task is alive."""
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The checker's task (None before `start()`)."""
        return self._task

    def start(self) -> None:
        """Start the checker's task on the running loop (once)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"checker {self.target}"
            )

    def cancel(self) -> None:
        """Ask the task to stop; no result is emitted after this returns."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stop the task and wait until it has ended."""
        self.cancel()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.target.spec.interval
        next_start = loop.time() + self._rng.random() * interval
        while True:
            delay = next_start - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome = await self._check()
            self._record(outcome)
            # Start to start; after an overrun the next check starts right away, on a new grid.
            next_start = max(next_start + interval, loop.time())

    async def _check(self) -> ProbeOutcome:
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
        """Count rise/fall, keep and send the result."""
        self.checks += 1
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
        )
        self._last = result
        try:
            self._sink(result)
        except Exception:
            logger.exception("checker %s: sink failed", self.target)
