"""Reload safety with the real daemon and the ipvsadm emulator (issue 10 items 1, 3, 4).

Real servers on 127.0.0.120-127.0.0.123; virtual services in 192.0.2.0/24 (table entries only).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ConsoleSession
from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration


class Site:
    """VS www with three web servers and VS api with web1."""

    def __init__(self, farm: ThreadedRealServers, emu: Emulator, tmp: Path) -> None:
        self.servers = [farm.start(f"127.0.0.{120 + i}") for i in range(3)]
        self.emu = emu
        self.daemon = DaemonProcess(
            tmp, self.body(), env=emu.env, options={"IPVSADM": str(emu.binary)}
        )

    def rs(self, i: int) -> str:
        return f"{self.servers[i].address}:{self.servers[i].port}"

    def body(self, hosts: tuple[int, ...] = (0, 1, 2)) -> str:
        lines = ["! www 192.0.2.1:80 /health", "! api 192.0.2.2:443 tcp://"]
        for i in hosts:
            lines.append(f"web{i + 1} {self.rs(i)} www=10" + (" api=5" if i == 0 else ""))
        return "\n".join(lines) + "\n"

    def start_healthy(self) -> None:
        self.daemon.start()
        for i in range(3):
            wait_weight(self.emu, f"192.0.2.1:80 {self.rs(i)}", 10)
        wait_weight(self.emu, f"192.0.2.2:443 {self.rs(0)}", 5)

    def errors(self, offset: int) -> list[str]:
        return [line for line in self.daemon.log_text(offset).splitlines() if "|ERROR: " in line]

    def console(self, line: str) -> tuple[bool, dict[str, object]]:
        """One command in JSON over the Unix socket (`ctl` finds the daemon through the config
        file, and these tests break that file)."""
        with ConsoleSession.unix(self.daemon.sock, timeout=30) as session:
            session.send_line(f"format json\n{line}\nquit")
            out = session.read_to_eof()
        replies = [json.loads(text) for text in out.splitlines() if text.startswith("{")]
        (reply,) = [r for r in replies if r["command"] == line]
        return bool(reply["ok"]), reply["data"]

    def sighup(self) -> None:
        assert self.daemon.proc is not None
        self.daemon.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def site(farm: ThreadedRealServers, emu: Emulator, tmp_path: Path) -> Iterator[Site]:
    s = Site(farm, emu, tmp_path)
    yield s
    if s.daemon.proc is not None:
        s.daemon.stop()


def test_sighup_and_console_refuse_an_empty_file_until_forced(site: Site) -> None:
    site.start_healthy()
    table = site.emu.table_text()
    # SIGHUP with an empty file (the repro: `: > ipvswm.conf; kill -HUP $PID`), with the
    # automatic reload off so that SIGHUP is the only trigger.
    site.daemon.write_config(site.body(), {"Config.AutoCheck": "0"})
    offset = site.daemon.log_size()
    site.sighup()
    site.daemon.wait_log("config reload applied", offset=offset)
    offset = site.daemon.log_size()
    site.daemon.config.write_text("")
    site.sighup()
    site.daemon.wait_log("config reload (SIGHUP) refused", offset=offset)
    errors = site.errors(offset)
    assert len(errors) == 1, errors  # one ERROR line says what and how to force it
    assert "every virtual service (the new file has none): www, api" in errors[0]
    assert "'config reload force'" in errors[0] and "ipvswm ctl config reload force" in errors[0]
    assert site.emu.table_text() == table

    # config diff shows the same verdict; config reload refuses; force applies
    ok, reply = site.console("config diff")
    assert ok and "every virtual service" in str(reply["refused"])
    assert "remove vs www" in reply["actions"]  # type: ignore[operator]
    ok, reply = site.console("config reload")
    assert not ok and "every virtual service" in str(reply["refused"])
    assert site.emu.table_text() == table
    ok, reply = site.console("config reload force")
    assert ok, reply
    wait_until(lambda: "192.0.2.1:80" not in site.emu.table_text(), 10, "www removed")


def test_the_automatic_reload_refuses_removing_more_than_the_share_of_pairs(site: Site) -> None:
    site.start_healthy()
    offset = site.daemon.log_size()
    site.daemon.write_config(site.body(hosts=(0,)))  # 2 of 4 pairs: 50%, allowed
    site.daemon.wait_log("config reload applied", offset=offset)
    wait_weight(site.emu, f"192.0.2.1:80 {site.rs(1)}", None)
    offset = site.daemon.log_size()
    site.daemon.write_config(site.body(hosts=()))  # www/web1 and api/web1: 100% of the pairs
    site.daemon.wait_log("config reload (file changed) refused", offset=offset)
    (error,) = site.errors(offset)
    assert "2 of 2 pairs (100%, more than Config.MaxRemovedShare=0.5: www/web1, api/web1)" in error
    assert site.emu.weights()[f"192.0.2.1:80 {site.rs(0)}"] == 10
    assert site.emu.weights()[f"192.0.2.2:443 {site.rs(0)}"] == 5
    code, reply = site.daemon.ctl("config", "reload", "force")  # the file names the socket
    assert code == 0, reply
    wait_weight(site.emu, f"192.0.2.1:80 {site.rs(0)}", None)


def test_a_fifo_config_is_refused_and_sigterm_still_stops_the_daemon(site: Site) -> None:
    site.start_healthy()
    table = site.emu.table_text()
    offset = site.daemon.log_size()
    fifo = site.daemon.tmp / "conf.fifo"
    os.mkfifo(fifo)
    os.replace(fifo, site.daemon.config)  # the watcher sees a new version: a FIFO
    site.daemon.wait_log("it is a FIFO, not a regular file", offset=offset)
    site.sighup()
    reply = site.daemon.command("config reload")
    assert "it is a FIFO, not a regular file" in reply
    assert site.emu.table_text() == table
    # nothing of a reload holds what the exit waits for (before: SIGTERM hung for ever)
    assert site.daemon.stop(timeout=30) == 0
    assert "ipvswm stopped" in site.daemon.log_text(offset)


def test_a_garbage_file_is_refused_with_a_bounded_error_report(site: Site) -> None:
    site.start_healthy()
    offset = site.daemon.log_size()
    site.daemon.config.write_text("garbage\n" * 50_000)
    site.sighup()
    site.daemon.wait_log("nothing applied, keeping the last good config", offset=offset)
    errors = site.errors(offset)
    assert any("... and 49900 more error(s)" in line for line in errors), errors[-3:]
    assert len(errors) <= 110  # 100 errors, the count of the rest, the outcome
    # the daemon still answers and the table is as it was
    assert "www" in site.daemon.command("show vs")
    link = site.daemon.tmp / "zero"
    link.symlink_to("/dev/zero")
    os.replace(link, site.daemon.config)
    reply = site.daemon.command("config reload")
    assert "character device, not a regular file" in reply


def test_a_removed_host_under_maintenance_comes_back_under_maintenance(site: Site) -> None:
    """Issue 10 item 2: kept across a reload and a restart; shown; `forget host` drops it."""
    site.start_healthy()
    web3 = f"192.0.2.1:80 {site.rs(2)}"
    assert site.daemon.ctl("set", "host", "web3", "off", "reason", "maint")[0] == 0
    assert site.daemon.ctl("set", "host", "web2", "weight", "3")[0] == 0
    wait_weight(site.emu, web3, 0)
    offset = site.daemon.log_size()
    site.daemon.write_config(site.body(hosts=(0,)))  # web2 and web3 removed (a mistaken edit)
    site.daemon.wait_log("config reload applied", offset=offset)
    assert "host web3 removed: its admin state is kept" in site.daemon.log_text(offset)
    wait_weight(site.emu, web3, None)
    shown = site.daemon.command("show hosts")
    assert "kept web3: host reasons maint" in shown and "forget host web3" in shown
    assert "kept web2: vs www: override 3" in shown
    # a restart in between: the kept state is in the DB
    assert site.daemon.stop() == 0
    site.daemon.start()
    offset = site.daemon.log_size()
    site.daemon.write_config(site.body())  # they come back
    site.daemon.wait_log("config reload applied", offset=offset)
    assert "host web3 is back: its kept host reasons are restored (maint)" in site.daemon.log_text(
        offset
    )
    wait_weight(site.emu, f"192.0.2.1:80 {site.rs(1)}", 3)  # web2's override is back
    wait_weight(site.emu, web3, 0)  # web3 stays out of service: still under maintenance
    assert "Reasons=host:maint" in site.daemon.command("show host web3")
    # forget: removed again, forgotten, back without reasons
    offset = site.daemon.log_size()
    site.daemon.write_config(site.body(hosts=(0, 1)))
    site.daemon.wait_log("config reload applied", offset=offset)
    assert "kept web3" in site.daemon.command("show host web3")
    assert "ok: host web3: forgot host reasons maint" in site.daemon.command("forget host web3")
    assert "no kept admin state" in site.daemon.command("forget host web3")
    site.daemon.write_config(site.body())
    wait_weight(site.emu, web3, 10)
