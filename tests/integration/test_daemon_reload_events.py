"""Automatic reload on file events (issue 16 goal 1) with the real daemon and the emulator.

Config.CheckPeriod is an hour: a change applied here came from an inotify event, not a poll.
Real servers on 127.0.0.170-171; the VS in 192.0.2.0/24 is a table entry only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

WAIT = 30.0  # a readiness bound far below the hour of Config.CheckPeriod


class Site:
    def __init__(self, farm: ThreadedRealServers, emu: Emulator, tmp: Path) -> None:
        self.servers = [farm.start(f"127.0.0.{170 + i}") for i in range(2)]
        self.emu = emu
        self.daemon = DaemonProcess(
            tmp,
            self.body(10),
            env=emu.env,
            options={"IPVSADM": str(emu.binary), "Config.CheckPeriod": "3600"},
        )

    def rs(self, i: int) -> str:
        return f"{self.servers[i].address}:{self.servers[i].port}"

    def key(self, i: int) -> str:
        return f"192.0.2.1:80 {self.rs(i)}"

    def body(self, weight: int) -> str:
        return (
            "! www 192.0.2.1:80 /health\n"
            f"web1 {self.rs(0)} www={weight}\n"
            f"web2 {self.rs(1)} www=10\n"
        )

    def text(self, body: str) -> str:
        return "".join(f"{k}={v}\n" for k, v in self.daemon.options.items()) + body


@pytest.fixture
def site(farm: ThreadedRealServers, emu: Emulator, tmp_path: Path) -> Iterator[Site]:
    s = Site(farm, emu, tmp_path)
    s.daemon.start()
    wait_weight(emu, s.key(0), 10, WAIT)
    wait_weight(emu, s.key(1), 10, WAIT)
    yield s
    if s.daemon.proc is not None:
        s.daemon.stop()


def test_a_rename_into_place_is_applied_without_waiting_a_check_period(site: Site) -> None:
    site.daemon.write_config(site.body(7))  # tmp file, then os.replace onto the config
    wait_weight(site.emu, site.key(0), 7, WAIT)
    site.daemon.write_config(site.body(3))  # the renamed-in file is followed in turn
    wait_weight(site.emu, site.key(0), 3, WAIT)


def test_an_in_place_write_is_applied_once_its_writer_closes(site: Site) -> None:
    text = site.text(site.body(4))
    with open(site.daemon.config, "w", encoding="utf-8") as writer:
        writer.write(text[: len(text) // 2])
        writer.flush()
        writer.write(text[len(text) // 2 :])
    wait_weight(site.emu, site.key(0), 4, WAIT)


def test_a_truncated_file_closed_by_its_writer_is_refused(site: Site) -> None:
    offset = site.daemon.log_size()
    table = site.emu.table_text()
    options_only = "".join(f"{k}={v}\n" for k, v in site.daemon.options.items())
    with open(site.daemon.config, "w", encoding="utf-8") as writer:
        writer.write(options_only)  # valid, but no virtual service: cut off before the VSs
    wait_until(lambda: "refused" in site.daemon.log_text(offset), WAIT, "the reload to be refused")
    assert site.emu.table_text() == table
