"""The depool threshold in the real daemon (issue 13 §1): every check failing at once does not
take the site down; the failing pairs kept in show in `show`, are logged and mailed.

Addresses: real servers on 127.0.0.210-127.0.0.214; SMTP on 127.0.0.1; the VS in 192.0.2.0/24.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers
from tests.support.smtp import Inbox


def rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


@pytest.fixture
def smtpd() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port("127.0.0.1"))
    controller.start()
    yield inbox, controller.port
    controller.stop()


@pytest.mark.integration
def test_a_health_url_broken_everywhere_keeps_the_last_failures_in(
    farm: ThreadedRealServers, emu: Emulator, smtpd: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtpd
    servers = [farm.start(f"127.0.0.{210 + i}") for i in range(4)]
    sorry = farm.start("127.0.0.214")
    body = (
        "! www 192.0.2.40:80 /health email=true,sorry_server=sorry,depool_threshold=0.5\n"
        + "".join(f"web{i + 1} {rs(s)} www=10\n" for i, s in enumerate(servers))
        + f"sorry {rs(sorry)}\n"
    )
    options = {
        "IPVSADM": str(emu.binary),
        "Email.SMTP": f"127.0.0.1:{port}",
        "Email.Headers.To": "ops@example.org",
    }
    daemon = DaemonProcess(tmp_path, body, env=emu.env, options=options)
    daemon.start()
    key = {i + 1: f"192.0.2.40:80 {rs(s)}" for i, s in enumerate(servers)}
    try:
        for n in key:
            wait_weight(emu, key[n], 10)
        served = daemon.log_size()  # from here on, the site must never go to the sorry server
        # Two fail first: 20 of 40 is left, as much as the threshold allows.
        for n in (1, 2):
            servers[n - 1].set_mode("failing")
            wait_weight(emu, key[n], 0)
        # Then the health URL breaks on the other two as well: they stay in.
        for n in (3, 4):
            servers[n - 1].set_mode("failing")
            daemon.wait_log(f"vs www host web{n}: weight 10 -> 10, ENABLED -> FAILING_KEPT")
        daemon.wait_log("vs www: depool threshold 0.5 reached")
        assert [emu.weights()[key[n]] for n in key] == [0, 0, 10, 10]
        code, reply = daemon.ctl("show", "vs", "www")
        assert code == 0, reply
        text = str(reply)
        assert text.count("FAILING_KEPT") >= 2, text
        wait_until(lambda: len(inbox.envelopes) >= 1, 10, "the FAILING KEPT mail")

        # web1 recovers: one kept pair is enough, and web3 (which failed before web4) leaves.
        servers[0].set_mode("healthy")
        wait_weight(emu, key[1], 10)
        wait_weight(emu, key[3], 0)
        assert emu.weights()[key[4]] == 10
        servers[1].set_mode("healthy")
        wait_weight(emu, key[4], 0)
        daemon.wait_log("no failing pair kept in any more")
        wait_until(lambda: len(inbox.envelopes) >= 2, 10, "the FAILING KEPT over mail")
    finally:
        assert daemon.stop() == 0
    log = daemon.log_text(served)
    assert "sorry server sorry ON" not in log
    assert log.count("depool threshold 0.5 reached") == 1  # logged once
    kept, over = inbox.messages()
    assert kept["Subject"] == "VS 'www' FAILING KEPT (depool threshold 0.5)"
    assert str(over["Subject"]).startswith("VS 'www' FAILING KEPT over (after ")
    # The mail went when web3 was the first pair kept in (web4 was still passing then).
    lines = kept.get_content().splitlines()
    line = next(ln for ln in lines if ln.strip().startswith("web3 "))
    assert "weight 10" in line and "FAILING_KEPT" in line and "status 500" in line, line
    assert "kept in service since" in kept.get_content() and ": web3." in kept.get_content()
