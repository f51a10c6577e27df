"""The real daemon's syslog lines and sd_notify messages (SPEC §8, issue 7).

Addresses: real servers on 127.0.0.155-127.0.0.156; syslog on UDP 127.0.0.1 (a free port);
virtual services in 192.0.2.0/24 (never contacted).
"""

from __future__ import annotations

import contextlib
import itertools
import logging.handlers
import re
import resource
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

LOCAL3 = logging.handlers.SysLogHandler.LOG_LOCAL3
INFO = logging.handlers.SysLogHandler.LOG_INFO
WARNING = logging.handlers.SysLogHandler.LOG_WARNING


class Datagrams:
    """Receives datagrams on a bound socket in a thread, keeping each with its arrival time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return  # closed
            with self._lock:
                self.received.append((time.time(), data.decode("utf-8", "replace")))

    def texts(self) -> list[str]:
        with self._lock:
            return [text for _, text in self.received]

    def find(self, pattern: str) -> list[str]:
        return [t for t in self.texts() if re.search(pattern, t)]

    def close(self) -> None:
        # shutdown() wakes the blocked recv(); close() alone would not
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


def rs(server: ThreadedRealServer) -> str:
    return f"{server.address}:{server.port}"


def weight_line(emu: Emulator, key: str) -> int | None:
    for line in emu.table_text().splitlines():
        words = line.split()
        if words[:1] == ["-a"] and f"{words[2]} {words[4]}" == key:
            return int(words[words.index("-w") + 1])
    return None


@pytest.fixture
def syslog_udp() -> Iterator[Datagrams]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    grams = Datagrams(sock)
    yield grams
    grams.close()


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, Datagrams]]:
    # A short directory of its own: AF_UNIX paths are limited to 107 bytes (pytest's are long).
    directory = tempfile.mkdtemp(prefix="ipvswm-sd-")
    path = str(Path(directory) / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    grams = Datagrams(sock)
    yield path, grams
    grams.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def low_fd_limit() -> Iterator[None]:
    """A soft open-files limit of 1024, the usual default (the VM's too), for the daemons this test
    starts: the daemon raises it, and its first line used to be that one, not "starting"."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 1024 if hard == resource.RLIM_INFINITY else min(1024, hard - 1)
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def site(
    farm: ThreadedRealServers, emu: Emulator, tmp: Path, env: dict[str, str], **opts: str
) -> tuple[DaemonProcess, ThreadedRealServer]:
    """One VS www with one real server (web1) behind it; returns the daemon and the server."""
    web1 = farm.start("127.0.0.155")
    body = f"! www 192.0.2.30:80 /health\nweb1 {rs(web1)} www=10\n"
    daemon = DaemonProcess(
        tmp, body, env={**emu.env, **env}, options={"IPVSADM": str(emu.binary), **opts}
    )
    return daemon, web1


def test_syslog_lines_carry_ident_pid_and_the_facility(
    farm: ThreadedRealServers, syslog_udp: Datagrams, tmp_path: Path, low_fd_limit: None
) -> None:
    emu = Emulator(tmp_path / "emu")
    port = syslog_udp.sock.getsockname()[1]
    daemon, web1 = site(
        farm,
        emu,
        tmp_path,
        {"IPVSWM_SYSLOG_ADDRESS": f"127.0.0.1:{port}"},
        **{"Log.SysLog": "1", "Log.SysLog.Facility": "local3"},
    )
    daemon.start()
    key = f"192.0.2.30:80 {rs(web1)}"
    try:
        assert daemon.proc is not None
        pid = daemon.proc.pid
        wait_until(lambda: weight_line(emu, key) == 10, 10, "web1 at weight 10")
        web1.set_mode("failing")
        wait_until(
            lambda: bool(syslog_udp.find(r"vs www host web1: weight 10 -> 0")),
            10,
            "the decision in syslog",
        )
        # a warning: a hand-made weight corrected by the next resync
        wait_until(lambda: weight_line(emu, key) == 0, 10, "web1 at weight 0")
        emu.run("-e", "-t", "192.0.2.30:80", "-r", rs(web1), "-m", "-w", "99")
        wait_until(
            lambda: bool(syslog_udp.find(r"resync: the kernel differed")), 10, "the resync warning"
        )
    finally:
        assert daemon.stop() == 0
    wait_until(lambda: bool(syslog_udp.find(r"ipvswm stopped")), 5, "the stop line in syslog")

    info = f"<{LOCAL3 * 8 + INFO}>ipvs-weightman[{pid}]: "
    warning = f"<{LOCAL3 * 8 + WARNING}>ipvs-weightman[{pid}]: "
    assert info == f"<158>ipvs-weightman[{pid}]: "
    texts = syslog_udp.texts()
    start = syslog_udp.find(r"ipvswm starting: pid")
    assert start == [f"{info}ipvswm starting: pid {pid}, config {daemon.config}, backend ipvsadm\0"]
    assert texts.index(start[0]) == 0  # the very first line already goes to syslog
    assert syslog_udp.find(r"open-files limit raised from \d+ to")
    (decision,) = syslog_udp.find(r"vs www host web1: weight 10 -> 0")
    assert decision.startswith(info + "vs www host web1: weight 10 -> 0, ENABLED -> AWAIT_PASS")
    assert "status 500" in decision
    resync = syslog_udp.find(r"resync: the kernel differed")
    assert resync[0].startswith(warning + "WARNING: resync: the kernel differed"), resync
    # the file keeps its own format for the same lines
    assert re.search(
        rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{{6}}\|{pid}\|vs www host web1: weight 10 -> 0",
        daemon.log_text(),
        re.MULTILINE,
    )
    assert all(t.startswith("<") and f"ipvs-weightman[{pid}]: " in t for t in texts)


def test_sd_notify_ready_reloading_stopping_and_watchdog(
    farm: ThreadedRealServers,
    notify_socket: tuple[str, Datagrams],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, grams = notify_socket
    emu = Emulator(tmp_path / "emu")
    daemon, _ = site(
        farm,
        emu,
        tmp_path,
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"},
        **{"Config.AutoCheck": "0"},
    )

    def states() -> list[str]:
        return [t for t in grams.texts() if t != "WATCHDOG=1"]

    def pings() -> list[float]:
        return [at for at, t in list(grams.received) if t == "WATCHDOG=1"]

    daemon.start()
    try:
        assert daemon.proc is not None
        wait_until(lambda: "READY=1\nSTATUS=running" in states(), 10, "READY=1")
        daemon.wait_log("systemd watchdog: pinging every 0.500s")
        first = len(pings())
        wait_until(lambda: len(pings()) >= first + 6, 30, "six watchdog pings")

        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(states()) >= 3, 10, "RELOADING=1 then READY=1")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        daemon.wait_log("config reload applied")
        ping_count = len(pings())
        wait_until(lambda: len(pings()) >= ping_count + 3, 30, "pings after the reload")
    finally:
        assert daemon.stop() == 0
    wait_until(lambda: "STOPPING=1" in states(), 5, "STOPPING=1")

    ready, reloading, ready_again, stopping = states()
    assert ready == ready_again == "READY=1\nSTATUS=running"
    assert stopping == "STOPPING=1"
    head, _, stamp = reloading.partition("\nMONOTONIC_USEC=")
    assert head == "RELOADING=1"
    assert before <= int(stamp) <= after  # the daemon's CLOCK_MONOTONIC, as notify-reload wants

    times = pings()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    with capsys.disabled():
        print(
            f"\nwatchdog: {len(times)} pings, period mean {sum(gaps) / len(gaps) * 1000:.1f} ms, "
            f"max {max(gaps) * 1000:.1f} ms (WATCHDOG_USEC=1000000, expected 500 ms)"
        )
    # The period is half the timeout (the log line above says so); the median of the gaps tells
    # half from the whole timeout without timing the machine: a loaded machine may stall the
    # daemon now and then (a max or a mean would time the machine, not the daemon).
    assert 0.4 < statistics.median(gaps) < 0.75, gaps
