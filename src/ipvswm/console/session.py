"""One console session: its history and reply format, from a raw line to the bytes to send back."""

from __future__ import annotations

import asyncio
import json

from ipvswm.console.command_types import Format, ParseError, Repeat
from ipvswm.console.commands import Reply, execute
from ipvswm.console.control import Control
from ipvswm.console.grammar import help_lines, parse

PROMPT = "$ "
MAX_HISTORY = 500
GREETING = "ipvs-weightman console. Commands:"


def parse_error_reply(error: ParseError) -> Reply:
    """`???` and the closest command's syntax; status 2 (not understood: a usage error)."""
    return Reply(
        ok=False,
        status=2,
        lines=[f"??? {error.message}", f"    usage: {error.hint}"],
        data={"error": error.message, "hint": error.hint},
    )


class Session:
    """The per-connection state of a console: history and `format`, shared by TCP/Unix/FIFO."""

    def __init__(self, control: Control, name: str = "console") -> None:
        self.control = control
        self.name = name
        self.history: list[str] = []
        self.json = False
        self.gone = asyncio.Event()  # the client closed its side: a `wait` stops waiting

    def greeting(self) -> str:
        """The text sent on connect: help and the first prompt."""
        return "\n".join([GREETING, *help_lines()]) + "\n" + PROMPT

    async def handle(self, line: str) -> Reply:
        """Execute one input line (already decoded) and return its reply."""
        text = " ".join(line.split())
        if not text:
            return Reply()
        command = parse(text)
        if isinstance(command, Repeat):
            if not self.history:
                return Reply(ok=False, status=1, lines=["# no command in history yet"])
            index = len(self.history) if command.index is None else command.index
            if not 1 <= index <= len(self.history):
                return Reply(ok=False, status=1, lines=[f"# no history entry {index}"])
            text = self.history[index - 1]
            command = parse(text)
        if isinstance(command, ParseError | Repeat):
            return parse_error_reply(command) if isinstance(command, ParseError) else Reply()
        if not isinstance(command, Format):  # the client's `format json` is framing, not a command
            self.history.append(text)
            del self.history[:-MAX_HISTORY]
        return await execute(command, self.control, self)

    def bad_input(self, message: str) -> Reply:
        """A reply for input that is not even a line of text (too long, not UTF-8)."""
        return parse_error_reply(ParseError(message, "help"))

    def encode(self, reply: Reply, line: str = "") -> bytes:
        """The reply as sent: text lines and a prompt, or one JSON object on one line."""
        if self.json:
            obj = {
                "command": line,
                "ok": reply.ok,
                "status": reply.status,
                "lines": reply.lines,
                "data": reply.data,
                "close": reply.close,
            }
            return (json.dumps(obj, default=str, separators=(",", ":")) + "\n").encode()
        text = "".join(f"{out}\n" for out in reply.lines)
        return (text if reply.close else text + PROMPT).encode("utf-8", "replace")
