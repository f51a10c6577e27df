"""How one alert mail goes out over SMTP: the relay address, a blocking transaction in a thread
that the event loop can abandon, and a readable cause for a failure."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import threading
from collections.abc import Callable
from email.message import EmailMessage
from typing import TypeVar

T = TypeVar("T")
SMTP_PORT = 25


class MailError(Exception):
    """A send attempt that failed for a reason other than an smtplib or socket error."""


def parse_smtp(value: str) -> tuple[str, int] | None:
    """`Email.SMTP` as (host, port); None for an empty value (local sendmail). ValueError if bad."""
    value = value.strip()
    if not value:
        return None
    port = ""
    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"bad Email.SMTP {value!r}: expected [ADDRESS]:PORT")
        port = rest[1:]
        if rest and not port:
            raise ValueError(f"bad Email.SMTP {value!r}: empty port")
    elif value.count(":") == 1:
        host, port = value.split(":")
        if not port:
            raise ValueError(f"bad Email.SMTP {value!r}: empty port")
    else:
        host = value  # a name, an IPv4 address or a bare IPv6 address
    if not host:
        raise ValueError(f"bad Email.SMTP {value!r}: no host")
    if port and (not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536):
        raise ValueError(f"bad Email.SMTP {value!r}: bad port {port!r}")
    return host, int(port) if port else SMTP_PORT


def send_cause(exc: BaseException) -> str:
    """A short, readable cause for a failed send."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return f"SMTP {exc.smtp_code} {text}".strip()
    if isinstance(exc, MailError):
        return str(exc)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"recipients refused: {', '.join(sorted(exc.recipients))}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking call in a fresh daemon thread; cancelling abandons it (it ends by itself)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: Exception | None) -> None:
        if future.done():
            return  # the waiter was cancelled
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: Exception | None = None
        try:
            result = fn()
        except Exception as exc:
            error = exc
        # The loop may be gone when an abandoned send ends: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="ipvswm-mail", daemon=True).start()
    return await future


def smtp_send(smtp: smtplib.SMTP, host: str, port: int, message: EmailMessage) -> dict[str, str]:
    """One SMTP transaction (blocking); the recipients refused while others were accepted."""
    try:
        smtp.connect(host, port)
        refused = smtp.send_message(message)
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()  # the message is accepted: a failed QUIT must not cause a duplicate
        return {
            rcpt: f"{code} {text.decode(errors='replace')}"
            for rcpt, (code, text) in refused.items()
        }
    finally:
        smtp.close()


def abort_smtp(smtp: smtplib.SMTP) -> None:
    """Wake a thread blocked on this connection (close() alone does not interrupt a recv)."""
    sock = getattr(smtp, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
