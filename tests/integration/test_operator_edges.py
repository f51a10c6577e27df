"""Issue 15 items 6 and 7 against real processes: a closed pipe, console history, the pid file
after SIGTERM, and a port held by a program that is not ipvswm."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import ipvswm_command
from tests.support.daemon import run_cli
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator

pytestmark = pytest.mark.integration

BODY = "! www 192.0.2.30:80 -\nweb 127.0.0.130 www=10\n"


@pytest.fixture
def daemon(tmp_path: Path, emu: Emulator) -> Iterator[DaemonProcess]:
    with DaemonProcess.on_emulator(tmp_path, BODY, emu).running() as d:
        yield d


def test_ctl_json_into_a_closed_pipe_prints_no_traceback(daemon: DaemonProcess) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head` that already went: every write fails with EPIPE
    try:
        done = subprocess.run(
            [*ipvswm_command(), "ctl", "-c", str(daemon.config), "--json", "show", "hosts"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=daemon.env,
            timeout=30,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 0  # the command itself worked; only its reader went away


def test_console_history_numbers_the_operators_commands_from_one(daemon: DaemonProcess) -> None:
    done = subprocess.run(
        [*ipvswm_command(), "console", "-c", str(daemon.config)],
        input="show hosts\nhistory\n!1\n",
        capture_output=True,
        text=True,
        env=daemon.env,
        timeout=30,
        check=False,
    )
    assert "   1  show hosts\n   2  history" in done.stdout, done.stdout
    assert "format json" not in done.stdout


def test_pid_file_is_removed_after_sigterm(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path, BODY)
    pid_file = tmp_path / "ipvswm.pid"
    started = run_cli(
        d, "run", "-c", str(d.config), "--backend", "dry-run", "--pid-file", str(pid_file)
    )
    assert started.returncode == 0, started.stderr
    wait_until(lambda: "ipvswm running" in d.log_text(), 30, "the daemon to start")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, 30, "the daemon to exit")
    assert not pid_file.exists()


def test_a_port_held_by_another_program_is_named(tmp_path: Path, emu: Emulator) -> None:
    d = DaemonProcess.on_emulator(tmp_path, BODY, emu)
    listener = socket.create_server(("127.0.0.1", d.tcp_port))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        done = run_cli(d, "run", "--foreground", "-c", str(d.config))
    finally:
        listener.close()
    assert done.returncode == 1
    assert "already running" not in done.stderr
    assert f"127.0.0.1:{d.tcp_port} is held by another program" in done.stderr
    assert "SSH-2.0-OpenSSH_9.2" in done.stderr


def test_a_ramp_logs_its_start_and_end_at_level_1(tmp_path: Path, emu: Emulator) -> None:
    d = DaemonProcess(
        tmp_path,
        "! www 192.0.2.31:80 -\nramp 127.0.0.131 www=1000\n",
        env=emu.env,
        options={"IPVSADM": emu.binary, "Log.Level": "1"},
    )
    d.start()
    try:
        assert d.ctl("set", "host", "ramp", "off")[0] == 0
        offset = d.log_size()
        assert d.ctl("set", "host", "ramp", "on", "in", "3")[0] == 0
        # The end line, whether or not a stalled (loaded) daemon took any step in between.
        wait_until(lambda: "RAMPING -> ENABLED" in d.log_text(offset), 30, "the end of the ramp")
        lines = [line for line in d.log_text(offset).splitlines() if "host ramp: weight" in line]
        # Before: one line per step (34 for 5 s to 50); now the start and the summarised end.
        assert len(lines) == 2, lines
        assert "-> RAMPING" in lines[0] and "RAMPING -> ENABLED" in lines[1]
        assert "RAMPING -> RAMPING" not in d.log_text(offset)
    finally:
        d.stop()


def test_dump_options_shows_the_log_level_in_force_and_labelled_times(
    daemon: DaemonProcess,
) -> None:
    """Issue 15 item 11 against the real daemon: the file's key names, `log level N` in force."""
    code, reply = daemon.ctl("dump", "options")
    assert code == 0, reply
    lines = reply["lines"]
    assert isinstance(lines, list)
    assert "Log.Level = 5" in lines and f"DB = {daemon.db}" in lines
    assert daemon.ctl("log", "level", "2")[0] == 0
    _, reply = daemon.ctl("dump", "options")
    lines = reply["lines"]
    assert isinstance(lines, list)
    assert "Log.Level = 2  # set at run time by 'log level 2'; the file says 5" in lines
    _, status = daemon.ctl("dump", "status")
    started = [line for line in status["lines"] if line.startswith("started = ")]  # type: ignore[union-attr]
    assert len(started) == 1 and started[0].endswith("Z") and "T" in started[0], started
