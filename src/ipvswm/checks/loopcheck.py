"""What the checks on loop callbacks share: the socket address, the report, being awaited.

A check on loop callbacks (`plain.PlainCheck`, `dns.DnsCheck`) is one socket, one timer and the
loop's selector callbacks, no task. Both find their socket address once per target without a
lookup (`numeric_sockaddr`), end once by reporting to a callback (`CallbackCheck._report`), and can
be awaited as one check outside a checker (`run_once`, what `probe()` and the benches use).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from typing import Generic
from typing import Protocol
from typing import TypeVar

logger = logging.getLogger(__name__)

Sockaddr = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]
"""A socket address as getaddrinfo gives it (IPv4, IPv6)."""


class _Plan(Protocol):
    @property
    def sockaddr(self) -> Sockaddr: ...


PlanT = TypeVar("PlanT", bound=_Plan)


def numeric_sockaddr(
    address: str, port: int, kind: socket.SocketKind
) -> tuple[socket.AddressFamily, Sockaddr] | None:
    """The family and socket address of an IP literal; None if `address` is not one (no lookup)."""
    try:
        [(family, _, _, _, sockaddr)] = socket.getaddrinfo(
            address, port, type=kind, flags=socket.AI_NUMERICHOST
        )[:1]
    except (OSError, ValueError):
        return None
    return socket.AddressFamily(family), sockaddr


class CallbackCheck(Generic[PlanT]):
    """One check on loop callbacks, reporting its end once to `on_done(self)`.

    When it ends, `failure` (None: passed; a CheckFailed; or another exception: a bug), `status`
    (an HTTP status, if one was read), `started` and `ended` (wall clock) are set.
    """

    __slots__ = (
        "_loop",
        "_on_done",
        "_plan",
        "_sock",
        "_timer",
        "ended",
        "failure",
        "started",
        "status",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, plan: PlanT, on_done: Callable[[Any], object]
    ) -> None:
        self._loop = loop
        self._plan = plan
        self._on_done = on_done
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.failure: BaseException | None = None
        self.status: int | None = None
        self.started = 0.0
        self.ended = 0.0

    def _close(self) -> None:
        """Stop watching the socket, cancel the timer, close the socket (idempotent)."""
        raise NotImplementedError

    def _report(self, failure: BaseException | None) -> None:
        """End the check (the caller made sure it ends once): close it, then report it."""
        self.failure = failure
        self._close()
        self.ended = time.time()
        try:
            self._on_done(self)
        except Exception:  # not the check's failure: the caller's bug, kept out of the check
            logger.exception("check of %s: reporting failed", self._plan.sockaddr)


class _Startable(Protocol):
    failure: BaseException | None

    def start(self) -> None: ...

    def cancel(self) -> None: ...


CheckT = TypeVar("CheckT", bound=_Startable)


async def run_once(
    make: Callable[[asyncio.AbstractEventLoop, Callable[[object], None]], CheckT],
) -> CheckT:
    """Run one check made by `make(loop, on_done)` and await its end; raises its failure."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake(_: object) -> None:
        if not future.done():
            future.set_result(None)

    check = make(loop, wake)
    try:
        check.start()
        await future
    finally:
        check.cancel()
    if check.failure is not None:
        raise check.failure
    return check
