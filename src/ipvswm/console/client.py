"""`ipvswm ctl` and `ipvswm console`: talk to the running daemon's console (SPEC §1, §7).

Framing, exact for scripts: the client sends `format json` first. From then on the daemon answers
every line it is sent with exactly one line holding one JSON object
`{"command", "ok", "status", "lines", "data", "close"}`. Before that come the greeting (help text,
no line starts with `{`) and the first prompt `$ `, which the client skips. `ctl` sends
`format json`, the command and `quit`, and takes the second JSON object as the command's reply.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from typing import Any

from ipvswm.config.model import GlobalOptions

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # also: the daemon cannot be reached, or it did not answer properly
EXIT_TIMEOUT = 3
CONNECT_TIMEOUT = 5.0
HISTORY_FILE = "~/.ipvswm_history"

_COMMENT = re.compile(r"(?:^|\s)[#;]")
_OPTION = re.compile(r"^\s*([A-Za-z][\w.-]*)\s*=\s*(.*?)\s*$")


class Unreachable(Exception):
    """The daemon's console cannot be reached, or broke the framing."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the console listens: a Unix socket path (may be empty) and a TCP address."""

    path: str
    ip: str
    port: int


def read_endpoint(config_path: str) -> Endpoint:
    """The console's addresses from the config file (the parser if the file is valid)."""
    try:
        from ipvswm.config.parser import parse_file

        # No name resolution: the client only needs the management options.
        result = parse_file(config_path, resolver=lambda name: [])
        if result.config is not None:
            o = result.config.options
            return Endpoint(
                o.management_socket_path, o.management_socket_ip, o.management_socket_port
            )
    except ImportError:
        pass
    return _scan_endpoint(config_path)


def _scan_endpoint(config_path: str) -> Endpoint:
    """A minimal read of the three `Management.Socket.*` lines (an invalid or partial file)."""
    defaults = GlobalOptions()
    found: dict[str, str] = {}
    try:
        with open(config_path, encoding="utf-8", errors="replace") as file:
            for raw in file:
                line = _COMMENT.split(raw, maxsplit=1)[0]
                match = _OPTION.match(line)
                if match:
                    found[match.group(1).lower()] = match.group(2)
    except OSError as exc:
        raise Unreachable(f"cannot read {config_path}: {exc.strerror or exc}") from exc
    port_text = found.get("management.socket.port", "")
    return Endpoint(
        found.get("management.socket.path", defaults.management_socket_path),
        found.get("management.socket.ip", defaults.management_socket_ip),
        int(port_text)
        if port_text.isascii() and port_text.isdigit()
        else defaults.management_socket_port,
    )


def connect(endpoint: Endpoint, timeout: float = CONNECT_TIMEOUT) -> socket.socket:
    """The Unix socket if it answers, else TCP."""
    errors = []
    if endpoint.path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(endpoint.path)
            sock.settimeout(None)
            return sock
        except OSError as exc:
            sock.close()
            errors.append(f"{endpoint.path}: {exc.strerror or exc}")
    ip = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(endpoint.ip, endpoint.ip)
    try:
        sock = socket.create_connection((ip, endpoint.port), timeout=timeout)
        sock.settimeout(None)
        return sock
    except OSError as exc:
        errors.append(f"{ip}:{endpoint.port}: {exc.strerror or exc}")
    raise Unreachable("; ".join(errors))


class Connection:
    """A console connection in JSON mode: one line out, one JSON object back."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")

    def _read_object(self, greeting: list[str] | None = None) -> dict[str, Any]:
        while True:
            raw = self.file.readline()
            if not raw:
                raise Unreachable("the daemon closed the connection")
            text = raw.decode("utf-8", "replace").rstrip("\n")
            text = text.removeprefix("$ ")
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                except ValueError as exc:
                    raise Unreachable(f"bad reply from the daemon: {exc}") from exc
                if isinstance(obj, dict):
                    return obj
            if greeting is not None:
                greeting.append(text)

    def start(self) -> list[str]:
        """Switch to JSON mode; returns the greeting's lines."""
        greeting: list[str] = []
        self.sock.sendall(b"format json\n")
        self._read_object(greeting)
        return greeting

    def send(self, line: str) -> dict[str, Any]:
        """Send one command and return its reply."""
        self.sock.sendall(" ".join(line.split()).encode("utf-8") + b"\n")
        return self._read_object()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def open_console(config_path: str) -> tuple[Connection, list[str]]:
    conn = Connection(connect(read_endpoint(config_path)))
    try:
        return conn, conn.start()
    except BaseException:
        conn.close()
        raise


