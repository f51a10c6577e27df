"""The set of running checkers: one per distinct check target, updated as a diff (SPEC §2.4, §3)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection

from ipvswm.checks.checker import Checker
from ipvswm.checks.checker import Sink
from ipvswm.checks.decide import FIRST_CHECKS_PER_SECOND
from ipvswm.checks.decide import FIRST_WINDOW_MIN
from ipvswm.checks.decide import first_window
from ipvswm.checks.probe import Probe
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckTarget

__all__ = ["FIRST_CHECKS_PER_SECOND", "FIRST_WINDOW_MIN", "CheckSet", "first_window"]

logger = logging.getLogger(__name__)


class CheckSet:
    """Keeps exactly one running checker per distinct `CheckTarget` it is given.

    Pairs that share a target (same address, effective port and check spec) share its checker, so
    a host on many virtual services with the same check is probed once per interval.
    """

    def __init__(
        self, sink: Sink, *, rng: random.Random | None = None, probe: Probe = probe
    ) -> None:
        self._sink = sink
        self._rng = rng if rng is not None else random.Random()
        self._probe = probe
        self._checkers: dict[CheckTarget, Checker] = {}
        self._stopping: set[asyncio.Task[ProbeOutcome]] = set()

    def update(
        self, targets: Collection[CheckTarget], first: Collection[CheckTarget] = ()
    ) -> tuple[set[CheckTarget], set[CheckTarget]]:
        """Start checkers for new targets, stop gone ones, leave the others untouched.

        New checkers of targets in `first` (their pairs carry no weight yet) run their first
        check within `first_window` rather than within an interval. Returns (added, removed).
        Must be called on the running loop.
        """
        wanted = set(targets)
        current = set(self._checkers)
        added = wanted - current
        removed = current - wanted
        for target in removed:
            checker = self._checkers.pop(target)
            checker.cancel()
            task = checker.task
            if task is not None and not task.done():
                # Kept until it has ended so that close() can await it.
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
        urgent = added.intersection(first)
        window = first_window(len(urgent))
        for target in sorted(added, key=str):
            checker = Checker(target, self._sink, rng=self._rng, probe=self._probe)
            self._checkers[target] = checker
            checker.start(window if target in urgent else None)
        if added or removed:
            logger.debug(
                "checkers: %d added, %d removed, %d running",
                len(added),
                len(removed),
                len(self._checkers),
            )
        return added, removed

    def get(self, target: CheckTarget) -> Checker | None:
        """The checker of a target, if it runs."""
        return self._checkers.get(target)

    def checkers(self) -> list[Checker]:
        """The running checkers, in a stable order (by target text)."""
        return sorted(self._checkers.values(), key=lambda c: str(c.target))

    def __len__(self) -> int:
        return len(self._checkers)

    def __contains__(self, target: object) -> bool:
        return target in self._checkers

    async def close(self) -> None:
        """Stop every checker and wait until all their tasks have ended."""
        checkers = list(self._checkers.values())
        self._checkers.clear()
        for checker in checkers:
            checker.cancel()
        tasks = [c.task for c in checkers if c.task is not None] + list(self._stopping)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopping.clear()
