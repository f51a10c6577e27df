"""Checkers on the callback path (built-in probe, plain HTTP/TCP) against loopback (127.0.0.33-37).

The same behaviours test_checker.py pins for the task path with a fake probe: start-to-start
interval after a random offset, no overlap, a bug becomes `internal error` and the checker goes on,
a failing sink is survived, nothing is emitted after a stop, and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import itertools
import random
import socket
import time
from collections.abc import AsyncIterator
from collections.abc import Callable

import pytest

from ipvswm.checks import plain
from ipvswm.checks.checker import Checker
from ipvswm.checks.checkset import CheckSet
from ipvswm.checks.probe import PreparedCheck
from ipvswm.checks.wire import parse_status as real_parse
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget
from ipvswm.events import CheckStatus
from tests.support.checks import FailingSink
from tests.support.checks import Results
from tests.support.realservers import RealServer

pytestmark = pytest.mark.integration


class Fixed(random.Random):
    def random(self) -> float:
        return 0.5


def http(server: RealServer, interval: float, **kw: float) -> CheckTarget:
    spec = CheckSpec(CheckKind.HTTP, path="/cb", interval=interval, **kw)  # type: ignore[arg-type]
    return CheckTarget(server.address, server.port, spec)


@pytest.fixture
async def web() -> AsyncIterator[RealServer]:
    async with RealServer("127.0.0.33") as server:
        yield server


def checker_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("checker")]


async def test_a_plain_checker_runs_without_a_task_start_to_start(web: RealServer) -> None:
    await web.set_mode("slow:0.03")  # each check takes 0.03 s
    sink = Results()
    checker = Checker(http(web, 0.05), sink, rng=Fixed())
    started = time.time()
    checker.start()
    assert (checker.task, checker.running) == (None, True)
    assert checker_tasks() == []  # no task of its own
    results = await sink.wait(8)
    await checker.stop()
    assert not checker.running
    assert all(r.passed and r.status is CheckStatus.PASS for r in results)
    assert results[0].changed and not any(r.changed for r in results[1:])
    # The random offset (half the interval here), rounded up to a slot of 0.05/64 s: never
    # earlier (a late loop may only make it later).
    assert results[0].started - started >= 0.025 - 0.002
    gaps = [b.started - a.started for a, b in itertools.pairwise(results)]
    # Start to start: 0.05, not 0.05 plus the 0.03 each check took. A late start shortens the
    # next gap and lengthens none but its own, so the shortest gap is at most the interval plus
    # a lateness, and never 0.08 as after each check's end.
    assert min(gaps) < 0.07, gaps
    assert checker.checks == len(sink.items) and checker.last_result == sink.items[-1]
    assert [r.path for r in web.requests] == ["/cb"] * len(web.requests)


async def test_an_overrunning_check_never_overlaps_and_the_next_starts_right_after() -> None:
    async with RealServer("127.0.0.34", mode="slow:0.03") as slow:
        sink = Results()
        checker = Checker(http(slow, 0.01, response_timeout=2.0), sink)
        checker.start()
        await sink.wait(5)
        await checker.stop()
    starts = [r.started for r in sink.items]
    ends = [r.ended for r in sink.items]
    # Each check starts after the previous one ended, and soon after (no interval waited).
    assert all(b >= a for a, b in zip(ends, starts[1:], strict=False))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.03
    assert sum(gaps) / len(gaps) < 0.045


async def test_a_bug_in_a_check_is_an_internal_error_and_the_checker_goes_on(
    web: RealServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_new = PreparedCheck.plain_check
    calls = {"parse": 0, "new": 0}

    def parse_once_broken(head: bytes) -> int:
        calls["parse"] += 1
        if calls["parse"] == 1:
            raise RuntimeError("bug while judging")
        return real_parse(head)

    def new_broken_second_time(self: PreparedCheck, on_done: object) -> plain.PlainCheck:
        calls["new"] += 1
        if calls["new"] == 2:
            raise RuntimeError("bug while starting")
        return real_new(self, on_done)  # type: ignore[arg-type]

    monkeypatch.setattr(plain, "parse_status", parse_once_broken)
    monkeypatch.setattr(PreparedCheck, "plain_check", new_broken_second_time)
    sink = Results()
    checker = Checker(http(web, 0.01), sink)
    checker.start()
    first, second, third = await sink.wait(3)
    await checker.stop()
    assert (first.passed, first.cause, first.status) == (False, "internal error", CheckStatus.FAIL)
    assert (second.passed, second.cause) == (False, "internal error")
    assert (third.passed, third.status, third.changed) == (True, CheckStatus.PASS, True)


async def test_a_failing_sink_does_not_stop_the_checker(web: RealServer) -> None:
    sink = FailingSink()
    checker = Checker(http(web, 0.01), sink)
    checker.start()
    await asyncio.wait_for(sink.done.wait(), 5)
    await checker.stop()
    assert len(sink.seen) >= 3 and all(r.passed for r in sink.seen)


async def test_a_tcp_checker_follows_refused_and_accepting() -> None:
    async with RealServer("127.0.0.35", mode="tcp") as server:
        spec = CheckSpec(CheckKind.TCP, interval=0.01, rise=2, fall=1)
        sink = Results()
        checker = Checker(CheckTarget(server.address, server.port, spec), sink)
        checker.start()
        try:
            first = await sink.wait(2)
            assert first[-1].status is CheckStatus.PASS
            await server.set_mode("refusing")
            count = len(sink.items)
            refused = await sink.wait(count + 2)
        finally:
            await checker.stop()
    assert [r.status for r in sink.items[:2]] == [CheckStatus.UNKNOWN, CheckStatus.PASS]
    assert any(r.cause == "connect refused" for r in refused[count:])
    assert checker.status is CheckStatus.FAIL


@pytest.fixture
async def hanging() -> AsyncIterator[tuple[CheckTarget, asyncio.Event, asyncio.Event]]:
    """A server that reads and never answers; (target, connected, closed by the client)."""
    connected, closed = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        await reader.read()  # until the client goes away
        closed.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.36", 0)
    port = server.sockets[0].getsockname()[1]
    spec = CheckSpec(CheckKind.HTTP, interval=0.01, response_timeout=10.0)
    try:
        yield CheckTarget("127.0.0.36", port, spec), connected, closed
    finally:
        server.close()
        await server.wait_closed()


async def test_stop_during_a_check_closes_it_and_emits_nothing_more(
    hanging: tuple[CheckTarget, asyncio.Event, asyncio.Event],
) -> None:
    target, connected, closed = hanging
    sink = Results()
    checker = Checker(target, sink)
    checker.start()
    await asyncio.wait_for(connected.wait(), 5)
    await checker.stop()
    assert not checker.running
    await asyncio.wait_for(closed.wait(), 5)  # the check's connection was closed by the stop
    await asyncio.sleep(0.05)  # a window in which a leaked timer or check would have reported
    assert sink.items == []


async def test_close_stops_every_plain_checker_and_leaves_nothing(
    hanging: tuple[CheckTarget, asyncio.Event, asyncio.Event],
) -> None:
    target, connected, closed = hanging
    async with RealServer("127.0.0.37") as web:
        sink = Results()
        checks = CheckSet(sink)
        targets = [http(web, 0.01 + i / 1000) for i in range(20)]
        checks.update([*targets, target])
        assert all(c.task is None for c in checks.checkers())
        await sink.wait(40)
        await asyncio.wait_for(connected.wait(), 5)
        checks.update(targets[:5])  # 16 stop, one of them in a hanging check
        await asyncio.wait_for(closed.wait(), 5)  # its connection was closed by the update
        await checks.close()
        count = len(sink.items)
        assert len(checks) == 0 and checker_tasks() == []
        await asyncio.sleep(0.05)  # a window in which a leaked timer or check would have reported
        assert len(sink.items) == count
    gc.collect()  # an unclosed socket would warn here (warnings are errors)


async def test_a_check_that_ends_at_once_then_raises_is_reported_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class NoSockets:
        """The socket module, except that no socket can be made (as when out of descriptors)."""

        def __getattr__(self, name: str) -> object:
            return getattr(socket, name)

        @staticmethod
        def socket(*args: object) -> socket.socket:
            raise OSError(errno.EMFILE, "Too many open files")

    class CountingLoop:
        """The checker's loop, counting the next checks it schedules (no clock involved)."""

        def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
            self.loop = loop
            self.scheduled = 0

        def time(self) -> float:
            return self.loop.time()

        def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
            self.scheduled += 1
            return self.loop.call_at(when, callback)

    real_start = plain.PlainCheck.start
    starts: list[int] = []  # at each start: how many next checks had been scheduled
    six = asyncio.Event()
    counting: CountingLoop | None = None

    def start_then_raise(self: plain.PlainCheck) -> None:
        assert counting is not None
        starts.append(counting.scheduled)
        if len(starts) == 6:
            six.set()
        real_start(self)  # ends (and reports) before it returns: no socket
        raise RuntimeError("bug after the end")

    monkeypatch.setattr(plain, "socket", NoSockets())
    monkeypatch.setattr(plain.PlainCheck, "start", start_then_raise)
    sink = Results()
    target = CheckTarget("127.0.0.35", 9, CheckSpec(CheckKind.TCP, interval=0.01))
    checker = Checker(target, sink)
    checker.start()  # schedules the first check on the real loop
    counting = CountingLoop(asyncio.get_running_loop())
    checker._loop = counting  # type: ignore[assignment]  # counts what the checks schedule
    await asyncio.wait_for(six.wait(), 30)
    await checker.stop()
    # EMFILE gives no verdict (nothing sent); the bug after it adds no internal error.
    assert sink.items == []
    assert checker.local_errors == checker.checks == len(starts)
    # One next check per check, counted rather than timed (a second one would make the checks
    # overlap and multiply): the k-th check starts after exactly k-1 were scheduled.
    assert starts[:6] == list(range(6))