def exit_status(reply: dict[str, Any]) -> int:
    status = reply.get("status")
    return status if status in (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT) else EXIT_FAILED


def print_reply(reply: dict[str, Any], json_out: bool, out: IO[str], err: IO[str]) -> None:
    if json_out:
        print(json.dumps(reply), file=out)
        return
    stream = out if reply.get("ok") else err
    for line in reply.get("lines") or []:
        print(line, file=stream)


def ctl_main(config_path: str, words: list[str], json_out: bool) -> int:
    """`ipvswm ctl [--json] COMMAND…`: run one command; exit 0/1/3 from its status, 2 if the
    daemon cannot be reached or the command is not understood."""
    line = " ".join(" ".join(words).split())
    if not line:
        print("ipvswm ctl: a console command is needed (e.g. 'show hosts')", file=sys.stderr)
        return EXIT_USAGE
    try:
        conn, _ = open_console(config_path)
        try:
            reply = conn.send(line)
            with contextlib.suppress(OSError, Unreachable):
                conn.send("quit")
        finally:
            conn.close()
    except Unreachable as exc:
        print(f"ipvswm: cannot reach the daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"ipvswm: connection to the daemon failed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        print_reply(reply, json_out, sys.stdout, sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:  # `ctl … | head`: the reader went away; the command still worked
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return exit_status(reply)


def _input_lines(interactive: bool) -> Iterator[str]:
    """Lines typed (with readline editing and history) or piped in."""
    if not interactive:
        yield from (line.rstrip("\n") for line in sys.stdin)
        return
    try:
        import readline
    except ImportError:  # pragma: no cover - stdlib readline is missing on some builds
        readline = None  # type: ignore[assignment]
    history = os.path.expanduser(HISTORY_FILE)
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    try:
        while True:
            try:
                yield input("$ ")
            except EOFError:
                print()
                return
            except KeyboardInterrupt:
                print()
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.set_history_length(1000)
                readline.write_history_file(history)


def console_main(config_path: str) -> int:
    """`ipvswm console`: an interactive session (or commands piped on stdin). Returns 0, or
    with piped input the status of the last command that failed."""
    interactive = sys.stdin.isatty()
    try:
        conn, greeting = open_console(config_path)
    except (Unreachable, OSError) as exc:
        print(f"ipvswm: cannot reach the daemon: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if interactive:
        print("\n".join(line for line in greeting if line), flush=True)
    json_out = False
    worst = EXIT_OK
    try:
        for line in _input_lines(interactive):
            words = line.lower().split()
            if len(words) == 2 and words[0] == "format" and words[1] in ("json", "text"):
                # The wire stays JSON (it is the framing); `format` only changes the display.
                json_out = words[1] == "json"
                print(f"format {words[1]}", flush=True)
                continue
            reply = conn.send(line)
            print_reply(reply, json_out, sys.stdout, sys.stdout)
            sys.stdout.flush()
            if reply.get("status"):
                worst = exit_status(reply)
            if reply.get("close"):
                break
    except (Unreachable, OSError) as exc:
        print(f"ipvswm: connection lost: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        conn.close()
    return EXIT_OK if interactive else worst


NAMES_TIMEOUT = 2.0  # a TAB press must never hang on a daemon that does not answer
NAMES = {"hosts": ("show hosts", "hosts", "host"), "vs": ("show vs", "vss", "vs")}


def names_main(config_path: str, what: str) -> int:
    """`ipvswm ctl --names hosts|vs`: the running daemon's host or VS tags, one a line.

    For shell completion: silent on any failure (exit 2 when the daemon cannot be reached or
    does not answer within NAMES_TIMEOUT, 1 when it refuses), so a caller falls back quietly.
    """
    command, key, field = NAMES[what]
    try:
        endpoint = read_endpoint(config_path)
        sock = connect(endpoint, NAMES_TIMEOUT)
        conn = Connection(sock)
        try:
            sock.settimeout(NAMES_TIMEOUT)
            conn.start()
            reply = conn.send(command)
            with contextlib.suppress(OSError, Unreachable):
                conn.send("quit")
        finally:
            conn.close()
    except (Unreachable, OSError, ValueError):
        return EXIT_USAGE
    data = reply.get("data")
    items = data.get(key) if isinstance(data, dict) else None
    if not reply.get("ok") or not isinstance(items, list):
        return EXIT_FAILED
    tags = [item.get(field) for item in items if isinstance(item, dict)]
    print("\n".join(t for t in tags if isinstance(t, str)), flush=True)
    return EXIT_OK
