"""Email alerts when a virtual service's sorry server goes in or out (SPEC §8, issue 7).

API for the daemon:

- ``Mailer(options)``; ``await start()`` once the event loop runs; ``await close(grace)`` on exit
  (waits up to ``grace`` seconds for queued alerts, abandons pending retries at once).
- ``Mailer.should_mail(vs)``: whether a VS wants alerts (``email=true``); the caller decides.
- ``notify(change, vs, host_lines)``: builds the message and queues it; never blocks, never raises.
  ``host_lines(config, snapshot, kernel, vs_tag)`` makes the body's host list from the state.
- ``reconfigure(options)`` after a reload: later sends (and retries) use the new settings.

Sending: ``Email.SMTP`` (``HOST[:PORT]``, ``[V6]:PORT``; default port 25) with smtplib in a
daemon thread per attempt with a socket timeout, so a dead or silent relay never delays the event
loop nor the daemon's exit; an empty ``Email.SMTP`` pipes the message to ``sendmail -t -oi``. One
worker sends the queued alerts in order (a FAIL before its OK); a failed send is logged with its
cause and retried ``retries`` times after ``backoff``, then twice, four times that… seconds, then
given up (logged).

``$IPVSWM_SMTP_TIMEOUT`` and ``$IPVSWM_SMTP_BACKOFF`` (seconds) replace the defaults of
``timeout`` and ``backoff`` when the caller gives none (the daemon does not), so tests and
operators can shorten them without a config key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import smtplib
import socket
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import formatdate
from email.utils import make_msgid

from ipvswm import __version__
from ipvswm.alerts.smtp import SMTP_PORT
from ipvswm.alerts.smtp import MailError
from ipvswm.alerts.smtp import abort_smtp
from ipvswm.alerts.smtp import in_thread
from ipvswm.alerts.smtp import parse_smtp
from ipvswm.alerts.smtp import send_cause
from ipvswm.alerts.smtp import smtp_send
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import VirtualService
from ipvswm.engine.outputs import KeptChange
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.state import StateSnapshot
from ipvswm.kernel.table import Table
from ipvswm.timestamps import utc_text
from ipvswm.views import pair_views
from ipvswm.views import service_key

log = logging.getLogger(__name__)

__all__ = ["SMTP_PORT", "MailError", "Mailer", "host_lines", "parse_smtp"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_BACKOFF = 2.0
TIMEOUT_ENV = "IPVSWM_SMTP_TIMEOUT"
BACKOFF_ENV = "IPVSWM_SMTP_BACKOFF"


def _env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else `default` (bad values logged)."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        log.warning("%s=%r is not a positive number of seconds; using %g", name, text, default)
        return default
    return value


def host_lines(config: Config, snapshot: StateSnapshot, kernel: Table, vs_tag: str) -> list[str]:
    """The alert mail's host list: one line per pair of the VS (weights, phase, check, reasons)."""
    lines = []
    for view in pair_views(config, snapshot, kernel, vss=[vs_tag]):
        addr = f"[{view.address}]" if ":" in view.address else view.address
        kernel_weight = "-" if view.kernel_weight is None else str(view.kernel_weight)
        line = (
            f"{view.host} {addr}:{view.port} weight {view.desired} "
            f"(config {view.configured}, kernel {kernel_weight}) {view.phase.value}, "
            f"check {view.check}"
        )
        if view.cause:
            line += f" ({view.cause})"
        if view.reasons:
            line += f", reasons {','.join(sorted(view.reasons))}"
        lines.append(line)
    return lines


def _kept_head(change: KeptChange, tag: str, where: str, when: str) -> str:
    """The first lines of a depool-threshold mail."""
    if change.on:
        return (
            f"Virtual service '{tag}' {where}: checks fail on more servers than its depool\n"
            f"threshold ({change.threshold:g} of the target weight) lets go, so failing servers\n"
            f"are kept in service since {when}: {', '.join(change.kept)}."
        )
    return (
        f"Virtual service '{tag}' {where}: no failing server is kept in service any more\n"
        f"(since {when}, after {change.after or 0.0:.1f}s)."
    )


async def _set_within(event: asyncio.Event, delay: float) -> bool:
    """Wait up to `delay` s for `event`; whether it was set."""
    try:
        await asyncio.wait_for(event.wait(), delay)
    except TimeoutError:
        return False
    return True


