"""The real daemon with dns:// and exec: checks (issue 13 §3): weights follow real responders.

Addresses: DNS responders on 127.0.0.120-121, exec-checked hosts 127.0.0.122-123 (never
contacted: the program decides); virtual services in 192.0.2.0/24 (table entries only).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.dnsserver import DnsResponder
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration


def test_dns_check_on_a_udp_service(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    async def make(address: str) -> DnsResponder:
        responder = DnsResponder(address)
        await responder.start()
        return responder

    ns1 = farm.call(make("127.0.0.120"))
    ns2 = farm.call(make("127.0.0.121"))
    body = (
        "! ns 192.0.2.53:53 dns://www.example.test proto=udp,interval=0.2,timeout=0.5\n"
        f"ns1 127.0.0.120:{ns1.port} ns=10\n"
        f"ns2 127.0.0.121:{ns2.port} ns=20\n"
    )
    daemon = DaemonProcess(tmp_path, body, env=emu.env, options={"IPVSADM": str(emu.binary)})
    try:
        daemon.start()
        key1 = f"192.0.2.53:53 127.0.0.120:{ns1.port}"
        key2 = f"192.0.2.53:53 127.0.0.121:{ns2.port}"
        wait_weight(emu, key1, 10)
        wait_weight(emu, key2, 20)
        assert "-u 192.0.2.53:53" in emu.table_text()
        farm.call(ns1.set_mode("nxdomain"))
        wait_weight(emu, key1, 0)
        daemon.wait_log("rcode NXDOMAIN")
        farm.call(ns2.set_mode("silent"))
        wait_weight(emu, key2, 0)
        farm.call(ns1.set_mode("answer"))
        wait_weight(emu, key1, 10)
    finally:
        daemon.stop()
        farm.call(ns1.stop())
        farm.call(ns2.stop())


def test_exec_check_with_dynamic_weight(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    verdicts = tmp_path / "verdicts"
    verdicts.mkdir()
    for address in ("127.0.0.122", "127.0.0.123"):
        (verdicts / address).write_text("0")
    prog = tmp_path / "agent-check"
    prog.write_text(f'#!/bin/sh\nexit "$(cat {verdicts}/$1)"\n')
    prog.chmod(prog.stat().st_mode | stat.S_IXUSR)
    body = (
        "Check.Exec.MaxConcurrent=1\n"
        f"! app 192.0.2.80:80 exec:{prog} %a dynamic interval=0.2,timeout=5\n"
        "a1 127.0.0.122:80 app=40\n"
        "a2 127.0.0.123:80 app=40\n"
    )
    daemon = DaemonProcess(tmp_path, body, env=emu.env, options={"IPVSADM": str(emu.binary)})
    key1, key2 = "192.0.2.80:80 127.0.0.122:80", "192.0.2.80:80 127.0.0.123:80"
    try:
        daemon.start()
        wait_weight(emu, key1, 40)
        wait_weight(emu, key2, 40)
        (verdicts / "127.0.0.122").write_text("52")  # 50%
        wait_weight(emu, key1, 20)
        (verdicts / "127.0.0.123").write_text("1")  # failure
        wait_weight(emu, key2, 0)
        daemon.wait_log("exit 1")
        (verdicts / "127.0.0.122").write_text("0")  # full weight again
        wait_weight(emu, key1, 40)
        assert emu.weights()[key2] == 0
    finally:
        daemon.stop()
