"""Fuzz the console of the real daemon (issue 6): random bytes and near-miss commands over TCP.

The fuzz daemon is its own (its state must not move while the test runs): real servers on
127.0.0.127 and 127.0.0.128, virtual services in 192.0.2.0/24 (never contacted: they only exist in
the emulated table). `IPVSWM_FUZZ_SEED` picks the seed.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvswm.console.command_types import Admin
from ipvswm.console.command_types import Quit
from ipvswm.console.command_types import Wait
from ipvswm.console.command_types import WaitFor
from ipvswm.console.grammar import parse
from tests.support.daemon import ConsoleSession
from tests.support.daemon import DaemonProcess
from tests.support.daemon import dump_state
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import table_weights
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

# Generous check timeouts: a loaded 2-core machine must not fail a check by accident.
OPTIONS = {"Check.Timeout.Connect": "1", "Check.Timeout.Response": "2"}

# --- fuzz -------------------------------------------------------------------------------------

FUZZ_HOSTS = ("web1", "web2")
GHOSTS = ("nosuch", "WEB1", "web", "web1x", "Web2", "*", "-")
TEMPLATES = (
    "show vs", "show vs {vs}", "show hosts", "show host {host}", "show host {host} in vs {vs}",
    "show hosts {host},{host} for {vs}", "show checks", "dump status", "dump options",
    "dump checkers", "dump host {host}", "dump hosts", "dump vs {vs}", "help", "help {word}",
    "h", "?", "history", "!", "!{n}", "config diff", "config check", "config reload",
    "format json", "format text", "log level 5", "set host {ghost} off",
    "set host {ghost} on in {n}", "set host {ghost} off for vs {vs} reasons {word},{word}",
    "set host {ghost} on reasons *", "set host {ghost} weight {n}",
    "set host {ghost} weight default for vs {vs}", "wait host {host} up timeout 0.2",
    "wait host {ghost} down", "wait host {host} quiescent", "quit", "exit",
)  # fmt: skip
WORDS = (
    "show", "set", "host", "hosts", "vs", "on", "off", "for", "in", "reason", "reasons", "weight",
    "default", "wait", "up", "quiescent", "timeout", "dump", "status", "checkers", "format",
    "json", "text", "log", "level", "help", "history", "config", "diff", "check", ",", "*", "!",
    "0", "-1", "1e9", "99999999999", "65536", "web1,", ",,", "www,api,", "'", '"', "\\", "%s",
    "{}", "ü", "\u2028", "\x00", "\x1b[A", "\t",
)  # fmt: skip
NUMBERS = ("0", "1", "7", "-1", "65535", "65536", "0.5", "1e3", "99999999999", "3s", "nan")
TELNET = (b"\xff\xfb\x01", b"\xff\xfd\x03", b"\xff\xf4\xff\xfd\x06")


def near_miss(rng: random.Random) -> str:
    """A console command with a few random edits."""
    line = rng.choice(TEMPLATES).format_map(
        _Picker(
            rng,
            host=FUZZ_HOSTS,
            vs=("www", "api", "nosuch"),
            ghost=GHOSTS,
            word=WORDS,
            n=NUMBERS,
        )
    )
    words = line.split(" ")
    for _ in range(rng.randrange(4)):
        i = rng.randrange(len(words))
        edit = rng.randrange(7)
        if edit == 0:
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].swapcase()
        elif edit == 1 and len(words) > 1:
            del words[i]
        elif edit == 2:
            words.insert(i, words[i])
        elif edit == 3:
            words[i] = rng.choice(WORDS)
        elif edit == 4 and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif edit == 5:
            cut = rng.randrange(len(words[i]) + 1)
            words[i] = words[i][:cut] + rng.choice(" \t,;#=!*\x7f\u00a0") + words[i][cut:]
        else:
            words = words[: i + 1]
    return rng.choice(("", " ", "\t")) + rng.choice((" ", "  ", "\t")).join(words)


class _Picker(dict[str, str]):
    """str.format_map helper: every `{name}` is a fresh random choice."""

    def __init__(self, rng: random.Random, **choices: tuple[str, ...]) -> None:
        super().__init__()
        self.rng = rng
        self.choices = choices

    def __missing__(self, key: str) -> str:
        return self.rng.choice(self.choices[key])


def random_input(rng: random.Random) -> bytes:
    """Random bytes, a near-miss command, or a mix (possibly several lines)."""
    kind = rng.randrange(20)
    if kind < 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    if kind == 4:
        return rng.choice((b"a", b"show ", "\u00e9".encode())) * rng.randrange(1000, 3000)
    if kind < 7:
        return rng.choice(TELNET) + near_miss(rng).encode()
    if kind < 10:
        return b"\r\n".join(near_miss(rng).encode() for _ in range(rng.randrange(1, 5)))
    if kind < 12:
        text = near_miss(rng).encode()
        cut = rng.randrange(len(text) + 1)
        return text[:cut] + bytes(rng.randrange(256) for _ in range(rng.randrange(8))) + text[cut:]
    return near_miss(rng).encode("utf-8")


def lines_of(payload: bytes) -> list[str | None]:
    """The lines the console will see (None: not a usable line), as its splitter cuts them."""
    out: list[str | None] = []
    for raw in payload.split(b"\n"):
        raw = raw.rstrip(b"\r")
        try:
            out.append(raw.decode("utf-8") if len(raw) <= 4096 else None)
        except UnicodeDecodeError:
            out.append(None)
    return out


def closes_session(line: str) -> bool:
    return line.strip() == "\x04" or isinstance(parse(" ".join(line.split())), Quit)


def changes_state(line: str) -> bool:
    """Whether the daemon's state could legitimately change (or a wait could block long)."""
    command = parse(" ".join(line.split()))
    if isinstance(command, Admin):
        return command.event.host in FUZZ_HOSTS
    if isinstance(command, Wait):
        return command.host in FUZZ_HOSTS and command.until is WaitFor.DOWN
    return False


