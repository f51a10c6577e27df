"""A cold start does not flap the sorry server (issue 11): with no state and a kernel that does not
serve the VS, its sorry server is decided once the first round of checks has reported.

Addresses: real servers on 127.0.0.171, .173, .174; the VS in 192.0.2.0/24 only exists in the
emulator.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import table_weights
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

VIP = "192.0.2.41:80"
OPTIONS = {"Check.Timeout.Connect": "1", "Check.Timeout.Response": "2"}


def _rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


def _sorry_ops(emu: Emulator, sorry: str) -> list[str]:
    """Every change the daemon asked of the kernel that names the sorry server."""
    found: list[str] = []
    for call in emu.changing_invocations():
        lines = call.batch_lines() if call.command in ("-R", "--restore") else [" ".join(call.argv)]
        found.extend(line for line in lines if sorry in line)
    return found


@pytest.mark.parametrize("mode", ["healthy", "refusing"])
def test_a_cold_start_decides_the_sorry_server_once(tmp_path: Path, mode: str) -> None:
    emu = Emulator(tmp_path / "emu")
    emu.require_emulator()
    with ThreadedRealServers() as farm:
        web1 = farm.start("127.0.0.171", mode=mode)
        web2 = farm.start("127.0.0.173", mode=mode)
        sorry = farm.start("127.0.0.174")
        body = (
            f"! www {VIP} /health sorry_server=sorry\n"
            f"web1 {_rs(web1)} www=10\nweb2 {_rs(web2)} www=10\nsorry {_rs(sorry)}\n"
        )
        daemon = DaemonProcess.on_emulator(tmp_path, body, emu, OPTIONS)
        with daemon.running():

            def weights() -> dict[str, int]:
                return table_weights(emu.table_text())

            if mode == "healthy":
                wait_until(
                    lambda: (
                        weights().get(f"{VIP} {_rs(web1)}") == 10
                        and weights().get(f"{VIP} {_rs(web2)}") == 10
                    ),
                    20,
                    "both servers at weight 10",
                )
                assert f"{VIP} {_rs(sorry)}" not in weights()
                assert _sorry_ops(emu, _rs(sorry)) == []  # never added, never removed
            else:
                wait_until(
                    lambda: weights().get(f"{VIP} {_rs(sorry)}") == 1, 20, "the sorry server in"
                )
                daemon.wait_log("sorry server", timeout=10)
                assert len(_sorry_ops(emu, _rs(sorry))) == 1  # added once, after the round
