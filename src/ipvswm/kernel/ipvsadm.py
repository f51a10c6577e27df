"""The `ipvsadm` backend: one `ipvsadm -R` batch per apply; `-S -n` and `-L -n` to read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from ipvswm.kernel.backend import DEST_EXISTS
from ipvswm.kernel.backend import NO_SCHEDULER
from ipvswm.kernel.backend import NO_SUCH_DEST
from ipvswm.kernel.backend import NO_SUCH_SERVICE
from ipvswm.kernel.backend import OUT_OF_RANGE
from ipvswm.kernel.backend import SERVICE_EXISTS
from ipvswm.kernel.backend import SERVICE_NOT_DEFINED
from ipvswm.kernel.backend import ApplyResult
from ipvswm.kernel.backend import BackendError
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.backend import OpError
from ipvswm.kernel.ipvsadm_format import ParseError
from ipvswm.kernel.ipvsadm_format import merge_listing
from ipvswm.kernel.ipvsadm_format import parse_list
from ipvswm.kernel.ipvsadm_format import parse_save
from ipvswm.kernel.ipvsadm_format import render_line
from ipvswm.kernel.ipvsadm_format import validate_op
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Table

log = logging.getLogger(__name__)

NO_IPVS_MARK = "Can't initialize ipvs"

# Which ops can produce each kernel message (IPVSADM.md), to map stderr lines back to ops.
_KERNEL_MESSAGES: dict[str, tuple[type, ...]] = {
    SERVICE_EXISTS: (AddService,),
    NO_SCHEDULER: (AddService, EditService),
    NO_SUCH_SERVICE: (EditService, DeleteService),
    SERVICE_NOT_DEFINED: (AddDestination, EditDestination, DeleteDestination),
    DEST_EXISTS: (AddDestination,),
    NO_SUCH_DEST: (EditDestination, DeleteDestination),
    OUT_OF_RANGE: (AddDestination, EditDestination),
}


OPS_PER_TIMEOUT = 1000
"""A `-R` batch gets the call timeout (`IPVS.Timeout`) per this many operations started."""

MAX_BATCH_OPS = 10_000
"""A larger batch is sent as several `-R` calls of at most this many operations, in order."""


def batch_timeout(timeout: float, ops: int) -> float:
    """The bound of one `-R` call of `ops` operations: `timeout` per OPS_PER_TIMEOUT begun.

    A fixed bound killed large start-up batches on a slow ipvsadm (then retried through a
    resync, which re-sent adds already made); the call's work grows with its lines.
    """
    return timeout * max(1, -(-ops // OPS_PER_TIMEOUT))


@dataclass(frozen=True, slots=True)
class Completed:
    """A finished ipvsadm call."""

    returncode: int
    stdout: str
    stderr: str


class IpvsadmBackend:
    """Reaches the IPVS table through the ipvsadm binary, arguments as lists, never a shell."""

    name = "ipvsadm"

    def __init__(self, binary: str, timeout: float = 5.0) -> None:
        self.binary = binary
        self.timeout = timeout

    async def run(
        self, args: Sequence[str], stdin: str = "", bound: float | None = None
    ) -> Completed:
        """Run the binary once (with our own environment), killed after `bound` seconds
        (default: the backend's timeout). Raises BackendError."""
        limit = self.timeout if bound is None else bound
        argv = [self.binary, *args]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, so a hung call dies whole
            )
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise BackendError(
                FailureKind.MISSING, f"cannot run {self.binary}: {exc.strerror or exc}"
            ) from exc
        except OSError as exc:
            raise BackendError(FailureKind.OTHER, f"cannot run {self.binary}: {exc}") from exc
        try:
            async with asyncio.timeout(limit):
                out, err = await proc.communicate(stdin.encode())
        except TimeoutError:
            _kill_group(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.communicate()
            raise BackendError(
                FailureKind.TIMEOUT, f"{self.binary} {args[0]} hung; killed after {limit:g}s"
            ) from None
        assert proc.returncode is not None
        result = Completed(
            proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if NO_IPVS_MARK in result.stderr:
            raise BackendError(FailureKind.NO_IPVS, result.stderr.strip().replace("\n", " "))
        return result

    async def read(self) -> Table:
        """The whole table: structure and weights from `-S -n`, thresholds and counts from `-L`."""
        save = await self.run(["-S", "-n"])
        if save.returncode != 0:
            raise BackendError(FailureKind.OTHER, f"ipvsadm -S -n: {_describe(save)}")
        # -S does not show -x/-y; the thresholds view shows them and the connection counts.
        listing = await self.run(["-L", "-n", "--thresholds"])
        if listing.returncode != 0:
            raise BackendError(FailureKind.OTHER, f"ipvsadm -L -n: {_describe(listing)}")
        try:
            # In a thread: a large table takes a second or more to parse, the loop must go on.
            table = await asyncio.to_thread(_parse_read, save.stdout, listing.stdout)
        except ParseError as exc:
            raise BackendError(FailureKind.OTHER, f"cannot parse ipvsadm output: {exc}") from exc
        log.debug("ipvsadm: read %d service(s)", len(table.services))
        return table

    async def apply(self, ops: Sequence[Op]) -> ApplyResult:
        """Apply ops in one `ipvsadm -R` batch; report each refused op."""
        if not ops:
            return ApplyResult(0)
        errors: list[OpError] = []
        sent: list[Op] = []
        for op in ops:
            problem = validate_op(op)
            if problem is None:
                sent.append(op)
            else:  # never sent: it would abort the whole batch
                log.warning("ipvsadm: not sending %s: %s", render_line(op), problem)
                errors.append(OpError(op, FailureKind.ARGUMENT, problem))
        for start in range(0, len(sent), MAX_BATCH_OPS):
            errors += await self._restore(sent[start : start + MAX_BATCH_OPS])
        return ApplyResult(len(ops), tuple(errors))

    async def _restore(self, ops: Sequence[Op]) -> list[OpError]:
        """One `ipvsadm -R` call of these ops, bounded by `batch_timeout`."""
        lines = [render_line(op) for op in ops]
        for line in lines:
            log.debug("ipvsadm -R: %s", line)
        stdin = "".join(line + "\n" for line in lines)
        result = await self.run(["-R"], stdin, batch_timeout(self.timeout, len(lines)))
        log.debug(
            "ipvsadm -R: exit %d, stdout %r, stderr %r",
            result.returncode,
            result.stdout,
            result.stderr,
        )
        return interpret_batch(ops, result.returncode, result.stderr)


def interpret_batch(ops: Sequence[Op], returncode: int, stderr: str) -> list[OpError]:
    """Map the stderr lines of an `ipvsadm -R` run back to the ops that caused them.

    Kernel messages are matched, in order, to the next op that can produce that message. An
    argument error (exit 2) aborted the batch: the ops after the last matched one are reported as
    not known to be applied.
    """
    messages = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors: list[OpError] = []
    cursor = 0
    for message in messages:
        kinds = _KERNEL_MESSAGES.get(message)
        if kinds is None:
            continue
        index = next((i for i in range(cursor, len(ops)) if isinstance(ops[i], kinds)), None)
        if index is None:
            errors.append(OpError(None, FailureKind.KERNEL, message))
            continue
        errors.append(OpError(ops[index], FailureKind.KERNEL, message))
        cursor = index + 1
    other = [m for m in messages if m not in _KERNEL_MESSAGES]
    if returncode == 2 or (other and returncode != 0):
        reason = "; ".join(other) or f"exit {returncode}"
        kind = FailureKind.ARGUMENT if returncode == 2 else FailureKind.OTHER
        errors.append(OpError(None, kind, f"batch aborted: {reason}"))
        errors += [
            OpError(op, kind, f"not known to be applied (batch aborted: {reason})")
            for op in ops[cursor:]
        ]
    elif returncode != 0 and not errors:
        errors.append(OpError(ops[-1], FailureKind.KERNEL, f"exit {returncode}"))
    return errors


def _describe(result: Completed) -> str:
    return f"exit {result.returncode}: {result.stderr.strip() or result.stdout.strip()}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _parse_read(save: str, listing: str) -> Table:
    """The table from `-S -n` and `-L -n --thresholds` output."""
    return merge_listing(parse_save(save), parse_list(listing))