def fuzz_once(port: int, payload: bytes) -> tuple[str, bool]:
    """One session: greeting, the payload (and a `quit` unless it closes the session itself).
    Returns the output and whether the payload was expected to close the session."""
    closing = any(line is not None and closes_session(line) for line in lines_of(payload))
    with ConsoleSession.tcp(port, timeout=15) as con:
        con.sock.sendall(payload + (b"\n" if closing else b"\nquit\n"))
        try:
            return con.read_to_eof(), closing
        except ConnectionResetError:
            # The daemon closed with our later lines unread: only after a quit or ^D.
            assert closing, f"connection reset on {payload!r}"
            return "", closing


@pytest.fixture
def fuzz_daemon(tmp_path: Path) -> Iterator[tuple[DaemonProcess, Emulator]]:
    emu = Emulator(tmp_path / "emu")
    with ThreadedRealServers() as farm:
        web1, web2 = farm.start("127.0.0.127"), farm.start("127.0.0.128")
        body = (
            "! www 192.0.2.22:80 /health\n! api 192.0.2.23:443 tcp://\n"
            f"web1 {web1.address}:{web1.port} www=10 api=5\n"
            f"web2 {web2.address}:{web2.port} www=20\n"
        )
        daemon = DaemonProcess(
            tmp_path, body, env=emu.env, options={"IPVSADM": emu.binary, **OPTIONS}
        )
        daemon.start()
        try:
            want = {
                f"192.0.2.22:80 {web1.address}:{web1.port}": 10,
                f"192.0.2.23:443 {web1.address}:{web1.port}": 5,
                f"192.0.2.22:80 {web2.address}:{web2.port}": 20,
            }
            wait_until(lambda: table_weights(emu.table_text()) == want, 10, "all pairs up")
            yield daemon, emu
        finally:
            if daemon.proc is not None:
                daemon.stop()


def decided_state(daemon: DaemonProcess) -> str:
    """The stored state (every field of it is a decision or a decision's input: the kernel's
    weights are the kernel sync's, not stored per pair)."""
    return dump_state(daemon)


def test_fuzz_the_real_daemon(fuzz_daemon: tuple[DaemonProcess, Emulator]) -> None:
    daemon, emu = fuzz_daemon
    seed = int(os.environ.get("IPVSWM_FUZZ_SEED", "20240606"))
    rng = random.Random(seed)
    table, state = emu.table_text(), decided_state(daemon)
    budget, wanted = 20.0, 3000
    started = time.monotonic()
    tried = closed = 0
    with ConsoleSession.tcp(daemon.tcp_port) as watcher:
        while tried < wanted and time.monotonic() - started < budget:
            payload = random_input(rng)
            if any(line is not None and changes_state(line) for line in lines_of(payload)):
                continue
            out, closing = fuzz_once(daemon.tcp_port, payload)
            tried += 1
            closed += closing
            assert "internal error" not in out, (payload, out)
            if not closing:
                assert out.endswith("bye\n") or '"command":"quit"' in out, (payload, out)
            if tried % 20 == 0:
                assert watcher.send("show vs").startswith("www tcp:192.0.2.22:80 "), payload
    elapsed = time.monotonic() - started
    print(f"fuzz: seed {seed}: {tried} inputs ({closed} closing) in {elapsed:.1f}s")
    assert tried >= 100, f"only {tried} inputs in {elapsed:.1f}s"
    assert not daemon.proc_exited()
    assert emu.table_text() == table
    assert decided_state(daemon) == state
    log = daemon.log_text()
    assert "Traceback" not in log and "failed" not in log, log[-2000:]
