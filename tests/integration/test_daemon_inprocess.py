"""The daemon run in-process on the dry-run backend: its owner loop's behaviour on failures.

Real servers on 127.0.0.110-127.0.0.114; the VS address (192.0.2.0/24) only exists in memory.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import time
from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path

import pytest

from ipvswm.answers import Answer
from ipvswm.answers import Applied
from ipvswm.answers import Refused
from ipvswm.config.parser import parse_file
from ipvswm.daemon.daemon import Daemon
from ipvswm.daemon.requests import AdminRequest
from ipvswm.daemon.requests import ResyncRequest
from ipvswm.daemon.runtime import raise_fd_limit
from ipvswm.engine.state import HostState
from ipvswm.engine.state import Phase
from ipvswm.events import CheckResult
from ipvswm.events import CheckStatus
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOff
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey
from tests.support.realservers import RealServer

pytestmark = pytest.mark.integration

VS = ServiceKey(Protocol.TCP, "192.0.2.50", 80)


async def wait_for(daemon: Daemon, predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait, step by step of the daemon's owner loop, until the predicate holds."""
    async with asyncio.timeout(limit):
        while not predicate():
            await daemon.changed.wait()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Daemon, RealServer]]:
    server = RealServer("127.0.0.110")
    await server.start()
    conf = tmp_path / "ipvswm.conf"
    conf.write_text(
        "IPVS.Backend=dry-run\n"
        "Management.Socket.Port=0\n"
        f"Management.Socket.Path={tmp_path / 'sock'}\n"
        "Management.Fifo.Path=\n"
        f"Log.Path={tmp_path / 'log'}\n"
        f"DB={tmp_path / 'db'}\n"
        "Check.Interval=0.1\n"
        "IPVS.ResyncPeriod=1\n"
        "Config.AutoCheck=0\n"
        "! www 192.0.2.50:80 /health\n"
        f"web1 127.0.0.110:{server.port} www=10\n"
    )
    result = parse_file(str(conf))
    assert result.config is not None, result.errors
    daemon = Daemon(str(conf), result.config)
    task = asyncio.create_task(daemon.run())
    dest = DestKey("127.0.0.110", server.port)

    def weight() -> int | None:
        found = daemon.kernel_table().destination(VS, dest)
        return None if found is None else found.weight

    await wait_for(daemon, lambda: weight() == 10)
    try:
        yield daemon, server
    finally:
        daemon.stop("test")
        assert await asyncio.wait_for(task, 10) == 0
        await server.stop()


def kernel_weight(daemon: Daemon, server: RealServer) -> int | None:
    found = daemon.kernel_table().destination(VS, DestKey(server.address, server.port))
    return None if found is None else found.weight


