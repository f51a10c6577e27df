"""CheckSet: one checker per distinct target, updates as a diff, close() leaves nothing behind."""

from __future__ import annotations

import asyncio
import time

from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.probe import ProbeOutcome
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import VirtualService
from ipvswm.events import CheckResult
from tests.support.virtualtime import run_virtual


async def instant(target: CheckTarget) -> ProbeOutcome:
    now = time.time()
    return ProbeOutcome(True, "", 200, now, now)


def tcp(address: str, interval: float = 0.01) -> CheckTarget:
    return CheckTarget(address, 80, CheckSpec(CheckKind.TCP, interval=interval))


class Counting:
    """A sink counting results per target, awaitable."""

    def __init__(self) -> None:
        self.by_target: dict[CheckTarget, int] = {}
        self._event = asyncio.Event()

    def __call__(self, result: CheckResult) -> None:
        self.by_target[result.target] = self.by_target.get(result.target, 0) + 1
        self._event.set()

    async def wait(self, target: CheckTarget, n: int) -> None:
        async with asyncio.timeout(5):
            while self.by_target.get(target, 0) < n:
                self._event.clear()
                await self._event.wait()


def other_tasks() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_shared_check_of_two_virtual_services_is_one_checker() -> None:
    spec = CheckSpec(CheckKind.HTTP, url_host="www.example.test", path="/health")
    config = Config(
        services=(
            VirtualService("a", "192.0.2.1", 80, 8080, spec),
            VirtualService("b", "192.0.2.2", 80, 8080, spec),
        ),
        hosts=(Host("web1", "192.0.2.11", weights=(("a", 1), ("b", 5))),),
    )
    checks = CheckSet(Counting(), probe=instant)
    added, removed = checks.update(config.check_targets())
    try:
        assert len(checks) == 1 and removed == set()
        [target] = added
        assert (target.address, target.port) == ("192.0.2.11", 8080)
    finally:
        await checks.close()


async def test_update_is_a_diff_that_leaves_unchanged_checkers_alone() -> None:
    sink = Counting()
    checks = CheckSet(sink, probe=instant)
    a, b, c = tcp("192.0.2.1"), tcp("192.0.2.2"), tcp("192.0.2.3")
    assert checks.update([a, b, a]) == ({a, b}, set())
    await sink.wait(a, 3)
    await sink.wait(b, 3)
    checker_a = checks.get(a)
    assert checker_a is not None
    last_a, count_a = checker_a.last_result, checker_a.checks
    task_b = checks.get(b).task  # type: ignore[union-attr]

    assert checks.update([a, c]) == ({c}, {b})
    assert checks.get(a) is checker_a
    assert checker_a.last_result is last_a and checker_a.checks == count_a
    assert checks.get(b) is None and b not in checks and c in checks
    await sink.wait(c, 2)
    assert task_b is not None and task_b.done()
    assert checker_a.checks > count_a  # it kept running on its own schedule
    # The same targets again: nothing happens.
    assert checks.update([c, a]) == (set(), set())
    assert [ch.target for ch in checks.checkers()] == [a, c]
    await checks.close()


async def test_a_changed_spec_is_a_new_checker() -> None:
    checks = CheckSet(Counting(), probe=instant)
    old, new = tcp("192.0.2.1", interval=0.01), tcp("192.0.2.1", interval=0.02)
    checks.update([old])
    assert checks.update([new]) == ({new}, {old})
    await checks.close()


def test_close_cancels_every_checker_and_leaves_no_task() -> None:
    async def slow(target: CheckTarget) -> ProbeOutcome:
        await asyncio.sleep(10)  # a check in progress that close() must interrupt
        raise AssertionError("not reached")

    async def main() -> None:
        before = other_tasks()
        checks = CheckSet(Counting(), probe=slow)
        checks.update([tcp(f"192.0.2.{i}", interval=0.001) for i in range(1, 50)])
        checks.update([tcp(f"192.0.2.{i}", interval=0.001) for i in range(1, 10)])  # 40 stopping
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.05)  # virtual time: every checker is in its check by then
        assert all(c.task is not None and not c.task.done() for c in checks.checkers())
        started = loop.time()
        await checks.close()
        assert loop.time() - started < 1  # interrupted, not the 10 s checks
        assert len(checks) == 0
        assert other_tasks() == before

    run_virtual(main())
