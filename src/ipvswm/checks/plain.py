"""Plain HTTP and TCP checks on a bare non-blocking socket, driven by selector callbacks (SPEC §3).

Why not `loop.create_connection`: per check it costs a transport and a protocol, the getaddrinfo
path and socket-enum conversions, a selector register per phase and ~13 loop handles. Here a check
is one socket, one timer and one writer then one reader callback; the socket address and the
request bytes are computed once per target (`SocketPlan`). A `PlainCheck` reports its end to a
callback, so a checker can run it without a task (`check_plain` awaits it through a future).
Semantics are those of the transport path: a fresh connection, a connect timeout, then ONE
deadline for the whole response (status line, headers, capped body drain), and a normal close
(the kernel resets the connection by itself only when unread body is left, as with a transport).
"""

from __future__ import annotations

import asyncio
import enum
import errno
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ipvswm.checks.loopcheck import CallbackCheck
from ipvswm.checks.loopcheck import Sockaddr
from ipvswm.checks.loopcheck import numeric_sockaddr
from ipvswm.checks.loopcheck import run_once
from ipvswm.checks.wire import HEAD_END
from ipvswm.checks.wire import HEAD_LIMIT
from ipvswm.checks.wire import CheckFailed
from ipvswm.checks.wire import body_length
from ipvswm.checks.wire import body_want
from ipvswm.checks.wire import connect_failure
from ipvswm.checks.wire import io_failure
from ipvswm.checks.wire import parse_status
from ipvswm.checks.wire import send_bytes
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import CheckTarget

_HEAD_READ = 16 * 1024
_IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EINTR})
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # Linux (IPVS is Linux only)
# Body bytes are dropped: every check may read them into this one buffer, even from other
# threads, since its contents are never looked at.
_SCRATCH = memoryview(bytearray(64 * 1024))


@dataclass(frozen=True, slots=True)
class SocketPlan:
    """What every plain check of one target reuses: where to connect and what to send."""

    family: socket.AddressFamily
    sockaddr: Sockaddr
    request: bytes | None  # None: nothing to send (a TCP check without `send=`)
    spec: CheckSpec
    banner: bytes | None = None  # TCP: the prefix the first bytes read must start with
    body: bytes | None = None  # HTTP: text the body must contain (read up to the cap)

    @classmethod
    def for_target(cls, target: CheckTarget, request: bytes | None) -> SocketPlan | None:
        """The plan for an IP-literal target; None if the address is not one (no lookup made)."""
        where = numeric_sockaddr(target.address, target.port, socket.SOCK_STREAM)
        if where is None:
            return None
        spec = target.spec
        banner = body = None
        if spec.kind is CheckKind.TCP:
            request = send_bytes(target)
            banner = None if spec.banner is None else spec.banner.encode()
        elif spec.body is not None:
            body = spec.body.encode()
        return cls(*where, request, spec, banner, body)


async def check_plain(plan: SocketPlan) -> int | None:
    """Run one check; the HTTP status read (None for TCP); raises CheckFailed with the cause."""
    check = await run_once(lambda loop, on_done: PlainCheck(loop, plan, on_done))
    return check.status


class _Phase(enum.Enum):
    CONNECT = 1
    SEND = 2
    HEAD = 3
    BODY = 4
    DONE = 5
    BANNER = 6  # TCP with `expect=`: reading the first bytes


