"""Email alerts from the real daemon (SPEC §8, issue 7): a real SMTP server and a hanging one.

Addresses: real servers on 127.0.0.140-127.0.0.149; SMTP servers on 127.0.0.1 (free ports);
virtual services in 192.0.2.0/24 (never contacted).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from ipvswm.alerts import Mailer
from ipvswm.config.model import GlobalOptions
from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers
from tests.support.smtp import Inbox

SMTP_HOST = "127.0.0.1"
CHECK_INTERVAL = 0.3  # DaemonProcess's Check.Interval
FROM, TO, REPLY_TO = "lb1@example.org", "ops@example.org", "noc@example.org"


# --- helpers ---------------------------------------------------------------------------------


def weights(emu: Emulator) -> dict[str, int]:
    return emu.weights()


def rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


def log_time(log: str, text: str) -> float:
    """The time (epoch seconds) of the first log line containing `text`."""
    for line in log.splitlines():
        stamp, _, rest = line.partition("|")
        if text in rest:
            when = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
            return when.replace(tzinfo=datetime.UTC).timestamp()
    raise AssertionError(f"no log line with {text!r}")


class Hanging:
    """A TCP server that accepts and never answers: an SMTP relay that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server((SMTP_HOST, 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[float] = []  # accept times
        self.closed: list[float] = []  # when the client went away, per connection
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # listener closed
            with self._lock:
                self.accepted.append(time.time())
            thread = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            while True:  # never write a byte: read until the client gives up
                try:
                    if not conn.recv(4096):
                        break
                except OSError:
                    break
        with self._lock:
            self.closed.append(time.time())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() won't
        self.listener.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def smtpd() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname=SMTP_HOST, port=free_port(SMTP_HOST))
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    server = Hanging()
    yield server
    server.close()


def mail_options(emu: Emulator, port: int) -> dict[str, str]:
    return {
        "IPVSADM": str(emu.binary),
        "IPVS.ResyncPeriod": "30",  # no resync read in the middle of a timed step
        "Email.SMTP": f"{SMTP_HOST}:{port}",
        "Email.Headers.From": FROM,
        "Email.Headers.To": TO,
        "Email.Headers.Reply-To": REPLY_TO,
    }


# --- tests -----------------------------------------------------------------------------------


@pytest.mark.integration
def test_fail_and_ok_mails_only_for_the_vs_that_asks(
    farm: ThreadedRealServers, emu: Emulator, smtpd: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtpd
    web1, web2 = farm.start("127.0.0.140"), farm.start("127.0.0.141")
    web3, sorry = farm.start("127.0.0.142"), farm.start("127.0.0.143")
    body = (
        "! www 192.0.2.10:80 /health email=true,sorry_server=sorry\n"
        "! quiet 192.0.2.11:80 /health sorry_server=sorry\n"
        f"web1 {rs(web1)} www=10\n"
        f"web2 {rs(web2)} www=10\n"
        f"web3 {rs(web3)} quiet=10\n"
        f"sorry {rs(sorry)}\n"
    )
    daemon = DaemonProcess(tmp_path, body, env=emu.env, options=mail_options(emu, port))
    daemon.start()
    try:
        # Seen healthy first: the engine does not alert for a VS without saved state.
        for server in (web1, web2):
            wait_weight(emu, f"192.0.2.10:80 {rs(server)}", 10)
        wait_weight(emu, f"192.0.2.11:80 {rs(web3)}", 10)

        for server in (web1, web2, web3):
            server.set_mode("failing")
        daemon.wait_log("vs www: sorry server sorry ON")
        daemon.wait_log("vs quiet: sorry server sorry ON")
        wait_until(lambda: len(inbox.envelopes) >= 1, 10, "the FAIL mail")

        # quiet recovers first: any alert of its would be queued (and sent) before www's OK
        web3.set_mode("healthy")
        daemon.wait_log("vs quiet: sorry server sorry OFF")
        web1.set_mode("healthy")
        daemon.wait_log("vs www: sorry server sorry OFF")
        wait_until(lambda: len(inbox.envelopes) >= 2, 10, "the OK mail")
        daemon.wait_log("alert \"VS 'www' OK")
    finally:
        assert daemon.stop() == 0

    fail, ok = inbox.messages()  # exactly two: nothing for quiet
    assert fail["Subject"] == "VS 'www' FAIL"
    assert re.fullmatch(r"VS 'www' OK \(after \d+\.\d+s\)", str(ok["Subject"])), ok["Subject"]
    for message in (fail, ok):
        assert message["From"] == FROM
        assert message["To"] == TO
        assert message["Reply-To"] == REPLY_TO
    assert inbox.envelopes[0].rcpt_tos == [TO]
    fail_body = fail.get_content()
    ok_body = ok.get_content()
    assert "quiet" not in fail_body and "web3" not in fail_body
    # the body lists the VS's hosts with their state at the time of the change
    for host, server in (("web1", web1), ("web2", web2)):
        line = next(ln for ln in fail_body.splitlines() if ln.strip().startswith(host + " "))
        assert rs(server) in line and "weight 0" in line and "AWAIT_PASS" in line, line
        assert "status 500" in line, line
    web1_ok = next(ln for ln in ok_body.splitlines() if ln.strip().startswith("web1 "))
    assert "weight 10" in web1_ok and "ENABLED" in web1_ok, web1_ok
    assert "sorry server 'sorry' went in" in fail_body
    assert "went out" in ok_body


@pytest.mark.integration
def test_a_hanging_relay_delays_neither_the_kernel_nor_the_owner_loop(
    farm: ThreadedRealServers,
    emu: Emulator,
    hanging: Hanging,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emu.require_emulator()
    # A loop blocked by the send would stall for the whole SMTP timeout: the bounds below are
    # half of it, generous on a loaded machine; the figures themselves are printed below (run
    # with -s to see them), not asserted.
    smtp_timeout, backoff = 4.0, 0.3
    web1, web2 = farm.start("127.0.0.144"), farm.start("127.0.0.145")
    sorry = farm.start("127.0.0.146")
    body = (
        "! www 192.0.2.12:80 /health email=true,sorry_server=sorry\n"
        "! api 192.0.2.13:80 /health\n"
        f"web1 {rs(web1)} www=10\n"
        f"web2 {rs(web2)} api=10\n"
        f"sorry {rs(sorry)}\n"
    )
    daemon = DaemonProcess(
        tmp_path,
        body,
        env={
            **emu.env,
            "IPVSWM_SMTP_TIMEOUT": str(smtp_timeout),
            "IPVSWM_SMTP_BACKOFF": str(backoff),
        },
        options=mail_options(emu, hanging.port),
    )
    daemon.start()
    api_key = f"192.0.2.13:80 {rs(web2)}"
    try:
        wait_weight(emu, f"192.0.2.12:80 {rs(web1)}", 10)
        wait_weight(emu, api_key, 10)

        web1.set_mode("failing")
        wait_until(lambda: len(hanging.accepted) >= 1, 10, "the mail attempt to connect")
        accepted = hanging.accepted[0]
        wait_weight(emu, f"192.0.2.12:80 {rs(sorry)}", 1)  # the FAIL's own step is applied

        # A later failure while the SMTP connection hangs
        switched = time.time()
        web2.set_mode("failing")
        wait_weight(emu, api_key, 0)
        reached = time.time()
        assert not hanging.closed, "the SMTP connection should still be hanging"

        daemon.wait_log("retry 1/3 in 0.3s", timeout=smtp_timeout + 20)
        wait_until(lambda: len(hanging.accepted) >= 2, 20, "the retry to connect")
        log = daemon.log_text()
        stopping = time.monotonic()
    finally:
        assert daemon.stop() == 0
    exit_seconds = time.monotonic() - stopping

    requests = web2.requests
    answered = next(r.time for r in requests if r.mode == "failing")
    # The checker runs every 0.3 s start to start: any lateness is the daemon's loop being late.
    during = [r.time for r in requests if accepted - 0.3 <= r.time <= accepted + smtp_timeout]
    lateness = max(b - a for a, b in itertools.pairwise(during)) - CHECK_INTERVAL
    decided = log_time(log, "vs api host web2: weight 10 -> 0")
    batch = next(
        inv
        for inv in emu.changing_invocations()
        if inv.time > switched and rs(web2) in inv.stdin and "-w 0" in inv.stdin
    )
    owner_delay = decided - answered
    retry_at = log_time(log, "retry 1/3")
    with capsys.disabled():
        print(
            f"\nhanging relay: owner delay (500 answered -> decision logged) = "
            f"{owner_delay * 1000:.1f} ms; 500 answered -> ipvsadm -R started = "
            f"{(batch.time - answered) * 1000:.1f} ms; mode switch -> weight 0 seen = "
            f"{(reached - switched) * 1000:.0f} ms; worst check lateness while hanging = "
            f"{lateness * 1000:.1f} ms ({len(during)} checks); SMTP accept -> retry logged = "
            f"{retry_at - accepted:.2f} s; SIGTERM -> exit = {exit_seconds:.2f} s"
        )
    bound = smtp_timeout / 2
    assert owner_delay < bound, f"owner loop delayed {owner_delay * 1000:.1f} ms"
    assert len(during) >= 3 and lateness < bound, f"checks late by {lateness * 1000:.1f} ms"
    assert batch.time < accepted + smtp_timeout, "the weight change waited for the mail"
    assert "timed out" in log[log.index("send via") :].splitlines()[0]
    assert smtp_timeout - 0.2 < retry_at - accepted  # the retry follows the timeout
    # The close grace is 2 s; a hanging relay holding the exit would hold it for its 3 attempts
    # of 4 s each (and the retry's connection hangs too).
    assert exit_seconds < 3 * smtp_timeout


def test_smtp_timeout_and_backoff_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    options = GlobalOptions(email_to=TO)
    monkeypatch.setenv("IPVSWM_SMTP_TIMEOUT", "0.5")
    monkeypatch.setenv("IPVSWM_SMTP_BACKOFF", "0.25")
    mailer = Mailer(options)
    assert (mailer._timeout, mailer._backoff) == (0.5, 0.25)
    explicit = Mailer(options, timeout=7, backoff=3)
    assert (explicit._timeout, explicit._backoff) == (7, 3)
    monkeypatch.setenv("IPVSWM_SMTP_TIMEOUT", "soon")
    monkeypatch.setenv("IPVSWM_SMTP_BACKOFF", "-1")
    fallback = Mailer(options)
    assert (fallback._timeout, fallback._backoff) == (10.0, 2.0)
    assert "IPVSWM_SMTP_TIMEOUT='soon' is not a positive number" in caplog.text
