"""`ipvswm run` without --foreground: detaches, writes its pid file, and still finds its config."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import ipvswm_command
from tests.support.daemon import wait_until

pytestmark = pytest.mark.integration


def config_text(tmp: Path, weight: int) -> str:
    return (
        "IPVS.Backend=dry-run\n"
        "Management.Socket.Port=0\n"
        f"Management.Socket.Path={tmp / 'sock'}\n"
        "Management.Fifo.Path=\n"
        f"Log.Path={tmp / 'log'}\n"
        f"DB={tmp / 'db'}\n"
        "Config.AutoCheck=0\n"
        "! www 192.0.2.70:80 -\n"
        f"web1 127.0.0.115:8080 www={weight}\n"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_detached_daemon_reloads_its_relative_config_and_stops(tmp_path: Path) -> None:
    (tmp_path / "ipvswm.conf").write_text(config_text(tmp_path, 5))
    log = tmp_path / "log"
    done = subprocess.run(
        [*ipvswm_command(), "run", "-c", "ipvswm.conf", "--pid-file", "ipvswm.pid"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pid_file = tmp_path / "ipvswm.pid"
    wait_until(pid_file.exists, 10, "the pid file")
    wait_until(lambda: pid_file.read_text().endswith("\n"), 10, "the whole pid file")
    pid = int(pid_file.read_text())
    try:
        wait_until(lambda: "ipvswm running" in read(log), 10, "the daemon to run")
        assert "-w 5" in read(log)  # check `-`: the configured weight at once
        (tmp_path / "ipvswm.conf").write_text(config_text(tmp_path, 7))
        os.kill(pid, signal.SIGHUP)
        wait_until(lambda: "-w 7" in read(log), 10, "the reloaded weight applied")
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), 10, "the daemon to exit")
    assert "leaving the IPVS table as it is" in read(log)


def read(path: Path) -> str:
    """The file's text, or "" while it does not exist yet."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