class PlainCheck(CallbackCheck[SocketPlan]):
    """One check on the socket path; selector and timer callbacks move it forward.

    `start()` begins it; when it ends, the socket is closed and `on_done(self)` is called once, on
    the loop, with `failure` (None: passed; a CheckFailed; or another exception: a bug), `status`,
    `started` and `ended` (wall clock) set. `cancel()` ends it without calling `on_done`.
    """

    __slots__ = ("_body", "_deadline", "_fd", "_head", "_out", "_phase", "_seen", "_want", "_watch")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        plan: SocketPlan,
        on_done: Callable[[PlainCheck], object],
    ) -> None:
        super().__init__(loop, plan, on_done)
        self._fd = -1
        self._watch = 0  # 0: none, 1: writer, 2: reader registered with the loop
        self._phase = _Phase.CONNECT
        self._deadline = 0.0  # the response deadline (loop time), once connected
        self._out = b""
        self._head = b""
        self._body = bytearray()  # only with a body match: the body read so far
        self._want = 0
        self._seen = 0

    def start(self) -> None:
        """Open the socket and start connecting (`on_done` may be called before this returns)."""
        loop, plan = self._loop, self._plan
        self.started = time.time()
        # One timer per check: armed for the connect, moved to the response deadline if needed.
        self._timer = loop.call_at(loop.time() + plan.spec.connect_timeout, self._on_timer)
        try:
            # Non-blocking from the start: no separate syscall to make it so.
            sock = self._sock = socket.socket(plan.family, _STREAM_NONBLOCK)
            err = sock.connect_ex(plan.sockaddr)
        except OSError as exc:  # e.g. out of file descriptors
            self._finish(connect_failure(exc))
            return
        if err not in _IN_PROGRESS and err != 0:
            self._finish(connect_failure(OSError(err, os.strerror(err))))
            return
        self._fd = sock.fileno()
        self._watch = 1
        loop.add_writer(self._fd, self._on_writable)

    def cancel(self) -> None:
        """End the check now without reporting: no callback runs after this (idempotent)."""
        self._phase = _Phase.DONE
        self._close()

    def _close(self) -> None:
        """Stop watching, cancel the timer, close the socket (idempotent)."""
        self._unwatch()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _on_writable(self) -> None:
        try:
            if self._phase is _Phase.CONNECT:
                self._connected()
            if self._phase is _Phase.SEND:
                self._send()
        except Exception as exc:  # a bug: probe() reports it as an internal error
            self._finish(exc)

    def _connected(self) -> None:
        assert self._sock is not None
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._finish(connect_failure(OSError(err, os.strerror(err))))
            return
        plan = self._plan
        if plan.request is None and plan.banner is None:
            self._finish(None)  # TCP: connected is passed
            return
        self._deadline = self._loop.time() + plan.spec.response_timeout
        timer = self._timer
        if timer is not None and self._deadline < timer.when():
            timer.cancel()
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
        if plan.request is None:  # TCP with only `expect=`: read the banner
            self._read_next(_Phase.BANNER)
            return
        self._out = plan.request
        self._phase = _Phase.SEND

    def _send(self) -> None:
        assert self._sock is not None
        try:
            sent = self._sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(io_failure(exc))
            return
        self._out = self._out[sent:]
        if self._out:
            return  # the rest when the socket is writable again
        plan = self._plan
        if plan.spec.kind is CheckKind.TCP:
            if plan.banner is None:
                self._finish(None)  # TCP `send=` without `expect=`: sent is passed
                return
            self._read_next(_Phase.BANNER)
            return
        self._read_next(_Phase.HEAD)

    def _read_next(self, phase: _Phase) -> None:
        """Stop watching for writability, watch for data, in `phase`."""
        # Reader first: the selector then modifies the fd's registration twice, where removing
        # the writer first would unregister it and register it anew (a KeyError raised inside).
        self._loop.add_reader(self._fd, self._on_readable)
        self._loop.remove_writer(self._fd)
        self._watch = 2
        self._phase = phase

    def _on_readable(self) -> None:
        try:
            if self._phase is _Phase.HEAD:
                self._read_head()
            elif self._phase is _Phase.BODY:
                self._drain()
            elif self._phase is _Phase.BANNER:
                self._read_banner()
        except Exception as exc:  # CheckFailed from judging the head, or a bug (internal error)
            self._finish(exc)

    def _recv_head(self) -> bytes | None:
        """Bytes of the head or banner; None when none are there yet or the read failed (ended)."""
        assert self._sock is not None
        try:
            return self._sock.recv(_HEAD_READ)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self._finish(io_failure(exc))
            return None

    def _read_head(self) -> None:
        data = self._recv_head()
        if data is None:
            return
        if not data:
            self._finish(io_failure(None))  # EOF before a complete head
            return
        before = len(self._head)
        buffer = self._head + data if before else data
        end = buffer.find(HEAD_END, max(before - 3, 0))
        if end < 0:
            if len(buffer) > HEAD_LIMIT:
                self._finish(CheckFailed("bad response"))
            else:
                self._head = buffer
            return
        head = buffer[: end + 4]
        self._head = b""
        status = parse_status(head)  # CheckFailed on a bad status line
        if not self._plan.spec.passes_status(status):
            raise CheckFailed(f"status {status}", status)
        self.status = status
        # The verdict is in (unless the body must match): the body is drained up to the cap
        # until the deadline, no more. A HEAD response has no body, whatever its headers say.
        head_only = self._plan.spec.http_method == "HEAD"
        self._want = 0 if head_only else body_want(status, body_length(head))
        self._seen = len(buffer) - end - 4
        self._phase = _Phase.BODY
        if self._plan.body is not None:
            self._body += buffer[end + 4 : end + 4 + self._want]
            self._judge_body(False)
        elif self._seen >= self._want:
            self._finish(None)

    def _drain(self) -> None:
        assert self._sock is not None
        if self._plan.body is not None:
            self._read_body()
            return
        try:
            read = self._sock.recv_into(_SCRATCH)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            read = 0  # a reset after the verdict changes nothing
        self._seen += read
        if read == 0 or self._seen >= self._want:
            self._finish(None)

    def _read_body(self) -> None:
        """With `body=`: keep the body (up to the cap) and look for the text in it."""
        assert self._sock is not None
        try:
            data = self._sock.recv(max(self._want - len(self._body), 1))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        self._body += data[: self._want - len(self._body)]
        self._judge_body(not data)

    def _judge_body(self, ended: bool) -> None:
        """Pass once the text is found; fail once no more body will be read."""
        assert self._plan.body is not None
        if self._plan.body in self._body:
            self._finish(None)
        elif ended or len(self._body) >= self._want:
            self._finish(CheckFailed("body mismatch", self.status))

    def _read_banner(self) -> None:
        """TCP with `expect=`: the first bytes must start with the expected text."""
        assert self._plan.banner is not None
        banner = self._plan.banner
        data = self._recv_head()
        if data is None:
            return
        self._head += data
        if not banner.startswith(self._head[: len(banner)]):
            self._finish(CheckFailed("banner mismatch"))
        elif len(self._head) >= len(banner):
            self._finish(None)
        elif not data:
            self._finish(CheckFailed("banner mismatch"))  # EOF before the whole prefix

    def _on_timer(self) -> None:
        self._timer = None
        if self._phase is _Phase.CONNECT:
            self._finish(CheckFailed("connect timeout"))
        elif self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._on_timer)
        elif self._phase is _Phase.BODY and self._plan.body is not None:
            self._finish(CheckFailed("body mismatch", self.status))  # not found in time
        elif self._phase is _Phase.BODY:
            self._finish(None)  # the status stands; the rest of the body is not waited for
        else:
            self._finish(CheckFailed("response timeout"))

    def _finish(self, failure: BaseException | None) -> None:
        """End the check: no loop callback of it runs after this; report it."""
        if self._phase is _Phase.DONE:
            return
        self._phase = _Phase.DONE
        self._report(failure)

    def _unwatch(self) -> None:
        if self._watch == 1:
            self._loop.remove_writer(self._fd)
        elif self._watch == 2:
            self._loop.remove_reader(self._fd)
        self._watch = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
