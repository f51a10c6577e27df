"""`wait host H quiescent` right after a destination is re-added (issue 11).

The kernel's destination trash brings a deleted destination's connection counters back when it is
re-added within the trash timeout (the emulator does the same, ../shared/IPVSADM.md). The daemon's
cached table after an apply follows the ops, so it says 0 connections for the re-added
destination: a wait must judge from a kernel read begun after it was asked, and no destination
it added after that read may stand for "0 connections".

Addresses: real servers on 127.0.0.181-183; the VS in 192.0.2.0/24 only exists in the emulator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ConsoleSession
from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import table_weights
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

VIP = "192.0.2.40:80"
SERVICE = f"tcp:{VIP}"
TAGS = ("stay1", "stay2", "moved")
OPTIONS = {
    # No periodic read in the middle of a step: only the reads a `wait` asks for.
    "IPVS.ResyncPeriod": "3600",
    "Check.Timeout.Connect": "1",
    "Check.Timeout.Response": "2",
}


class Site:
    def __init__(self, farm: ThreadedRealServers, tmp: Path) -> None:
        self.emu = Emulator(tmp / "emu")
        self.emu.require_emulator()
        self.servers: dict[str, ThreadedRealServer] = {
            tag: farm.start(f"127.0.0.{181 + i}") for i, tag in enumerate(TAGS)
        }
        self.daemon = DaemonProcess.on_emulator(tmp, self.body(TAGS), self.emu, OPTIONS)

    def rs(self, tag: str) -> str:
        server = self.servers[tag]
        return f"{server.address}:{server.port}"

    def body(self, tags: tuple[str, ...]) -> str:
        return f"! www {VIP} /health\n" + "".join(f"{t} {self.rs(t)} www=10\n" for t in tags)

    def weight(self, tag: str) -> int | None:
        return table_weights(self.emu.table_text()).get(f"{VIP} {self.rs(tag)}")

    def active(self, tag: str) -> int | None:
        """The emulated kernel's ActiveConn of the host's destination (None: not listed)."""
        for line in self.emu.list_text().splitlines():
            words = line.split()
            if len(words) >= 6 and words[0] == "->" and words[1] == self.rs(tag):
                return int(words[4])
        return None


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with ThreadedRealServers() as farm:
        s = Site(farm, tmp_path)
        s.daemon.start()
        try:
            wait_until(lambda: all(s.weight(t) == 10 for t in TAGS), 15, "every host at 10")
            yield s
        finally:
            if s.daemon.proc is not None:
                s.daemon.stop()


def test_wait_after_a_reload_re_adds_a_destination_sees_its_trash_counters(site: Site) -> None:
    site.emu.set_connections(SERVICE, site.rs("moved"), active=3)
    with ConsoleSession.unix(site.daemon.sock) as con:
        assert con.send("set host moved off").startswith("ok: ")
        wait_until(lambda: site.weight("moved") == 0, 10, "moved at weight 0")
        site.daemon.write_config(site.body(("stay1", "stay2")))  # the watcher reloads it
        wait_until(lambda: site.weight("moved") is None, 10, "moved deleted (to the trash)")
        site.daemon.write_config(site.body(TAGS))
        wait_until(lambda: site.weight("moved") is not None, 10, "moved re-added")
        reply = con.send("wait host moved quiescent timeout 2")
        # The kernel gave it its 3 active connections back: the wait must not say quiescent.
        assert reply.startswith("# timeout: host moved not quiescent"), reply
        assert site.active("moved") == 3
        site.emu.set_connections(SERVICE, site.rs("moved"), active=0)
        assert con.send("wait host moved quiescent timeout 5").startswith("ok: host moved is")


def test_wait_whose_own_read_re_adds_a_destination_does_not_trust_the_add(site: Site) -> None:
    # Deleted behind the daemon's back while it has connections: the trash keeps them.
    site.emu.set_connections(SERVICE, site.rs("moved"), active=2)
    done = site.emu.run("-d", "-t", VIP, "-r", site.rs("moved"))
    assert done.exit == 0, done
    assert site.weight("moved") is None
    with ConsoleSession.unix(site.daemon.sock) as con:
        # The wait's read finds it missing and puts it back, with its 2 connections.
        reply = con.send("wait host moved quiescent timeout 2")
        assert reply.startswith("# timeout: host moved not quiescent"), reply
        assert site.weight("moved") == 10 and site.active("moved") == 2
        site.emu.set_connections(SERVICE, site.rs("moved"), active=0)
        assert con.send("wait host moved quiescent timeout 5").startswith("ok: host moved is")