async def test_an_engine_bug_is_answered_and_the_daemon_goes_on(
    running: tuple[Daemon, RealServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, server = running
    assert daemon.engine is not None
    real_plan = daemon.engine.plan  # where an admin command enters the engine

    def broken(event: object, now: float) -> object:
        if isinstance(event, SetOverride):
            raise RuntimeError("planted bug")
        return real_plan(event, now)  # type: ignore[arg-type]

    monkeypatch.setattr(daemon.engine, "plan", broken)
    assert await daemon.inbox.submit(SetOverride("web1", 3)) == Refused("internal error (logged)")
    # the owner loop is alive: later commands and check results still work
    assert await daemon.inbox.submit(SetHostOff("web1")) == Applied()
    await wait_for(daemon, lambda: kernel_weight(daemon, server) == 0)
    assert await daemon.inbox.submit(SetHostOn("web1")) == Applied()
    await wait_for(daemon, lambda: kernel_weight(daemon, server) == 10)


async def test_a_failing_kernel_apply_is_logged_and_retried(
    running: tuple[Daemon, RealServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, server = running
    assert daemon.sync is not None
    backend = daemon.sync.backend
    real_apply = backend.apply
    calls = 0

    async def flaky(ops: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("planted backend bug")
        return await real_apply(ops)  # type: ignore[arg-type]

    monkeypatch.setattr(backend, "apply", flaky)
    await server.set_mode("failing")
    # the first apply blows up; a later step or the resync brings the kernel to weight 0
    await wait_for(daemon, lambda: kernel_weight(daemon, server) == 0, limit=20)
    assert calls >= 2


async def test_a_failed_read_at_resync_time_still_applies_the_steps_changes(
    running: tuple[Daemon, RealServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, server = running
    assert daemon.sync is not None and daemon.checks is not None

    async def unreadable() -> object:
        raise BackendError(FailureKind.TIMEOUT, "ipvsadm -S hung; killed")

    monkeypatch.setattr(daemon.sync.backend, "read", unreadable)
    await server.set_mode("failing")
    target = next(iter(daemon.config.check_targets()))
    now = time.time()
    # one batch: a resync (whose read fails) and the failure that must still reach the kernel
    daemon.queue.put_nowait(ResyncRequest())
    daemon.queue.put_nowait(
        CheckResult(target, False, CheckStatus.FAIL, now, now, "status 500", changed=True)
    )
    await wait_for(daemon, lambda: kernel_weight(daemon, server) == 0, limit=5)


async def test_an_admin_command_that_cannot_be_committed_is_refused_and_undone(
    running: tuple[Daemon, RealServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon, server = running
    assert daemon.store is not None

    def disk_full(changes: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(daemon.store, "save", disk_full)
    await server.set_mode("failing")
    target = next(iter(daemon.config.check_targets()))
    now = time.time()
    reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
    # one batch: web1's check failure, then a command that cannot be committed
    daemon.queue.put_nowait(
        CheckResult(target, False, CheckStatus.FAIL, now, now, "status 500", changed=True)
    )
    daemon.queue.put_nowait(AdminRequest(SetHostOff("web1", frozenset({"maint"})), reply))
    batch_done = daemon.changed
    answer = await reply
    assert isinstance(answer, Refused) and answer.reason.startswith("state could not be saved")
    assert daemon.engine_snapshot().hosts.get("web1", HostState()).reasons == frozenset()
    # the command is undone, the check result is not: web1 loses its weight in that very batch
    await asyncio.wait_for(batch_done.wait(), 5)
    assert kernel_weight(daemon, server) == 0
    assert daemon.engine_snapshot().pairs[("www", "web1")].phase is Phase.AWAIT_PASS


async def test_an_on_that_changes_nothing_says_so(running: tuple[Daemon, RealServer]) -> None:
    daemon, _ = running
    answer = await daemon.inbox.submit(SetHostOn("web1"))
    assert answer == Applied("nothing to do")


async def test_an_admin_command_and_a_check_in_one_batch_are_both_stored(
    running: tuple[Daemon, RealServer],
) -> None:
    daemon, server = running
    assert daemon.store is not None
    target = next(iter(daemon.config.check_targets()))
    now = time.time()
    await server.set_mode("failing")
    reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
    # one batch: the check's change first, then the command's (same pair)
    daemon.queue.put_nowait(
        CheckResult(target, False, CheckStatus.FAIL, now, now, "status 500", changed=True)
    )
    daemon.queue.put_nowait(
        AdminRequest(SetPairsOff("web1", ("www",), frozenset({"maint"})), reply)
    )
    assert await reply == Applied()
    await wait_for(daemon, lambda: kernel_weight(daemon, server) == 0)
    stored = (await daemon.store.load()).pairs[("www", "web1")]
    assert stored.reasons == frozenset({"maint"})  # not overwritten by the check's older record


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no finite hard limit to raise to")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
        raise_fd_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_a_reload_that_raises_is_logged_at_error_whatever_the_trigger(
    running: tuple[Daemon, RealServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 10 item 5: not only asyncio's "Task exception was never retrieved" on stderr."""
    daemon, _ = running

    def broken(data: bytes, path: str) -> object:
        raise RuntimeError("parser bug")

    monkeypatch.setattr("ipvswm.daemon.reload.parse_bytes", broken)
    log_path = tmp_path / "log"
    offset = log_path.stat().st_size
    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(1000):  # the log line is the only sign of the SIGHUP's task ending
        if "config reload (SIGHUP) failed" in log_path.read_text()[offset:]:
            break
        await asyncio.sleep(0.02)
    text = log_path.read_text()[offset:]
    assert "ERROR: config reload (SIGHUP) failed unexpectedly" in text
    assert "RuntimeError: parser bug" in text  # with its traceback
    outcome = await daemon.control.reload()  # the console's trigger answers instead of raising
    assert not outcome.ok and outcome.errors == ("# internal error (logged)",)
    assert "ERROR: config reload (console) failed unexpectedly" in log_path.read_text()[offset:]
