"""Line input, shared by every console (TCP, Unix socket, FIFO): bytes cut into lines, a line
decoded, and one line run through its session with a failure turned into a reply."""

from __future__ import annotations

import asyncio
import logging

from ipvswm.console.reply import STATUS_FAILED
from ipvswm.console.reply import Reply
from ipvswm.console.session import Session

log = logging.getLogger(__name__)


class LineSplitter:
    """Cuts a byte stream into lines; a line longer than `max_line` becomes one None."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._discarding = False  # inside a too-long line: drop bytes up to its newline

    def feed(self, data: bytes) -> list[bytes | None]:
        out: list[bytes | None] = []
        start = 0
        while True:
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if not self._discarding:
                self._buf += chunk
                if len(self._buf.rstrip(b"\r")) > self.max_line:
                    out.append(None)
                    self._buf.clear()
                    self._discarding = nl < 0
                elif nl >= 0:
                    out.append(bytes(self._buf).rstrip(b"\r"))
                    self._buf.clear()
            elif nl >= 0:
                self._discarding = False
            if nl < 0:
                return out
            start = nl + 1

    @property
    def pending(self) -> bool:
        """Whether part of a line has been received (its newline not yet)."""
        return bool(self._buf) or self._discarding

    def rest(self) -> bytes | None:
        """The unterminated last line at end of input (None if there is none)."""
        if self._discarding or not self._buf:
            return None
        line = bytes(self._buf).rstrip(b"\r")
        self._buf.clear()
        return line


def decode_line(session: Session, raw: bytes | None, max_line: int) -> tuple[str | None, Reply]:
    """The decoded line (None if unusable) and, when unusable, the reply for it."""
    if raw is None:
        return None, session.bad_input(f"line too long (max {max_line} bytes)")
    try:
        return raw.decode("utf-8"), Reply()
    except UnicodeDecodeError:
        return None, session.bad_input("input is not UTF-8 text")


async def run_line(session: Session, text: str) -> Reply:
    """One command, with a bug in any command turned into an error reply, not a dead session."""
    try:
        return await session.handle(text)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("console %s: command %r failed", session.name, text)
        return Reply(ok=False, status=STATUS_FAILED, lines=["# internal error (logged)"])
