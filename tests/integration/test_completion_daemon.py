"""Issue 15 item 4: bash completion takes host and VS tags from the running daemon, and falls back
to the config file, silently, when no daemon answers. Real daemon, real bash `complete` function."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import REPO
from tests.support.daemon import DaemonProcess
from tests.support.daemon import ipvswm_command
from tests.support.emulator import Emulator

pytestmark = pytest.mark.integration

# What the daemon runs; the file the operator names with -c later says otherwise (edited since,
# not reloaded): a completion from the daemon offers the daemon's tags, not the file's.
RUNNING = "! shop 192.0.2.40:80 -\n! blog 192.0.2.41:80 -\nweb1 127.0.0.140 shop=10 blog=10\n"
EDITED = "! newvs 192.0.2.42:80 -\nnewhost 127.0.0.141 newvs=10\n"


@pytest.fixture
def daemon(tmp_path: Path, emu: Emulator) -> Iterator[DaemonProcess]:
    with DaemonProcess.on_emulator(tmp_path, RUNNING, emu).running() as d:
        yield d


def _bin_dir(tmp: Path) -> Path:
    """A PATH entry with an `ipvswm` that runs the package under test."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "ipvswm"
    command = " ".join(f"'{part}'" for part in ipvswm_command())
    wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    return bin_dir


def complete(line: str, tmp: Path, env: dict[str, str]) -> tuple[list[str], str]:
    """COMPREPLY of the `ipvswm` completion for `line` (the cursor at its end), and stderr."""
    words = line.split(" ")
    quoted = " ".join("'" + w + "'" for w in words)
    script = (
        f"source '{REPO / 'contrib' / 'bash-completion' / 'ipvswm'}'\n"
        f"COMP_WORDS=({quoted})\nCOMP_CWORD={len(words) - 1}\n"
        f"_ipvswm\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
    )
    bash = shutil.which("bash")
    assert bash is not None
    path = f"{_bin_dir(tmp)}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [bash, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**env, "PATH": path, "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=tmp,
    )
    return [w for w in done.stdout.split("\n") if w], done.stderr


def test_tags_come_from_the_running_daemon_then_from_the_file(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    daemon.write_config(EDITED, {"Config.AutoCheck": "0"})  # the daemon does not reload it
    c = f"-c {daemon.config}"
    env = daemon.env

    names = subprocess.run(
        [*ipvswm_command(), "ctl", "-c", str(daemon.config), "--names", "vs"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert (names.returncode, names.stdout.split(), names.stderr) == (0, ["shop", "blog"], "")

    assert complete(f"ipvswm ctl {c} set host ", tmp_path, env) == (["web1"], "")
    assert complete(f"ipvswm ctl {c} show vs ", tmp_path, env) == (["shop", "blog"], "")
    assert complete(f"ipvswm ctl {c} show vs b", tmp_path, env) == (["blog"], "")
    assert complete(f"ipvswm top {c} --vs ", tmp_path, env) == (["shop", "blog"], "")

    daemon.stop()
    # No daemon: the file's tags, and not a word on the terminal.
    assert complete(f"ipvswm ctl {c} set host ", tmp_path, env) == (["newhost"], "")
    assert complete(f"ipvswm ctl {c} show vs ", tmp_path, env) == (["newvs"], "")
    quiet = subprocess.run(
        [*ipvswm_command(), "ctl", "-c", str(daemon.config), "--names", "hosts"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (2, "", "")
