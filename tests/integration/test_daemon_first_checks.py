"""First checks at once (issue 16 goal 2) with the real daemon and the emulator.

Check.Interval is an hour: a weight set here came from a first check run at once, not from a
check spread over the interval. Real servers on 127.0.0.172-174; VSs in 192.0.2.0/24.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

WAIT = 30.0  # a readiness bound far below the hour of Check.Interval


def test_start_up_and_a_reload_check_new_pairs_at_once(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    servers = [farm.start(f"127.0.0.{172 + i}") for i in range(3)]
    rs = [f"{s.address}:{s.port}" for s in servers]

    def body(hosts: int) -> str:
        lines = ["! www 192.0.2.1:80 /health"]
        lines += [f"web{i + 1} {rs[i]} www=10" for i in range(hosts)]
        return "\n".join(lines) + "\n"

    daemon = DaemonProcess(
        tmp_path,
        body(2),
        env=emu.env,
        options={
            "IPVSADM": str(emu.binary),
            "Check.Interval": "3600",
            "Ramping.TriggerTime": "86400",
        },
    )
    daemon.start()
    try:
        for i in range(2):
            wait_weight(emu, f"192.0.2.1:80 {rs[i]}", 10, WAIT)
        daemon.write_config(body(3))  # a pair the reload adds
        wait_weight(emu, f"192.0.2.1:80 {rs[2]}", 10, WAIT)
    finally:
        daemon.stop()
