"""One check of one real server: an HTTP(S) GET or a TCP connect, and its outcome (SPEC §3).

Every check opens a fresh connection (`Connection: close`), has a connect timeout, then ONE
deadline for the whole response (TLS handshake, status line, headers and the capped body drain),
never a per-read timeout. Plain HTTP and TCP run on a bare non-blocking socket (`plain.py`, the
cheapest in CPU per check, see bench/checks.py); HTTPS on an asyncio transport (`transport.py`),
where the TLS cost dominates anyway.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass

from ipvswm.checks.dns import DnsCheck
from ipvswm.checks.dns import DnsPlan
from ipvswm.checks.dns import check_dns
from ipvswm.checks.execcheck import check_exec
from ipvswm.checks.plain import PlainCheck
from ipvswm.checks.plain import SocketPlan
from ipvswm.checks.plain import check_plain
from ipvswm.checks.transport import check_transport
from ipvswm.checks.wire import BODY_CAP
from ipvswm.checks.wire import HEAD_LIMIT
from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import LocalError
from ipvswm.checks.wire import request_bytes
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckTarget

__all__ = ["BODY_CAP", "HEAD_LIMIT", "PreparedCheck", "Probe", "ProbeOutcome", "probe"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """What one check found: pass or fail, a short cause, the HTTP status, wall-clock times.

    With `local_error` the check could not be made on the director (e.g. out of file descriptors):
    no verdict on the server; `cause` says why, e.g. `EMFILE (the director is out of ...)`.
    """

    passed: bool
    cause: str  # "" on pass
    status: int | None  # the HTTP status when one was read
    started: float  # time.time() when the check began
    ended: float
    local_error: bool = False
    weight_pct: int | None = None  # a weight percentage the check set (exec: with dynamic)


Probe = Callable[[CheckTarget], Awaitable[ProbeOutcome]]
"""A check function: what a checker runs (`probe`, or a fake in tests)."""

LoopCheck = PlainCheck | DnsCheck
"""A check on loop callbacks: start(), cancel(), then failure, status, started, ended."""


class PreparedCheck:
    """The checks of one target, with what they all reuse (request bytes, socket address) made once.

    A checker keeps one and, per check, either awaits `run()` or, on the socket path (`plain`),
    starts a `plain_check()` and reads its end with `outcome()`; `probe()` makes one per call.
    """

    __slots__ = ("_dns", "_plan", "_request", "_verify_context", "target")

    def __init__(self, target: CheckTarget, verify_context: ssl.SSLContext | None = None) -> None:
        self.target = target
        self._verify_context = verify_context
        self._request = request_bytes(target)
        # HTTPS, and an address that is not an IP literal (never in a resolved config), take the
        # transport path.
        kind = target.spec.kind
        self._dns = DnsPlan.for_target(target) if kind is CheckKind.DNS else None
        self._plan = (
            None
            if kind in (CheckKind.HTTPS, CheckKind.DNS, CheckKind.EXEC)
            else SocketPlan.for_target(target, self._request)
        )

    @property
    def plain(self) -> bool:
        """Whether checks run on loop callbacks alone (plain HTTP, TCP or DNS to an IP literal)."""
        return self._plan is not None or self._dns is not None

    def plain_check(self, on_done: Callable[[LoopCheck], object]) -> LoopCheck:
        """A new check on the socket path, not started yet (only when `plain`)."""
        loop = asyncio.get_running_loop()
        if self._dns is not None:
            return DnsCheck(loop, self._dns, on_done)
        if self._plan is None:
            raise ValueError(f"{self.target}: not a socket-path check")
        return PlainCheck(loop, self._plan, on_done)

    def outcome(self, check: LoopCheck) -> ProbeOutcome:
        """The outcome of an ended plain check (a bug in it is an `internal error`, logged)."""
        failure = check.failure
        if failure is None:
            return ProbeOutcome(True, "", check.status, check.started, check.ended)
        if isinstance(failure, CheckFailed):
            local = isinstance(failure, LocalError)
            return ProbeOutcome(
                False, failure.cause, failure.status, check.started, check.ended, local
            )
        logger.error("check %s: unexpected error", self.target, exc_info=failure)
        return ProbeOutcome(False, "internal error", None, check.started, check.ended)

    async def run(self) -> ProbeOutcome:
        """Run one check; never raises (except cancellation)."""
        started = time.time()
        try:
            if self.target.spec.kind is CheckKind.EXEC:
                pct = await check_exec(self.target)
                return ProbeOutcome(True, "", None, started, time.time(), weight_pct=pct)
            if self._dns is not None:
                await check_dns(self._dns)
                status = None
            elif self._plan is not None:
                status = await check_plain(self._plan)
            else:
                status = await check_transport(self.target, self._request, self._verify_context)
        except CheckFailed as failed:
            local = isinstance(failed, LocalError)
            return ProbeOutcome(False, failed.cause, failed.status, started, time.time(), local)
        except Exception:
            logger.exception("check %s: unexpected error", self.target)
            return ProbeOutcome(False, "internal error", None, started, time.time())
        return ProbeOutcome(True, "", status, started, time.time())


async def probe(
    target: CheckTarget, *, verify_context: ssl.SSLContext | None = None
) -> ProbeOutcome:
    """Run one check of `target`; never raises (except cancellation).

    `verify_context` replaces the system-CA context of `verify=true` HTTPS checks (e.g. to trust a
    private CA); checks without `verify` never verify.
    """
    return await PreparedCheck(target, verify_context).run()
