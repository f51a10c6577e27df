"""One console session: its history and reply format, from a raw line to the bytes to send back.

A line is parsed (console.grammar); `!N`, `auth`, help, history, format and quit are the
session's own; every other command is checked against the peer's rights and run by
console.commands against the Control.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging

from ipvswm.console.authority import Peer
from ipvswm.console.authority import describe
from ipvswm.console.authority import may_change
from ipvswm.console.command_types import Auth
from ipvswm.console.command_types import Command
from ipvswm.console.command_types import Format
from ipvswm.console.command_types import Help
from ipvswm.console.command_types import History
from ipvswm.console.command_types import ParseError
from ipvswm.console.command_types import Quit
from ipvswm.console.command_types import Repeat
from ipvswm.console.command_types import SessionCommand
from ipvswm.console.command_types import read_only
from ipvswm.console.commands import execute
from ipvswm.console.control import Control
from ipvswm.console.grammar import help_lines
from ipvswm.console.grammar import parse
from ipvswm.console.render import printable
from ipvswm.console.reply import STATUS_USAGE
from ipvswm.console.reply import Reply
from ipvswm.console.reply import failed

log = logging.getLogger(__name__)

PROMPT = "$ "
MAX_AUTH_FAILURES = 3
AUTH_FAILURE_DELAY = 1.0  # seconds before a wrong token is answered: guessing stays slow
MAX_HISTORY = 500
GREETING = "ipvs-weightman console. Commands:"


def parse_error_reply(error: ParseError) -> Reply:
    """`???` and the closest command's syntax; status 2 (not understood: a usage error)."""
    return Reply(
        ok=False,
        status=STATUS_USAGE,
        lines=[f"??? {error.message}", f"    usage: {error.hint}"],
        data={"error": error.message, "hint": error.hint},
    )


class Session:
    """The per-connection state of a console: history and `format`, shared by TCP/Unix/FIFO."""

    def __init__(self, control: Control, name: str = "console", peer: Peer | None = None) -> None:
        self.control = control
        self.name = name
        self.peer = peer  # None: a trusted input (the FIFO, 0600 and ours)
        self.authenticated = False
        self._auth_failures = 0
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
        if isinstance(command, Auth):
            return await self._auth(command)  # never in the history: it holds the token
        if not isinstance(command, Format):  # the client's `format json` is framing, not a command
            self.history.append(text)
            del self.history[:-MAX_HISTORY]
        refusal = await self._refusal(command)
        if refusal is not None:
            return refusal
        if isinstance(command, Help | History | Format | Quit):
            return self._own(command)
        return await execute(command, self.control, self.name, self.gone)

    def _own(self, command: SessionCommand) -> Reply:
        """The commands a session answers itself: help, its history, its format, quit."""
        match command:
            case Help(topic):
                return Reply(lines=help_lines(topic), data={"help": help_lines(topic)})
            case History():
                entries = [f"{i:4d}  {line}" for i, line in enumerate(self.history, 1)]
                return Reply(lines=entries, data={"history": list(self.history)})
            case Format(json=as_json):
                self.json = as_json
                shown = "json" if as_json else "text"
                return Reply(lines=[f"format {shown}"], data={"json": as_json})
        return Reply(lines=["bye"], data={}, close=True)  # Quit

    async def _refusal(self, command: Command) -> Reply | None:
        """Why this session may not run this command (None: it may)."""
        peer = self.peer
        if peer is None or self.authenticated:
            return None
        if not peer.loopback:  # from another machine: nothing but help before `auth`
            if isinstance(command, Auth) or type(command).__name__ in ("Help", "Quit"):
                return None
            return failed("# authenticate first: auth TOKEN (Management.Socket.Token)")
        if read_only(command):
            return None
        options = self.control.config().options
        if peer.uid is not None and await asyncio.to_thread(may_change, peer.uid, options):
            return None
        who = describe(peer)
        log.info("console %s: %s refused: %s may only read", self.name, type(command).__name__, who)
        return failed(
            f"# not allowed: {who} may only read (show, dump, wait, help, quit); changes need "
            "root, the daemon's user, a user in Management.Socket.AllowUsers or "
            "Management.Socket.AllowGroups, or 'auth TOKEN'"
        )

    async def _auth(self, command: Auth) -> Reply:
        token = self.control.config().options.management_socket_token
        if not token:
            return failed("# no Management.Socket.Token is configured")
        if hmac.compare_digest(command.token.encode(), token.encode()):
            self.authenticated = True
            log.info("console %s: authenticated by token", self.name)
            return Reply(lines=["ok: authenticated"])
        self._auth_failures += 1
        log.warning("console %s: wrong token (%d)", self.name, self._auth_failures)
        await asyncio.sleep(AUTH_FAILURE_DELAY)
        if self._auth_failures >= MAX_AUTH_FAILURES:
            return Reply(ok=False, status=1, lines=["# authentication failed, bye"], close=True)
        return failed("# authentication failed")

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
        text = "".join(f"{printable(out)}\n" for out in reply.lines)
        return (text if reply.close else text + PROMPT).encode("utf-8", "replace")
