"""The exec check: keepalived's MISC_CHECK, a program run per check (SPEC §3).

The program (`exec:/PROGRAM ARG...`) runs without a shell, with stdin, stdout and stderr on
/dev/null, in its own session (so its own process group), with a minimal environment: `PATH`,
`IPVSWM_ADDRESS` (the real server's address) and `IPVSWM_PORT` (the check's port); `%a` and `%p`
in its arguments are replaced by the same, `%%` by `%`. At the deadline (`timeout=`) the whole
process group is killed (SIGKILL) and the check fails (`exec timeout`).

Verdict: exit 0 passes; without `dynamic` any other exit fails (`exit N`, `killed by SIGTERM`).
With `dynamic=true`, keepalived's misc_dynamic: exit 0 passes at the full weight, exit 1 fails,
exit 2..255 passes with the weight percentage N-2 (so 102 is 100%, 52 is 50%, 2 is 0%), which
scales the pair's target weight like an agent's percentage (`ceil(T x p / 100)`).

At most `ExecSlots.limit` programs run at once (`Check.Exec.MaxConcurrent`): checks beyond it wait,
in order, and their deadline starts when their program starts. The director failing to start the
program (fork or exec: out of processes or memory, the program missing or not executable) gives
no verdict (`LocalError`): it says nothing of the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections import deque

from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import LocalError
from ipvswm.checks.wire import errno_name
from ipvswm.config.checkspec import substitute
from ipvswm.config.model import CheckTarget

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_MAX_CONCURRENT = 16


class ExecSlots:
    """A bound on the programs running at once, resizable (a reload may change it), FIFO."""

    def __init__(self, limit: int = DEFAULT_MAX_CONCURRENT) -> None:
        self._limit = limit
        self.running = 0
        self.peak = 0  # most programs seen running at once
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """Programs allowed at once."""
        return self._limit

    def set_limit(self, limit: int) -> None:
        """Change the bound; waiting checks start at once if it grew."""
        self._limit = max(1, limit)
        self._wake()

    async def acquire(self) -> None:
        """Wait for a slot."""
        if self.running < self._limit and not self._waiters:
            self._take()
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # the slot was handed over just before the cancel
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise

    def release(self) -> None:
        """Give a slot back."""
        self.running -= 1
        self._wake()

    def _take(self) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)

    def _wake(self) -> None:
        while self._waiters and self.running < self._limit:
            future = self._waiters.popleft()
            if not future.done():
                self._take()
                future.set_result(None)


SLOTS = ExecSlots()
"""The daemon's bound, shared by every exec checker (the daemon sets its limit from the config)."""


async def check_exec(target: CheckTarget, slots: ExecSlots = SLOTS) -> int | None:
    """Run the program once; the weight percentage it set (None: full weight) or CheckFailed."""
    spec = target.spec
    argv = [substitute(a, target.address, target.port) for a in spec.argv]
    env = {"PATH": PATH, "IPVSWM_ADDRESS": target.address, "IPVSWM_PORT": str(target.port)}
    await slots.acquire()
    try:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise LocalError(errno_name(exc), f"the director could not run {argv[0]}") from None
        try:
            async with asyncio.timeout(spec.response_timeout):
                code = await process.wait()
        except TimeoutError:
            _kill_group(process.pid)
            await process.wait()
            raise CheckFailed("exec timeout") from None
        except asyncio.CancelledError:
            _kill_group(process.pid)  # reaped by the child watcher
            raise
    finally:
        slots.release()
    return verdict(code, spec.dynamic)


def verdict(code: int, dynamic: bool) -> int | None:
    """The weight percentage of an exit status (None: full weight), or CheckFailed."""
    if code == 0:
        return None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        raise CheckFailed(f"killed by {name}")
    if dynamic and code >= 2:
        return code - 2
    raise CheckFailed(f"exit {code}")


def _kill_group(pid: int) -> None:
    """Kill the program's process group (it leads it: start_new_session), children included."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
