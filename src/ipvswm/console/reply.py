"""The answer to one console command, as every command and every input (socket, FIFO) has it."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from ipvswm.answers import Refused
from ipvswm.console import render

STATUS_OK = 0
STATUS_FAILED = 1
STATUS_USAGE = 2  # not understood
STATUS_TIMEOUT = 3


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one command: text lines, JSON data, exit status, and whether to close."""

    ok: bool = True
    status: int = STATUS_OK
    lines: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)
    close: bool = False


def failed(message: str | Refused, status: int = STATUS_FAILED) -> Reply:
    """A failed command: one `#` line (a refusal's reason, or a message)."""
    text = message.reason if isinstance(message, Refused) else message
    text = text if text.startswith("#") else f"# {text}"
    return Reply(ok=False, status=status, lines=[text], data={"error": text})


def rendered(result: render.Rendered) -> Reply:
    return Reply(lines=result[0], data=result[1])
