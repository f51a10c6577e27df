"""`ipvswm top` in a real terminal (issue 15 item 2): tmux runs it against the real daemon; the
screen is read with `capture-pane`, keys are sent with `send-keys`. Waits on the screen's text.

Addresses: real servers on 127.0.0.165-127.0.0.166; VSs 192.0.2.65-66 (never contacted).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import ipvswm_command
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration


def test_top_shows_filters_sorts_and_quits(farm: ThreadedRealServers, tmp_path: Path) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is needed (.ci/run installs it)")
        pytest.skip("tmux not installed")
    emu = Emulator(tmp_path / "emu")
    web1, web2 = farm.start("127.0.0.165"), farm.start("127.0.0.166")
    port = free_port("127.0.0.1")
    daemon = DaemonProcess(
        tmp_path,
        "! www 192.0.2.65:80 /health\n! api 192.0.2.66:80 /health\n"
        f"web1 {web1.address}:{web1.port} www=100 api=7\n"
        f"web2 {web2.address}:{web2.port} www=50\n",
        env=emu.env,
        options={"IPVSADM": emu.binary, "Metrics.Listen": f"127.0.0.1:{port}"},
    )
    daemon.start()
    sock = str(tmp_path / "tmux.sock")
    done = tmp_path / "exit-status"
    command = " ".join([*ipvswm_command(), "top", "-c", str(daemon.config)])

    def tmux_run(*args: str) -> str:
        out = subprocess.run(
            [tmux, "-S", sock, *args], capture_output=True, text=True, timeout=30, check=True
        )
        return out.stdout

    def screen() -> str:
        return tmux_run("capture-pane", "-p", "-t", "top")

    env = {"TERM": "xterm-256color", "PATH": os.environ["PATH"]}
    subprocess.run(
        [
            tmux,
            "-S",
            sock,
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "150",
            "-y",
            "40",
            f"{command}; echo $? > {done}; sleep 60",
        ],
        env={**daemon.env, **env},
        check=True,
        timeout=30,
    )
    try:
        wait_until(
            lambda: "VS www" in (s := screen()) and "VS api" in s and s.count("ENABLED") == 3,
            30,
            "top to show both VSs with three ENABLED pairs",
            step=0.1,
        )
        tmux_run("send-keys", "-t", "top", "f")
        wait_until(lambda: "filter by VS" in screen(), 10, "the filter prompt", step=0.05)
        tmux_run("send-keys", "-t", "top", "api", "Enter")
        wait_until(
            lambda: "VS api" in (s := screen()) and "VS www" not in s and "filter: api" in s,
            10,
            "only VS api shown",
            step=0.05,
        )
        tmux_run("send-keys", "-t", "top", "s")
        wait_until(lambda: "sort: host" in screen(), 10, "the next sort key", step=0.05)
        web1.set_mode("failing")
        wait_until(
            lambda: any(
                "web1" in line and "AWAIT_PASS" in line and " fail " in line
                for line in screen().splitlines()
            ),
            15,
            "web1's failed check on the screen",
            step=0.1,
        )
        tmux_run("send-keys", "-t", "top", "q")
        wait_until(done.exists, 10, "top to exit on q", step=0.05)
        assert done.read_text().strip() == "0"
        assert "Traceback" not in screen()
    finally:
        subprocess.run([tmux, "-S", sock, "kill-server"], check=False, timeout=30)
        daemon.stop()


def test_top_ctrl_c_exits_cleanly(tmp_path: Path) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is needed (.ci/run installs it)")
        pytest.skip("tmux not installed")
    sock = str(tmp_path / "tmux.sock")
    done = tmp_path / "exit-status"
    port = free_port("127.0.0.1")  # nothing listens: top shows the error and keeps running
    command = " ".join([*ipvswm_command(), "top", "--url", f"http://127.0.0.1:{port}/status"])
    subprocess.run(
        [
            tmux,
            "-S",
            sock,
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "120",
            "-y",
            "30",
            f"{command} 2>&1; echo $? > {done}; sleep 60",
        ],
        env={**os.environ, "TERM": "xterm-256color"},
        check=True,
        timeout=30,
    )

    def screen() -> str:
        return subprocess.run(
            [tmux, "-S", sock, "capture-pane", "-p", "-t", "top"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout

    try:
        wait_until(lambda: "cannot read" in screen(), 30, "top to say it cannot read", step=0.1)
        subprocess.run([tmux, "-S", sock, "send-keys", "-t", "top", "C-c"], check=True, timeout=30)
        wait_until(done.exists, 10, "top to exit on Ctrl-C", step=0.05)
        assert done.read_text().strip() == "0"
        assert "Traceback" not in screen()
    finally:
        subprocess.run([tmux, "-S", sock, "kill-server"], check=False, timeout=30)
