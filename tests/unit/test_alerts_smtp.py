"""Alert delivery against real loopback SMTP servers (and a fake sendmail): timing and retries."""

from __future__ import annotations

import asyncio
import email
import logging
import socket
import time
from collections.abc import AsyncIterator
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from ipvswm.alerts import Mailer
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import VirtualService
from ipvswm.engine.outputs import SorryChange
from tests.support.smtp import Inbox

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
FROM, TO, REPLY_TO = "lb@example.org", "ops@example.org, oncall@example.org", "noc@example.org"
CHECK = CheckSpec(kind=CheckKind.HTTP, path="/health")
WWW = VirtualService("www", "192.0.2.10", 80, 80, CHECK, email=True, sorry_server="sorry")
QUIET = VirtualService("quiet", "192.0.2.11", 80, 80, CHECK)
LINES = ["web1 127.0.0.2:80 weight 0 AWAIT_PASS", "web2 127.0.0.3:80 weight 0 DISABLED"]
FAIL = SorryChange("www", True, 1_700_000_000.0, sorry_host="sorry")
OK = SorryChange("www", False, 1_700_000_012.5, after=12.5, sorry_host="sorry")


def options(port: int) -> GlobalOptions:
    return GlobalOptions(
        email_smtp=f"{HOST}:{port}", email_from=FROM, email_to=TO, email_reply_to=REPLY_TO
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtpd() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname=HOST, port=free_port())
    controller.start()
    yield inbox, controller.port
    controller.stop()


class Silent:
    """A TCP server that accepts and never says a word (an SMTP relay that hangs)."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        await reader.read()  # until the client gives up
        writer.close()


@pytest.fixture
async def silent() -> AsyncIterator[tuple[Silent, int]]:
    state = Silent()
    server = await asyncio.start_server(state.handle, HOST, 0)
    yield state, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port that refuses connections (bound, not listening, so nobody else takes it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        yield int(sock.getsockname()[1])


class LogWaiter(logging.Handler):
    """Sets an event when a log message containing `text` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def waiter() -> Iterator[type[LogWaiter]]:
    handlers: list[LogWaiter] = []
    logger = logging.getLogger("ipvswm.alerts")

    class Bound(LogWaiter):
        def __init__(self, text: str) -> None:
            super().__init__(text)
            handlers.append(self)
            logger.addHandler(self)

    yield Bound
    for handler in handlers:
        logger.removeHandler(handler)


async def test_fail_and_ok_mails(
    smtpd: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ipvswm.alerts")
    inbox, port = smtpd
    mailer = Mailer(options(port), retries=0, timeout=5, hostname="lb1")
    await mailer.start()
    for vs in (WWW, QUIET):  # what the daemon does: only VSs with email=true are mailed
        if Mailer.should_mail(vs):
            mailer.notify(FAIL, vs, LINES)
            mailer.notify(OK, vs, LINES)
    await mailer.drain()
    await mailer.close()
    fail, ok = inbox.messages()
    assert fail["Subject"] == "VS 'www' FAIL"
    assert ok["Subject"] == "VS 'www' OK (after 12.5s)"
    for message in (fail, ok):
        assert message["From"] == FROM
        assert message["To"] == TO
        assert message["Reply-To"] == REPLY_TO
        body = message.get_content().replace("\r\n", "\n")  # as received: CRLF
        assert "  web1 127.0.0.2:80 weight 0 AWAIT_PASS\n" in body
        assert "  web2 127.0.0.3:80 weight 0 DISABLED\n" in body
    assert "went in at 2023-11-14T22:13:20.000Z" in fail.get_content()
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == FROM
    assert envelope.rcpt_tos == ["ops@example.org", "oncall@example.org"]
    assert mailer.sent == 2 and mailer.failed == 0
    assert f"alert \"VS 'www' FAIL\" sent to {TO} via {HOST}:{port}" in caplog.text


async def test_silent_relay_never_blocks(
    silent: tuple[Silent, int], caplog: pytest.LogCaptureFixture
) -> None:
    server, port = silent
    # A blocking send would take the whole 2 s timeout: the bounds are half of it (generous on
    # a loaded machine), not a latency budget.
    mailer = Mailer(options(port), retries=1, backoff=0.05, timeout=2.0)
    await mailer.start()
    started = time.perf_counter()
    mailer.notify(FAIL, WWW, LINES)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"notify() took {elapsed * 1000:.1f} ms"
    await server.connected.wait()
    assert mailer.pending == 1
    # The event loop keeps running while the send hangs in its thread.
    lags = []
    for _ in range(5):
        tick = time.perf_counter()
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - tick - 0.01)
    assert max(lags) < 1.0
    await mailer.drain()
    await mailer.close()
    assert server.connections == 2  # the first attempt and one retry
    assert "send via 127.0.0.1" in caplog.text and "retry 1/1 in 0.1s" in caplog.text
    assert "timed out" in caplog.text
    assert "giving up after 2 attempt(s)" in caplog.text
    assert mailer.failed == 1 and mailer.sent == 0


