"""Start the real `ipvswm run` process for integration tests and talk to it.

Readiness is awaited on the daemon's own log line and socket, never slept for.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.emulator import Emulator

REPO = Path(__file__).resolve().parents[2]


def ipvswm_command() -> list[str]:
    """How to run the CLI of the package under test (the venv's interpreter)."""
    return [sys.executable, "-m", "ipvswm.cli"]


_HANDED_OUT: set[int] = set()


def free_port(address: str) -> int:
    """A TCP port that was free on `address` a moment ago, and never handed out before in this
    run: Linux may give bind(0) the same port twice in a row once the first socket is closed (a
    daemon's metrics listener and its console got one port, and the test spoke to the console)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02
) -> None:
    """Poll a cheap predicate until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class DaemonProcess:
    """One `ipvswm run --foreground` child process with its config, log, DB and sockets in `tmp`."""

    def __init__(
        self,
        tmp: Path,
        body: str,
        *,
        env: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.config = tmp / "ipvswm.conf"
        self.log = tmp / "ipvswm.log"
        self.db = tmp / "state.db"
        self.sock = tmp / "ipvswm.sock"
        self.fifo = tmp / "ipvswm.fifo"
        self.stderr = tmp / "stderr.txt"
        self.env = {**os.environ, **(env or {})}
        self.tcp_port = free_port("127.0.0.1")
        self.options = {
            "Management.Socket.Port": str(self.tcp_port),
            "Management.Socket.Path": str(self.sock),
            "Management.Fifo.Path": str(self.fifo),
            "Log.Path": str(self.log),
            "Log.Level": "5",
            "DB": str(self.db),
            "Config.CheckPeriod": "0.2",
            "IPVS.ResyncPeriod": "1",
            "Check.Interval": "0.3",
            "Check.Timeout.Connect": "0.3",
            "Check.Timeout.Response": "0.5",
            **(options or {}),
        }
        self.body = body
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config(body)

    @classmethod
    def on_emulator(
        cls, tmp: Path, body: str, emu: Emulator, options: dict[str, str] | None = None
    ) -> DaemonProcess:
        """A daemon whose kernel table is the ipvsadm emulator `emu`'s (not started)."""
        return cls(tmp, body, env=emu.env, options={"IPVSADM": emu.binary, **(options or {})})

    def write_config(self, body: str, options: dict[str, str] | None = None) -> None:
        """Write the config atomically (rename), so the watcher never sees a partial file."""
        if options:
            self.options.update(options)
        self.body = body
        text = "".join(f"{k}={v}\n" for k, v in self.options.items()) + body
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.config)

    # --- process ---------------------------------------------------------------------------

    def start(self, timeout: float = 60.0, extra: tuple[str, ...] = ()) -> DaemonProcess:
        """Start and wait until it logs that it is running and its console answers."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.stderr, "ab") as err:
            self.proc = subprocess.Popen(
                [*ipvswm_command(), "run", "--foreground", "-c", str(self.config), *extra],
                env=self.env,
                stdout=err,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        try:
            wait_until(
                lambda: "ipvswm running" in self.log_text(offset) or self.proc_exited(),
                timeout,
                "the daemon to start",
            )
        except AssertionError:
            # A daemon that did not start in time must not outlive the test (it would go on
            # polling its table and holding its ports for the rest of the run).
            self.proc.kill()
            self.proc.wait()
            raise
        if self.proc_exited():
            raise AssertionError(f"daemon exited: {self.stderr.read_text()}\n{self.log_text()}")
        return self

    @contextlib.contextmanager
    def running(self) -> Iterator[DaemonProcess]:
        """Started here, stopped at the end (unless the test stopped it already)."""
        self.start()
        try:
            yield self
        finally:
            if self.proc is not None:
                self.stop()

    def proc_exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send a signal and wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    # --- observation -----------------------------------------------------------------------

    def log_text(self, offset: int = 0) -> str:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 10.0, offset: int = 0) -> None:
        wait_until(lambda: text in self.log_text(offset), timeout, f"log line {text!r}")

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    # --- console ---------------------------------------------------------------------------

    def ctl(self, *words: str, timeout: float = 30.0) -> tuple[int, dict[str, object]]:
        """Run `ipvswm ctl --json` and return its exit code and JSON reply."""
        done = subprocess.run(
            [*ipvswm_command(), "ctl", "-c", str(self.config), "--json", *words],
            env=self.env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        out = done.stdout.decode()
        try:
            reply = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        except json.JSONDecodeError:
            reply = {"raw": out}
        if done.returncode == 2:
            reply.setdefault("stderr", done.stderr.decode())
        return done.returncode, reply

    def command(self, line: str, timeout: float = 10.0) -> str:
        """Send one line over the Unix socket in text mode; return the reply up to the prompt."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.sock))
            _read_until(sock, b"$ ")  # the greeting and help
            sock.sendall(line.encode() + b"\n")
            return _read_until(sock, b"\n$ ").decode("utf-8", "replace")


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while not data.endswith(marker):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data[: -len(marker)] if data.endswith(marker) else data


# --- helpers added for the console tests (tests/integration/test_console_daemon.py) -----------


def run_cli(
    daemon: DaemonProcess, *args: str, timeout: float = 30.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ipvswm ARGS…` (no -c added) with the daemon's environment; never raises on exit."""
    return subprocess.run(
        [*ipvswm_command(), *args],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


def dump_state(daemon: DaemonProcess) -> str:
    """`ipvswm dump -c CONFIG`: the persistent state as text."""
    done = run_cli(daemon, "dump", "-c", str(daemon.config))
    assert done.returncode == 0, done.stderr
    return done.stdout


class ConsoleSession:
    """A text-mode console session over TCP or the Unix socket; the greeting is read on open."""

    PROMPT = b"$ "

    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self._buf = b""
        self.greeting = self._read_until(self.PROMPT).decode("utf-8", "replace")

    @classmethod
    def tcp(cls, port: int, address: str = "127.0.0.1", timeout: float = 10.0) -> ConsoleSession:
        return cls(socket.create_connection((address, port), timeout), timeout)

    @classmethod
    def unix(cls, path: Path | str, timeout: float = 10.0) -> ConsoleSession:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(path))
        return cls(sock, timeout)

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"console closed before {marker!r}: {self._buf!r}")
            self._buf += chunk
        head, _, self._buf = self._buf.partition(marker)
        return head + marker

    def send_line(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + b"\n")

    def reply(self) -> str:
        """The next reply, up to (without) its prompt."""
        raw = self._read_until(b"\n" + self.PROMPT)
        return raw[: -len(self.PROMPT)].decode("utf-8", "replace")

    def send(self, line: str | bytes) -> str:
        """Send one line; its reply without the prompt (a reply with no lines gives '')."""
        self.send_line(line)
        if self._buf.startswith(self.PROMPT) or self._fill_startswith_prompt():
            self._buf = self._buf[len(self.PROMPT) :]
            return ""
        return self.reply()

    def _fill_startswith_prompt(self) -> bool:
        while len(self._buf) < len(self.PROMPT):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"console closed: {self._buf!r}")
            self._buf += chunk
        return self._buf.startswith(self.PROMPT)

    def read_to_eof(self) -> str:
        """Everything until the daemon closes the session."""
        data, self._buf = self._buf, b""
        while chunk := self.sock.recv(65536):
            data += chunk
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ConsoleSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
