"""`ipvswm demo` (what `make demo` runs) starts, shows the table changing, and stops cleanly."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.daemon import ipvswm_command

pytestmark = pytest.mark.integration


def test_demo_runs_its_story_and_exits_cleanly() -> None:
    done = subprocess.run(
        [*ipvswm_command(), "demo", "--duration", "6.5"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr
    assert "console: socat - TCP:127.0.0.1:" in out
    assert "IPVS table (dry-run):" in out
    assert "weight 100   ENABLED" in out  # the healthy servers came up
    assert ">>> web2 starts failing its health check" in out
    after = out.split(">>> web2 starts failing its health check", 1)[1]
    assert "weight   0   AWAIT_PASS" in after  # and loses its weight
    assert "the daemon left the (dry-run) table as it was" in out
