"""The dns check: one UDP query to the real server, judged by rcode and answers (SPEC §3).

The message is dnspython's (`dns.message`: the query is made once per target, each check only
sets a fresh ID; the reply is parsed with `from_wire`). The I/O is the project's own: one
connected non-blocking UDP socket per check, one reader callback and one timer on the loop, as
plain checks do (`plain.py`). A connected socket only receives the server's datagrams and turns
an ICMP port unreachable into ECONNREFUSED. Measured (bench/checks_kinds.py, 2 cores, load 7-9):
1805-2150 checks per CPU-second on this path against 892-1135 through `dns.asyncquery.udp` (a
datagram transport, a task and a future per query), 1.6-2.4x, so the own path is kept.

A check passes when, within the response deadline (`timeout=`), the reply (matching ID and
question, QR set) has an rcode in `expect=` (default NOERROR) and, for NOERROR, at least one
answer record. Causes: `response timeout`, `port unreachable`, `bad response`, `rcode NXDOMAIN`
(etc.), `no answer`. There is no connect phase and no retry in a check (`fall=` counts misses).
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from ipvswm.checks.loopcheck import CallbackCheck
from ipvswm.checks.loopcheck import Sockaddr
from ipvswm.checks.loopcheck import numeric_sockaddr
from ipvswm.checks.loopcheck import run_once
from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import connect_failure
from ipvswm.checks.wire import io_failure
from ipvswm.config.model import CheckTarget

_DGRAM_NONBLOCK = socket.SOCK_DGRAM | socket.SOCK_NONBLOCK
_READ = 65535
_ids = random.SystemRandom()  # a query ID an off-path spoofer cannot predict


@dataclass(frozen=True, slots=True)
class DnsPlan:
    """What every dns check of one target reuses: where to send, the query, what passes."""

    family: socket.AddressFamily
    sockaddr: Sockaddr
    query: dns.message.Message
    wire: bytes  # the query's wire form; each check replaces its first two bytes (the ID)
    rcodes: frozenset[int]
    timeout: float

    @classmethod
    def for_target(cls, target: CheckTarget) -> DnsPlan | None:
        """The plan for an IP-literal target; None if the address is not one (no lookup made)."""
        where = numeric_sockaddr(target.address, target.port, socket.SOCK_DGRAM)
        if where is None:
            return None
        spec = target.spec
        query = dns.message.make_query(spec.url_host or ".", dns.rdatatype.from_text(spec.dns_type))
        rcodes = frozenset(dns.rcode.from_text(r) for r in spec.dns_rcodes)
        return cls(*where, query, query.to_wire(), rcodes, spec.response_timeout)


async def check_dns(plan: DnsPlan) -> None:
    """Run one check; raises CheckFailed with the cause."""
    await run_once(lambda loop, on_done: DnsCheck(loop, plan, on_done))


class DnsCheck(CallbackCheck[DnsPlan]):
    """One dns check on the loop's callbacks (the interface of `plain.PlainCheck`)."""

    __slots__ = ("_done", "_id", "_watching")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        plan: DnsPlan,
        on_done: Callable[[DnsCheck], object],
    ) -> None:
        super().__init__(loop, plan, on_done)  # status stays None: no HTTP status
        self._watching = False
        self._done = False
        self._id = 0

    def start(self) -> None:
        """Send the query (`on_done` may be called before this returns)."""
        loop, plan = self._loop, self._plan
        self.started = time.time()
        self._timer = loop.call_at(loop.time() + plan.timeout, self._on_timer)
        self._id = _ids.getrandbits(16)
        try:
            sock = self._sock = socket.socket(plan.family, _DGRAM_NONBLOCK)
            sock.connect(plan.sockaddr)
            sock.send(self._id.to_bytes(2, "big") + plan.wire[2:])
        except OSError as exc:  # e.g. out of file descriptors: no verdict
            self._finish(connect_failure(exc))
            return
        loop.add_reader(sock.fileno(), self._on_readable)
        self._watching = True

    def cancel(self) -> None:
        """End the check now without reporting (idempotent)."""
        self._done = True
        self._close()

    def _on_readable(self) -> None:
        assert self._sock is not None
        try:
            data = self._sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionRefusedError:
            self._finish(CheckFailed("port unreachable"))
            return
        except OSError as exc:
            self._finish(io_failure(exc))
            return
        try:
            self._finish(self._judge(data))
        except Exception as exc:  # a bug: reported as an internal error
            self._finish(exc)

    def _judge(self, data: bytes) -> CheckFailed | None:
        plan = self._plan
        try:
            reply = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return CheckFailed("bad response")
        if (
            reply.id != self._id
            or not reply.flags & dns.flags.QR
            or reply.question != plan.query.question
        ):
            return CheckFailed("bad response")
        rcode = reply.rcode()
        if rcode not in plan.rcodes:
            return CheckFailed(f"rcode {dns.rcode.to_text(rcode)}")
        if rcode == dns.rcode.NOERROR and not reply.answer:
            return CheckFailed("no answer")
        return None

    def _on_timer(self) -> None:
        self._timer = None
        self._finish(CheckFailed("response timeout"))

    def _finish(self, failure: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        self._report(failure)

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is not None:
            if self._watching:
                self._loop.remove_reader(self._sock.fileno())
                self._watching = False
            self._sock.close()
            self._sock = None