class Mailer:
    """Queues alert mails and sends them in the background, with retries."""

    def __init__(
        self,
        options: GlobalOptions,
        *,
        retries: int = 3,
        backoff: float | None = None,
        timeout: float | None = None,
        sendmail: str = "/usr/sbin/sendmail",
        hostname: str | None = None,
        queue_limit: int = 100,
    ) -> None:
        self._retries = retries
        self._backoff = _env_seconds(BACKOFF_ENV, DEFAULT_BACKOFF) if backoff is None else backoff
        self._timeout = _env_seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT) if timeout is None else timeout
        self._sendmail = sendmail
        self._hostname = hostname or socket.gethostname()  # never a DNS lookup (unlike getfqdn)
        self._queue: asyncio.Queue[EmailMessage] = asyncio.Queue(maxsize=queue_limit)
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: smtplib.SMTP | None = None
        self._closed = False
        self._busy = False  # an alert is in hand (being sent or waiting for a retry)
        self.sent = 0
        self.failed = 0
        self.reconfigure(options)

    @staticmethod
    def should_mail(vs: VirtualService) -> bool:
        """Whether the VS asked for alerts (`email=true`)."""
        return vs.email

    def reconfigure(self, options: GlobalOptions) -> None:
        """Use new options (relay, headers) from now on, retries of queued alerts included."""
        self._options = options
        self._relay_error = ""
        try:
            self._relay = parse_smtp(options.email_smtp)
        except ValueError as exc:
            self._relay = None
            self._relay_error = str(exc)
            log.error("alerts: %s: alerts will not be sent", exc)

    @property
    def via(self) -> str:
        """Where mails go, for logs."""
        if self._relay is None:
            return self._sendmail
        host, port = self._relay
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _message(self, subject: str, at: float) -> EmailMessage:
        """A mail with every alert's headers and no body yet."""
        opts = self._options
        message = EmailMessage(policy=default_policy)
        message["Subject"] = subject
        message["From"] = opts.email_from or f"ipvs-weightman@{self._hostname}"
        message["To"] = opts.email_to
        if opts.email_reply_to:
            message["Reply-To"] = opts.email_reply_to
        message["Date"] = formatdate(at, usegmt=True)
        message["Message-ID"] = make_msgid("ipvswm", domain=self._hostname)
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        message["X-Mailer"] = f"ipvs-weightman {__version__}"
        return message

    def build_message(
        self, change: SorryChange | KeptChange, vs: VirtualService, host_lines: list[str]
    ) -> EmailMessage:
        """The alert mail for a sorry-server or depool-threshold change (pure but for the
        Message-ID)."""
        message = self._message(change.subject(), change.at)
        when = utc_text(change.at)
        sorry_host = change.sorry_host if isinstance(change, SorryChange) else ""
        sorry = f"sorry server {sorry_host!r}" if sorry_host else "sorry server"
        where = f"{service_key(vs)}" + (
            f" ({vs.name})" if vs.name and vs.name != vs.address else ""
        )
        if isinstance(change, KeptChange):
            head = _kept_head(change, vs.tag, where, when)
        elif change.on:
            head = (
                f"Virtual service '{vs.tag}' {where} has no real server with weight left:\n"
                f"the {sorry} went in at {when}."
            )
        else:
            head = (
                f"Virtual service '{vs.tag}' {where} has real servers with weight again:\n"
                f"the {sorry} went out at {when}, after {change.after or 0.0:.1f}s."
            )
        hosts = "\n".join(f"  {line}" for line in host_lines) or "  (no hosts)"
        body = f"{head}\n\nHosts:\n{hosts}\n\n-- \nipvs-weightman on {self._hostname}\n"
        message.set_content(body)
        return message

    def notify_text(self, subject: str, text: str) -> None:
        """Queue a plain alert (e.g. the cluster store lost or regained). Never raises."""
        opts = self._options
        if self._closed or not opts.email_to or self._relay_error:
            return
        message = self._message(subject, time.time())
        message.set_content(f"{text}\n\n-- \nipvs-weightman on {self._hostname}\n")
        if not self._queue.full():
            self._queue.put_nowait(message)

    def notify(
        self, change: SorryChange | KeptChange, vs: VirtualService, host_lines: list[str]
    ) -> None:
        """Queue the alert for a sorry-server or depool-threshold change. Never blocks, never
        raises."""
        try:
            subject = change.subject()
            if self._closed:
                log.warning("alert %r not sent: shutting down", subject)
                return
            if not self._options.email_to:
                log.warning("alert %r not sent: Email.Headers.To is empty", subject)
                return
            if self._relay_error:
                log.error("alert %r not sent: %s", subject, self._relay_error)
                return
            message = self.build_message(change, vs, host_lines)
            if self._queue.full():
                dropped = self._queue.get_nowait()
                self._queue.task_done()
                self.failed += 1
                log.error("alert %r dropped: too many alerts waiting", dropped["Subject"])
            self._queue.put_nowait(message)
            log.debug("alert %r queued for %s", subject, self._options.email_to)
        except Exception:  # an alert must never take the daemon down
            log.exception("alert for vs %s not queued", change.vs)

    @property
    def pending(self) -> int:
        """Alerts queued or being sent."""
        return self._queue.qsize() + int(self._busy)

    async def start(self) -> None:
        """Start the sending worker."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="ipvswm-mailer")

    async def drain(self) -> None:
        """Wait until every queued alert is sent or given up."""
        await self._queue.join()

    async def close(self, grace: float = 2.0) -> None:
        """Stop: wait up to `grace` s for queued alerts (no more retries), then drop the rest."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()  # backoff waits end now: failures are given up, not retried
        task, self._task = self._task, None
        if task is not None and self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), grace)
        left = self.pending
        if task is not None:
            task.cancel()
            if self._inflight is not None:
                abort_smtp(self._inflight)
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if left:
            self.failed += left
            log.error("%d alert(s) not sent: shutting down", left)

    async def _run(self) -> None:
        while True:
            message = await self._queue.get()
            self._busy = True
            try:
                await self._deliver(message)
            except Exception:  # a bug here must not stop later alerts
                log.exception("alert %r: unexpected error", message["Subject"])
            finally:
                self._busy = False
                self._queue.task_done()

    async def _deliver(self, message: EmailMessage) -> None:
        subject = message["Subject"]
        attempts = self._retries + 1
        for attempt in range(1, attempts + 1):
            try:
                await self._send_once(message)
            except (OSError, smtplib.SMTPException, MailError) as exc:
                cause = send_cause(exc)
            else:
                self.sent += 1
                log.info("alert %r sent to %s via %s", subject, message["To"], self.via)
                return
            if attempt == attempts or self._closing.is_set():
                self.failed += 1
                log.error("alert %r: giving up after %d attempt(s): %s", subject, attempt, cause)
                return
            delay = self._backoff * 2 ** (attempt - 1)
            log.warning(
                "alert %r: send via %s failed: %s; retry %d/%d in %.1fs",
                subject,
                self.via,
                cause,
                attempt,
                self._retries,
                delay,
            )
            if await _set_within(self._closing, delay):
                self.failed += 1
                log.error("alert %r: not retried: shutting down", subject)
                return

    async def _send_once(self, message: EmailMessage) -> None:
        relay = self._relay
        if relay is None:
            await self._pipe_sendmail(message)
            return
        host, port = relay
        smtp = smtplib.SMTP(local_hostname=self._hostname, timeout=self._timeout)
        self._inflight = smtp
        try:
            refused = await in_thread(lambda: smtp_send(smtp, host, port, message))
        except asyncio.CancelledError:
            abort_smtp(smtp)
            raise
        finally:
            self._inflight = None
        for rcpt, why in refused.items():
            log.warning("alert %r: recipient %s refused: %s", message["Subject"], rcpt, why)

    async def _pipe_sendmail(self, message: EmailMessage) -> None:
        proc = await asyncio.create_subprocess_exec(
            self._sendmail,
            "-t",
            "-oi",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(message.as_bytes()), self._timeout)
        except BaseException as exc:  # timeout or cancel: do not leave the process behind
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            if isinstance(exc, TimeoutError):
                raise MailError(f"{self._sendmail} timed out after {self._timeout:g}s") from None
            raise
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip().splitlines()
            raise MailError(
                f"{self._sendmail} exited {proc.returncode}" + (f": {text[-1]}" if text else "")
            )
