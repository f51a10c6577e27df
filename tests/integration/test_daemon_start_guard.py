"""`ipvswm run` with a file that would empty the table refuses to start (issue 10, start-up
guard): the kernel is untouched, one ERROR line says what would go and how to force it.

Hosts on 127.0.0.x with check `-` are never contacted; VSs only exist in the emulated table.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import ipvswm_command
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight

pytestmark = pytest.mark.integration

TWO_VS = (
    "! www 192.0.2.80:80 -\n"
    "! api 192.0.2.81:443 -\n"
    "web1 127.0.0.81:80 www=10 api=10\n"
    "web2 127.0.0.82:80 www=10 api=10\n"
)


def run_once(daemon: DaemonProcess, *extra: str) -> subprocess.CompletedProcess[str]:
    """`ipvswm run --foreground` expected to exit by itself (refused)."""
    return subprocess.run(
        [*ipvswm_command(), "run", "--foreground", "-c", str(daemon.config), *extra],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def managed_site(tmp_path: Path, emu: Emulator) -> DaemonProcess:
    """A daemon that managed both VSs, stopped (the DB says what it manages)."""
    daemon = DaemonProcess(tmp_path, TWO_VS, env=emu.env, options={"IPVSADM": str(emu.binary)})
    daemon.start()
    wait_weight(emu, "192.0.2.80:80 127.0.0.82:80", 10)
    wait_weight(emu, "192.0.2.81:443 127.0.0.82:80", 10)
    assert daemon.stop() == 0
    return daemon


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            "",
            "every virtual service it manages in the kernel"
            " (tcp:192.0.2.80:80, tcp:192.0.2.81:443)",
        ),
        (
            "! www 192.0.2.80:80 -\nweb1 127.0.0.81:80 www=10\n",
            "3 of the 4 destinations of the virtual services it manages (75%, more than"
            " Config.MaxRemovedShare=0.5), deleting virtual service(s) tcp:192.0.2.81:443",
        ),
    ],
    ids=["no-vs", "most-pairs"],
)
def test_a_start_that_would_empty_the_table_is_refused_and_forced_on_purpose(
    tmp_path: Path, emu: Emulator, body: str, said: str
) -> None:
    daemon = managed_site(tmp_path, emu)
    before = emu.table_text()
    if not emu.real:
        emu.clear_log()
    daemon.write_config(body)
    offset = daemon.log_size()
    done = run_once(daemon)
    assert done.returncode == 1, done.stderr
    text = daemon.log_text(offset)
    assert f"ERROR: cannot start: {daemon.config}: it would remove {said}" in text, text
    assert "the kernel table is left as it is; to start anyway: ipvswm run --force" in text
    assert emu.table_text() == before
    if not emu.real:
        assert emu.changing_invocations() == []
    # On purpose: --force starts, and the file is applied.
    daemon.start(extra=("--force",))
    try:
        wait_weight(emu, "192.0.2.81:443 127.0.0.81:80", None)
        assert "start-up forced (--force): it would remove" in daemon.log_text(offset)
    finally:
        daemon.stop()


def test_a_start_that_removes_little_is_not_refused(tmp_path: Path, emu: Emulator) -> None:
    daemon = managed_site(tmp_path, emu)
    daemon.write_config(TWO_VS.replace(" api=10\nweb2", "\nweb2"))  # 1 of 4 destinations goes
    daemon.start()
    try:
        wait_weight(emu, "192.0.2.81:443 127.0.0.81:80", None)
        wait_weight(emu, "192.0.2.81:443 127.0.0.82:80", 10)
    finally:
        daemon.stop()
