"""Agent feedback in the real daemon on the ipvsadm emulator (issue 13 §2): a real agent on
loopback changes its answer and the kernel weights follow; two VSs share one agent poll.

Addresses: real servers and agents on 127.0.0.235-127.0.0.238; the VSs in 192.0.2.0/24.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_daemon_metrics import Scraper
from tests.integration.test_daemon_metrics import pair
from tests.integration.test_daemon_metrics import value
from tests.support.agentserver import AgentServer
from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

# A scenario of many sequential steps against a real daemon: on a loaded 2-core machine it has
# taken 100 s, close to the suite's 120 s per test; the bound is for hangs, not a time budget.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


def test_the_kernel_weight_follows_the_agent(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    web1, web2 = farm.start("127.0.0.235"), farm.start("127.0.0.236")
    with AgentServer("127.0.0.235", answer="75%") as agent:
        body = (
            f"! www 192.0.2.70:80 /health agent={agent.port},agent_interval=0.1\n"
            f"web1 {rs(web1)} www=100\n"
            f"web2 {rs(web2)} www=40 agent=off\n"
        )
        port = free_port("127.0.0.1")
        options = {"IPVSADM": str(emu.binary), "Metrics.Listen": f"127.0.0.1:{port}"}
        daemon = DaemonProcess(tmp_path, body, env=emu.env, options=options)
        daemon.start()
        scraper = Scraper(port)
        key1, key2 = f"192.0.2.70:80 {rs(web1)}", f"192.0.2.70:80 {rs(web2)}"
        try:
            wait_weight(emu, key1, 75)  # ceil(100 x 75 / 100)
            wait_weight(emu, key2, 40)
            agent.answer("drain # deploy 42")
            wait_weight(emu, key1, 0)
            daemon.wait_log("vs www host web1: weight 75 -> 0, ENABLED -> DRAINING (agent: drain")
            code, reply = daemon.ctl("show", "vs", "www")
            assert code == 0 and "DRAINING" in str(reply), reply
            wait_until(
                lambda: pair(scraper.status(), "www", "web1")["phase"] == "DRAINING", 10, "/status"
            )
            drained = value(
                scraper.metrics(), "ipvswm_pair_phase", vs="www", host="web1", phase="DRAINING"
            )
            assert drained == 1
            agent.answer("up")
            wait_weight(emu, key1, 100)
            agent.answer("60%")
            wait_weight(emu, key1, 60)
            agent.stop()  # unreachable: no opinion, the health check alone decides
            wait_weight(emu, key1, 100)
            daemon.wait_log("no answer (connect refused); the checks alone decide")
            web1.set_mode("failing")  # and the health check still takes it out
            wait_weight(emu, key1, 0)
            web1.set_mode("healthy")
            wait_weight(emu, key1, 100)
        finally:
            assert daemon.stop() == 0
    log = daemon.log_text()
    assert "agent 127.0.0.235" in log
    assert log.count("no answer (connect refused); the checks") == 1  # once per episode
    assert "DRAINING -> ENABLED (agent: up)" in log


def test_two_vss_with_the_same_host_and_agent_port_share_one_poll(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    web = farm.start("127.0.0.237")
    with AgentServer("127.0.0.237") as agent:
        # Every poll is held open until its 0.5 s deadline; a second poller of the same agent
        # would connect within the first 0.1 s and hold a second connection alongside.
        agent.hold()
        body = (
            f"! www 192.0.2.71:80 /health agent={agent.port},agent_interval=0.1,timeout=0.5\n"
            f"! api 192.0.2.71:81 tcp:// agent={agent.port},agent_interval=0.1,timeout=0.5\n"
            f"web1 {rs(web)} www=100 api=10\n"
        )
        daemon = DaemonProcess(tmp_path, body, env=emu.env, options={"IPVSADM": str(emu.binary)})
        daemon.start()
        www, api = f"192.0.2.71:80 {rs(web)}", f"192.0.2.71:81 {rs(web)}"
        try:
            wait_weight(emu, www, 100)  # a held agent is no answer: the checks decide
            wait_weight(emu, api, 10)
            daemon.wait_log("response timeout")
            wait_until(lambda: agent.count()[0] >= 3, 20, "three polls of the agent")
            assert agent.count()[1] == 1  # one connection at a time: one poller for both VSs
            agent.answer("50%")  # one answer acts on both VSs
            wait_weight(emu, www, 50)
            wait_weight(emu, api, 5)
        finally:
            assert daemon.stop() == 0


def test_a_reload_that_adds_an_agent_starts_its_poll(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    web = farm.start("127.0.0.238")
    with AgentServer("127.0.0.238", answer="30%") as agent:
        body = f"! www 192.0.2.72:80 /health\nweb1 {rs(web)} www=100\n"
        daemon = DaemonProcess(tmp_path, body, env=emu.env, options={"IPVSADM": str(emu.binary)})
        daemon.start()
        key = f"192.0.2.72:80 {rs(web)}"
        try:
            wait_weight(emu, key, 100)
            assert agent.count()[0] == 0
            daemon.write_config(body.replace("/health", f"/health agent={agent.port}"))
            wait_weight(emu, key, 30)
            daemon.write_config(body)  # and one that removes it: the check alone decides
            wait_weight(emu, key, 100)
        finally:
            assert daemon.stop() == 0