async def test_dead_relay_retries_then_gives_up(
    dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = Mailer(options(dead_port), retries=2, backoff=0.01, timeout=1)
    await mailer.start()
    mailer.notify(FAIL, WWW, LINES)
    await mailer.drain()
    await mailer.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "ConnectionRefusedError" in warnings[0].getMessage()
    assert "retry 1/2 in 0.0s" in warnings[0].getMessage()
    assert "retry 2/2" in warnings[1].getMessage()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "alert \"VS 'www' FAIL\": giving up after 3 attempt(s): "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    ]


async def test_close_abandons_pending_retry_at_once(
    dead_port: int, waiter: type[LogWaiter], caplog: pytest.LogCaptureFixture
) -> None:
    mailer = Mailer(options(dead_port), retries=5, backoff=60, timeout=1)
    retrying = waiter("retry 1/5 in 60.0s")
    await mailer.start()
    mailer.notify(FAIL, WWW, LINES)
    await retrying.seen.wait()
    started = time.perf_counter()
    await mailer.close(grace=5)
    assert time.perf_counter() - started < 3  # not the 5 s grace, nor the 60 s backoff
    assert "not retried: shutting down" in caplog.text
    mailer.notify(OK, WWW, LINES)
    assert "alert \"VS 'www' OK (after 12.5s)\" not sent: shutting down" in caplog.text


async def test_close_abandons_hanging_send(
    silent: tuple[Silent, int], caplog: pytest.LogCaptureFixture
) -> None:
    server, port = silent
    mailer = Mailer(options(port), retries=3, timeout=60)
    await mailer.start()
    mailer.notify(FAIL, WWW, LINES)
    mailer.notify(OK, WWW, LINES)
    await server.connected.wait()
    started = time.perf_counter()
    await mailer.close(grace=0.1)
    assert time.perf_counter() - started < 10  # not the 60 s timeout
    assert "2 alert(s) not sent: shutting down" in caplog.text
    assert mailer.failed == 2


def fake_sendmail(tmp_path: Path, body: str) -> str:
    script = tmp_path / "sendmail"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


async def test_local_sendmail(tmp_path: Path) -> None:
    sendmail = fake_sendmail(tmp_path, f'echo "$@" > {tmp_path}/args\ncat > {tmp_path}/mail')
    mailer = Mailer(GlobalOptions(email_smtp="", email_to=TO), sendmail=sendmail, retries=0)
    await mailer.start()
    mailer.notify(FAIL, WWW, LINES)
    await mailer.drain()
    await mailer.close()
    assert (tmp_path / "args").read_text() == "-t -oi\n"
    message = email.message_from_bytes((tmp_path / "mail").read_bytes(), policy=default_policy)
    assert message["Subject"] == "VS 'www' FAIL" and message["To"] == TO
    assert mailer.sent == 1


@pytest.mark.parametrize(
    ("script", "cause"),
    [
        ("cat >/dev/null; echo 'queue full' >&2; exit 75", "exited 75: queue full"),
        ("exec sleep 30", "timed out after 0.2s"),
    ],
)
async def test_local_sendmail_failures(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, script: str, cause: str
) -> None:
    sendmail = fake_sendmail(tmp_path, script)
    mailer = Mailer(
        GlobalOptions(email_smtp="", email_to=TO), sendmail=sendmail, retries=0, timeout=0.2
    )
    await mailer.start()
    mailer.notify(FAIL, WWW, LINES)
    await mailer.drain()
    await mailer.close()
    assert f"giving up after 1 attempt(s): {sendmail} {cause}" in caplog.text
    assert mailer.failed == 1
