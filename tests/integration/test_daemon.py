"""The real daemon process against the ipvsadm emulator and real servers on loopback (issue 5).

Addresses: real servers on 127.0.0.100-127.0.0.119; virtual services in 192.0.2.0/24 (never
contacted: they only exist in the emulated table).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import ipvswm_command
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration


def weights(emu: Emulator) -> dict[str, int]:
    return emu.weights()


class Site:
    """Two web servers and a sorry server behind VS www (and web1 also behind VS api)."""

    def __init__(self, farm: ThreadedRealServers, emu: Emulator, tmp: Path, **options: str):
        self.web1 = farm.start("127.0.0.100")
        self.web2 = farm.start("127.0.0.101")
        self.sorry = farm.start("127.0.0.102")
        self.emu = emu
        self.daemon = DaemonProcess(
            tmp,
            self.body(),
            env=emu.env,
            options={"IPVSADM": str(emu.binary), **options},
        )

    def rs(self, server: ThreadedRealServer) -> str:
        return f"{server.address}:{server.port}"

    def body(self, *, web2_weight: int = 10, extra: str = "", url: str = "/health") -> str:
        return (
            f"! www 192.0.2.1:80 {url} sorry_server=sorry\n"
            "! api 192.0.2.2:443 tcp://\n"
            f"{extra}"
            f"web1 {self.rs(self.web1)} www=10 api=5\n"
            f"web2 {self.rs(self.web2)} www={web2_weight}\n"
            f"sorry {self.rs(self.sorry)}\n"
        )

    def key(self, server: ThreadedRealServer, vip: str = "192.0.2.1:80") -> str:
        return f"{vip} {self.rs(server)}"

    def start_healthy(self) -> None:
        self.daemon.start()
        wait_weight(self.emu, self.key(self.web1), 10)
        wait_weight(self.emu, self.key(self.web2), 10)
        wait_weight(self.emu, self.key(self.web1, "192.0.2.2:443"), 5)


@pytest.fixture
def site(farm: ThreadedRealServers, emu: Emulator, tmp_path: Path) -> Iterator[Site]:
    s = Site(farm, emu, tmp_path)
    yield s
    if s.daemon.proc is not None:
        s.daemon.stop()


def test_failure_then_recovery(site: Site) -> None:
    site.start_healthy()
    site.web1.set_mode("failing")
    wait_weight(site.emu, site.key(site.web1), 0)
    # api checks web1 with tcp://, which still connects: that pair keeps its weight
    assert weights(site.emu)[site.key(site.web1, "192.0.2.2:443")] == 5
    site.daemon.wait_log("status 500")
    site.web1.set_mode("healthy")
    wait_weight(site.emu, site.key(site.web1), 10)
    assert "vs www host web1: weight 10 -> 0" in site.daemon.log_text()


def test_ramp_after_a_long_outage(farm: ThreadedRealServers, emu: Emulator, tmp_path: Path) -> None:
    s = Site(farm, emu, tmp_path, **{"Ramping.TriggerTime": "1", "Ramping.Duration": "3"})
    try:
        s.daemon.write_config(s.body(web2_weight=100))
        s.daemon.start()
        wait_weight(emu, s.key(s.web2), 100)
        s.web2.set_mode("refusing")
        wait_weight(emu, s.key(s.web2), 0)
        time.sleep(1.2)  # the outage must outlast Ramping.TriggerTime
        s.web2.set_mode("healthy")
        seen: list[int] = []

        def full() -> bool:
            w = weights(emu).get(s.key(s.web2), 0)
            if not seen or seen[-1] != w:
                seen.append(w)
            return w == 100

        wait_until(full, 15, "web2 ramped to 100")
        ramp = [w for w in seen if 0 < w < 100]
        assert ramp, f"no intermediate ramp weight seen: {seen}"
        assert ramp == sorted(ramp), f"ramp weights must not decrease: {seen}"
    finally:
        s.daemon.stop()


def test_sorry_server_on_and_off(site: Site) -> None:
    site.start_healthy()
    sorry = site.key(site.sorry)
    assert sorry not in weights(site.emu)
    site.web1.set_mode("failing")
    site.web2.set_mode("failing")
    wait_weight(site.emu, sorry, 1)
    site.daemon.wait_log("vs www: sorry server sorry ON")
    site.web2.set_mode("healthy")
    wait_weight(site.emu, sorry, None)
    site.daemon.wait_log("vs www: sorry server sorry OFF")
    assert weights(site.emu)[site.key(site.web2)] == 10


def test_restart_with_unchanged_config_changes_nothing(site: Site) -> None:
    site.start_healthy()
    assert site.daemon.stop() == 0
    before_table = site.emu.table_text()
    before_calls = len(site.emu.changing_invocations())
    offset = site.daemon.log_size()
    site.daemon.start()
    # every checker reports, and at least one full resync runs
    site.daemon.wait_log("check 127.0.0.101", offset=offset)
    site.daemon.wait_log("check 127.0.0.100", offset=offset)
    resyncs = len(site.emu.invocations())
    wait_until(lambda: len(site.emu.invocations()) > resyncs + 2, 10, "a resync read")
    assert len(site.emu.changing_invocations()) == before_calls
    assert site.emu.table_text() == before_table


def test_sigterm_leaves_the_table_as_it_was(site: Site) -> None:
    site.start_healthy()
    site.web2.set_mode("failing")
    wait_weight(site.emu, site.key(site.web2), 0)
    table = site.emu.table_text()
    calls = len(site.emu.changing_invocations())
    assert site.daemon.stop(signal.SIGTERM) == 0
    assert site.emu.table_text() == table
    assert len(site.emu.changing_invocations()) == calls
    assert "leaving the IPVS table as it is" in site.daemon.log_text()


def test_kill9_then_restart_keeps_reasons_and_overrides(site: Site) -> None:
    site.start_healthy()
    code, _ = site.daemon.ctl("set", "host", "web1", "off", "for", "reasons", "maint,deploy")
    assert code == 0
    code, _ = site.daemon.ctl("set", "host", "web2", "weight", "7")
    assert code == 0
    wait_weight(site.emu, site.key(site.web1), 0)
    wait_weight(site.emu, site.key(site.web2), 7)
    site.daemon.kill()
    calls = len(site.emu.changing_invocations())
    site.daemon.start()
    dump = subprocess.run(
        [*ipvswm_command(), "dump", "-c", str(site.daemon.config)],
        capture_output=True,
        text=True,
        check=True,
        env=site.daemon.env,
    ).stdout
    assert "deploy" in dump and "maint" in dump
    site.daemon.wait_log("check 127.0.0.101")
    assert weights(site.emu)[site.key(site.web1)] == 0
    assert weights(site.emu)[site.key(site.web2)] == 7
    assert len(site.emu.changing_invocations()) == calls
    # one reason removed: still off; the other too: back on after a fresh check
    assert site.daemon.ctl("set", "host", "web1", "on", "reasons", "maint")[0] == 0
    assert weights(site.emu)[site.key(site.web1)] == 0
    assert site.daemon.ctl("set", "host", "web1", "on", "reasons", "deploy")[0] == 0
    wait_weight(site.emu, site.key(site.web1), 10)


def test_reload_applies_a_diff_and_keeps_untouched_state(site: Site) -> None:
    site.start_healthy()
    assert site.daemon.ctl("set", "host", "web1", "off", "for", "vs", "api")[0] == 0
    wait_weight(site.emu, site.key(site.web1, "192.0.2.2:443"), 0)
    offset = site.daemon.log_size()
    # add a VS, change web2's weight and the www check URL
    sorry = f"sorry {site.rs(site.sorry)}"
    body = site.body(web2_weight=20, extra="! db 192.0.2.3:5432 tcp://\n", url="/health2")
    site.daemon.write_config(body.replace(sorry, f"{sorry} db=3"))
    site.daemon.wait_log("config reload applied", offset=offset)
    wait_weight(site.emu, site.key(site.web2), 20)
    wait_weight(site.emu, site.key(site.sorry, "192.0.2.3:5432"), 3)
    # the untouched pair kept its admin state
    assert weights(site.emu)[site.key(site.web1, "192.0.2.2:443")] == 0
    wait_until(
        lambda: any(r.path == "/health2" for r in site.web1.requests), 10, "the new check URL"
    )
    # remove the db VS and host web2: both leave the kernel
    offset = site.daemon.log_size()
    site.daemon.write_config(
        f"! www 192.0.2.1:80 /health2 sorry_server=sorry\n! api 192.0.2.2:443 tcp://\n"
        f"web1 {site.rs(site.web1)} www=10 api=5\nsorry {site.rs(site.sorry)}\n"
    )
    site.daemon.wait_log("config reload applied", offset=offset)
    wait_weight(site.emu, site.key(site.web2), None)
    wait_until(lambda: "192.0.2.3:5432" not in site.emu.table_text(), 10, "db VS removed")
    assert weights(site.emu)[site.key(site.web1, "192.0.2.2:443")] == 0


def test_invalid_reload_is_ignored_and_logged(site: Site) -> None:
    site.start_healthy()
    table = site.emu.table_text()
    offset = site.daemon.log_size()
    site.daemon.write_config(site.body() + "web3 127.0.0.103 nosuchvs=5\n")
    site.daemon.wait_log("rejected", offset=offset)
    log = site.daemon.log_text(offset)
    assert "nosuchvs" in log
    assert "keeping the last good config" in log
    assert site.emu.table_text() == table
    # a SIGHUP with the file fixed applies it
    site.daemon.write_config(site.body(web2_weight=30))
    assert site.daemon.proc is not None
    site.daemon.proc.send_signal(signal.SIGHUP)
    wait_weight(site.emu, site.key(site.web2), 30)


def test_hand_made_change_is_corrected_within_a_resync(site: Site) -> None:
    site.start_healthy()
    site.emu.run("-e", "-t", "192.0.2.1:80", "-r", site.rs(site.web2), "-m", "-w", "99")
    site.emu.run("-a", "-t", "192.0.2.1:80", "-r", "127.0.0.119:80", "-m", "-w", "1")
    assert weights(site.emu)[site.key(site.web2)] == 99
    wait_weight(site.emu, site.key(site.web2), 10, timeout=5)
    wait_weight(site.emu, "192.0.2.1:80 127.0.0.119:80", None, timeout=5)
    site.daemon.wait_log("resync: the kernel differed")


def test_a_second_daemon_refuses_to_start(site: Site) -> None:
    site.emu.require_emulator()
    site.start_healthy()
    # The second daemon's calls go to a log of their own: the first may still be converging.
    second_log = site.daemon.db.parent / "second-ipvsadm.log"
    second = subprocess.run(
        [*ipvswm_command(), "run", "--foreground", "-c", str(site.daemon.config)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**site.daemon.env, "IPVSADM_EMU_LOG": str(second_log)},
        check=False,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert not second_log.exists() or not second_log.read_text().strip()


def test_a_deleted_socket_file_does_not_let_a_second_daemon_manage_the_table(site: Site) -> None:
    site.emu.require_emulator()
    site.start_healthy()
    site.daemon.sock.unlink()  # the socket file alone was the lock
    # The same config (DB, table) but a TCP port of its own: only the lock can refuse it.
    port = free_port("127.0.0.1")
    text = site.daemon.config.read_text().replace(
        f"Management.Socket.Port={site.daemon.tcp_port}\n", f"Management.Socket.Port={port}\n"
    )
    second_config = site.daemon.config.with_name("second.conf")
    second_config.write_text(text)
    second_log = site.daemon.db.parent / "second-ipvsadm.log"
    second = subprocess.Popen(
        [*ipvswm_command(), "run", "--foreground", "-c", str(second_config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**site.daemon.env, "IPVSADM_EMU_LOG": str(second_log)},
    )
    try:
        code = second.wait(60)
    except subprocess.TimeoutExpired:
        code = None  # it kept running: it manages the table too
    finally:
        if second.poll() is None:
            second.kill()
        second.communicate()
    assert code == 1
    assert f"another ipvswm manages the state DB {site.daemon.db}" in site.daemon.log_text()
    assert not second_log.exists() or not second_log.read_text().strip()


def test_start_adopts_the_kernel_removes_unknown_destinations_and_keeps_unmanaged_vss(
    site: Site,
) -> None:
    # A table left by someone else: our VS www with web1 at weight 3 and a stranger, plus a VS
    # that is not in the config at all.
    site.emu.run(
        "-R",
        stdin=(
            "-A -t 192.0.2.1:80 -s wrr\n"
            f"-a -t 192.0.2.1:80 -r {site.rs(site.web1)} -m -w 3\n"
            "-a -t 192.0.2.1:80 -r 127.0.0.118:80 -m -w 4\n"
            "-A -t 192.0.2.99:25 -s rr\n"
            "-a -t 192.0.2.99:25 -r 127.0.0.117:25 -m -w 1\n"
        ),
    )
    site.start_healthy()
    assert "192.0.2.1:80 127.0.0.118:80" not in weights(site.emu)
    assert weights(site.emu)["192.0.2.99:25 127.0.0.117:25"] == 1
    assert "kernel: DeleteDestination tcp:192.0.2.1:80 127.0.0.118:80" in site.daemon.log_text()
    # removing www from the config deletes it (the daemon manages it); 192.0.2.99 stays
    offset = site.daemon.log_size()
    site.daemon.write_config(
        f"! api 192.0.2.2:443 tcp://\nweb1 {site.rs(site.web1)} api=5\n"
        f"web2 {site.rs(site.web2)}\nsorry {site.rs(site.sorry)}\n"
    )
    site.daemon.wait_log("refused", offset=offset)  # 2 of the 3 pairs go: on purpose here
    assert "remove vs www" in site.daemon.command("config reload force")
    wait_until(lambda: "192.0.2.1:80" not in site.emu.table_text(), 10, "www deleted")
    assert weights(site.emu)["192.0.2.99:25 127.0.0.117:25"] == 1


def test_no_reload_trigger_empties_the_table_unless_forced(site: Site) -> None:
    site.start_healthy()
    table = site.emu.table_text()
    offset = site.daemon.log_size()
    site.daemon.write_config("")  # e.g. a file truncated by `cat new > conf`, not yet rewritten
    site.daemon.wait_log("refused", offset=offset)
    assert "it would remove every virtual service" in site.daemon.log_text(offset)
    assert site.emu.table_text() == table
    assert site.daemon.proc is not None
    offset = site.daemon.log_size()
    site.daemon.proc.send_signal(signal.SIGHUP)  # a SIGHUP refuses it too (issue 10 item 1)
    site.daemon.wait_log("config reload (SIGHUP) refused", offset=offset)
    assert site.emu.table_text() == table
    assert "remove vs www" in site.daemon.command("config reload force")  # on purpose
    wait_until(lambda: "192.0.2.1:80" not in site.emu.table_text(), 10, "www removed")
