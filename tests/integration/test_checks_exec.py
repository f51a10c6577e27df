"""exec: checks with real programs: verdicts, environment, the deadline, the concurrency bound."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from ipvswm.checks import execcheck
from ipvswm.checks.execcheck import ExecSlots
from ipvswm.checks.execcheck import check_exec
from ipvswm.checks.probe import probe
from ipvswm.config.model import CheckTarget
from ipvswm.config.parser import parse_text

pytestmark = pytest.mark.integration


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def target(check: str, address: str = "127.0.0.60", port: int = 8080) -> CheckTarget:
    host = f"[{address}]" if ":" in address else address
    vs = "[2001:db8::1]" if ":" in address else "192.0.2.1"
    text = f"! x {vs}:80 {check}\nh {host}:{port} x=10\n"
    result = parse_text(text, "exec.conf", lambda _: [])
    assert result.errors == (), result.errors
    assert result.config is not None
    [found] = result.config.check_targets()
    return found


async def test_arguments_environment_and_exit_zero(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    prog = script(
        tmp_path,
        "record",
        f'printf "%s|" "$@" > {out}; printf "%s %s %s" "$IPVSWM_ADDRESS" "$IPVSWM_PORT" '
        f'"$(env | wc -l)" >> {out}\n',
    )
    outcome = await probe(target(f"exec:{prog} --to=%a:%p two%20words 100%25 %% rise%3D3 rise=2"))
    assert (outcome.passed, outcome.cause, outcome.weight_pct) == (True, "", None)
    args, env = out.read_text().split("|")[:-1], out.read_text().split("|")[-1]
    assert args == ["--to=127.0.0.60:8080", "two words", "100%", "%", "rise=3"]
    assert env.split()[:2] == ["127.0.0.60", "8080"]
    # No shell: the environment is PATH, the two variables and what sh itself sets (PWD).
    assert int(env.split()[2]) <= 4


async def test_ipv6_address_is_substituted_bare(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    prog = script(tmp_path, "record", f'echo "$1" > {out}\n')
    assert (await probe(target(f"exec:{prog} %a", "::1", 53))).passed
    assert out.read_text() == "::1\n"


@pytest.mark.parametrize(
    ("code", "dynamic", "passed", "cause", "pct"),
    [
        (1, False, False, "exit 1", None),
        (52, False, False, "exit 52", None),
        (0, True, True, "", None),
        (1, True, False, "exit 1", None),
        (2, True, True, "", 0),
        (52, True, True, "", 50),
        (102, True, True, "", 100),
        (255, True, True, "", 253),
    ],
)
async def test_exit_status_verdicts(
    tmp_path: Path, code: int, dynamic: bool, passed: bool, cause: str, pct: int | None
) -> None:
    prog = script(tmp_path, "exit", f"exit {code}\n")
    check = f"exec:{prog}" + (" dynamic=true" if dynamic else "")
    outcome = await probe(target(check))
    assert (outcome.passed, outcome.cause, outcome.weight_pct) == (passed, cause, pct)


async def test_killed_by_a_signal_fails(tmp_path: Path) -> None:
    prog = script(tmp_path, "killself", "kill -TERM $$\n")
    outcome = await probe(target(f"exec:{prog}"))
    assert (outcome.passed, outcome.cause) == (False, "killed by SIGTERM")


async def until(predicate: Callable[[], bool], seconds: float = 30) -> None:
    """Poll a cheap predicate until it holds (readiness, not a time budget)."""
    async with asyncio.timeout(seconds):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def gone(pid: int) -> bool:
    """Whether a process is gone (or a zombie nobody has reaped yet: it runs no more)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


async def test_the_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    prog = script(tmp_path, "hang", f"sleep 300 &\necho $$ $! > {pids}\nwait\n")
    outcome = await probe(target(f"exec:{prog} timeout=0.5"))
    assert (outcome.passed, outcome.cause, outcome.local_error) == (False, "exec timeout", False)
    leader, child = map(int, pids.read_text().split())
    # SIGKILL is delivered at once; the bound is generous for a loaded machine.
    await until(lambda: gone(leader) and gone(child))


async def test_a_program_that_cannot_start_gives_no_verdict(tmp_path: Path) -> None:
    outcome = await probe(target(f"exec:{tmp_path}/missing"))
    assert (outcome.passed, outcome.local_error) == (False, True)
    assert outcome.cause.startswith("ENOENT (the director could not run ")
    not_executable = tmp_path / "plain"
    not_executable.write_text("exit 0\n")
    outcome = await probe(target(f"exec:{not_executable}"))
    assert (outcome.local_error, outcome.cause.split()[0]) == (True, "EACCES")


async def test_concurrency_is_bounded(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    started = tmp_path / "started"
    started.mkdir()
    prog = script(
        tmp_path, "gated", f"touch {started}/$$\nwhile [ ! -e {gate} ]; do sleep 0.01; done\n"
    )
    slots = ExecSlots(2)
    spec_target = target(f"exec:{prog} timeout=60")
    checks = [asyncio.create_task(check_exec(spec_target, slots)) for _ in range(5)]
    await until(lambda: len(list(started.iterdir())) >= 2)
    # Two run, three wait for a slot: none of them has been forked.
    assert (slots.running, len(slots._waiters)) == (2, 3)
    assert len(list(started.iterdir())) == 2
    slots.set_limit(3)  # a reload raising the bound lets one more start
    await until(lambda: len(list(started.iterdir())) >= 3)
    assert slots.running == 3
    gate.touch()
    assert await asyncio.gather(*checks) == [None] * 5
    assert (slots.running, slots.peak) == (0, 3)


async def test_a_cancelled_wait_gives_its_place_back() -> None:
    slots = ExecSlots(1)
    await slots.acquire()
    waiter = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    assert (slots.running, len(slots._waiters)) == (0, 0)


def test_the_daemon_bound_defaults_to_sixteen() -> None:
    assert execcheck.SLOTS.limit == execcheck.DEFAULT_MAX_CONCURRENT == 16
    assert os.path.isabs(execcheck.PATH.split(":")[0])
