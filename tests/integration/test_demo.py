"""`ipvswm demo` (what `make demo` runs) starts, shows the table changing, and stops cleanly."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.support.daemon import ipvswm_command

pytestmark = pytest.mark.integration


def test_demo_runs_its_story_and_exits_cleanly() -> None:
    # Long enough for the whole story: failure, recovery, maintenance, ramp, sorry server (30 s).
    done = subprocess.run(
        [*ipvswm_command(), "demo", "--duration", "33"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "console: socat - TCP:127.0.0.1:" in out
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/", out)
    assert "top:     ipvswm top -c " in out
    assert "IPVS table (dry-run):" in out
    assert "VS www  TCP 192.0.2.10:80" in out or "VS www  " in out
    assert re.search(r"-> web1 +127\.0\.0\.2:\d+ +weight 100   ENABLED", out)
    # A host on two VSs has one state per VS: its api pair (weight 10) never shows www's 100.
    assert re.search(r"-> web1 +127\.0\.0\.2:\d+ +weight  10   ENABLED", out)
    assert "applying 100" not in "".join(line for line in out.splitlines() if "weight  10" in line)
    assert ">>> web2 starts failing its health check" in out
    after = out.split(">>> web2 starts failing its health check", 1)[1]
    assert re.search(r"-> web2 +127\.0\.0\.3:\d+ +weight   0   AWAIT_PASS", after)
    # Each scripted console command is echoed before its effect, with the daemon's reply.
    maint = out.split("$ set host web1 off reason maintenance", 1)
    assert len(maint) == 2, out
    assert re.search(r"-> web1 +127\.0\.0\.2:\d+ +weight   0   DISABLED", maint[1])
    assert "$ set host web1 on reason maintenance in 5" in maint[1]
    sorry = out.split("its sorry server 'sorry'", 1)
    assert len(sorry) == 2, out
    assert re.search(r"-> sorry +127\.0\.0\.5:\d+ +weight +\d+   SORRY SERVER", sorry[1])
    assert "the daemon left the (dry-run) table as it was" in out
