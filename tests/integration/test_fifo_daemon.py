"""The command FIFO of the real daemon loses nothing (issue 10 item 13), through a real mkfifo.

Lines written while the daemon is down or starting are held until it is ready; a burst beyond the
reader's queue is taken by backpressure (the FIFO is not read until the queue drains), not
dropped; blank lines are skipped. Hosts on 127.0.0.x with check `-` are never contacted.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from ipvswm.config.parser import parse_text
from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.held import HeldIpvsadm

pytestmark = pytest.mark.integration

BODY = "! www 192.0.2.70:80 -\nweb1 127.0.0.71:80 www=10\n"
WEB1 = "192.0.2.70:80 127.0.0.71:80"


def reasons(daemon: DaemonProcess) -> set[str]:
    """web1's host reasons, as the daemon shows them."""
    code, reply = daemon.ctl("show", "host", "web1")
    assert code == 0, reply
    data = reply["data"]
    assert isinstance(data, dict)
    found: set[str] = set()
    for host in data["hosts"]:
        for pair in host["pairs"]:
            found.update(pair["host_reasons"])
    return found


def log_tail(daemon: DaemonProcess) -> bytes:
    """The end of the log (each reply lists every reason: the whole log grows to megabytes)."""
    with open(daemon.log, "rb") as log:
        log.seek(max(daemon.log_size() - 65536, 0))
        return log.read()


def write_lines(path: Path, lines: list[str]) -> None:
    """One writer per line, as `echo LINE > fifo` does: open blocks until a reader is there."""
    for line in lines:
        with open(path, "w", encoding="utf-8") as fifo:
            fifo.write(line + "\n")


def test_lines_written_while_the_daemon_is_down_and_starting_are_all_applied(
    tmp_path: Path, emu: Emulator
) -> None:
    """11 lines across a restart: before, each line read during start-up waited 5 s for the
    state, then was refused ('# the daemon is starting') and thrown away."""
    emu.require_emulator()
    wrapper = HeldIpvsadm(tmp_path, emu, "-S")
    daemon = DaemonProcess(tmp_path, BODY, env=emu.env, options={"IPVSADM": str(wrapper.binary)})
    daemon.start()
    wait_weight(emu, WEB1, 10)
    assert daemon.stop() == 0
    lines = [f"set host web1 off for reasons down{i}" for i in range(11)]
    writer = threading.Thread(target=write_lines, args=(daemon.fifo, lines), daemon=True)
    writer.start()  # blocked: no daemon reads the FIFO
    wrapper.hold_calls()  # the next start's first read of the kernel table hangs
    starting = threading.Thread(target=daemon.start, kwargs={"timeout": 120}, daemon=True)
    starting.start()
    try:
        # The first read is killed by its timeout (5 s) and retried: the start-up has taken
        # longer than the 5 s a console command waits for it.
        wait_until(lambda: len(wrapper.held_pids()) >= 2, 60, "the retried first read")
        wrapper.release()
        starting.join(120)
        writer.join(60)
        assert not writer.is_alive()
        assert daemon.proc is not None and not daemon.proc_exited()
        wanted = {f"down{i}" for i in range(11)}
        # each look runs `ipvswm ctl`: a process, so not every 20 ms
        wait_until(lambda: reasons(daemon) >= wanted, 60, "the 11 lines to be applied", step=0.5)
        wait_weight(emu, WEB1, 0)
        assert "the daemon is starting" not in daemon.log_text()
    finally:
        if daemon.proc is not None:
            daemon.stop()


@pytest.mark.timeout(600)  # 1,500 commits; a loaded 2-core machine ran ~10 a second
def test_a_burst_of_1500_commands_with_blank_lines_is_all_applied(
    tmp_path: Path, emu: Emulator
) -> None:
    """Before, beyond 1,000 queued lines the rest were dropped, blank lines counted among them."""
    daemon = DaemonProcess(tmp_path, BODY, env=emu.env, options={"IPVSADM": str(emu.binary)})
    daemon.start()
    try:
        count = 1500
        burst = "".join(f"set host web1 off for reasons r{i}\n\n" for i in range(count))
        fd = os.open(daemon.fifo, os.O_WRONLY)  # one writer, blocking: it waits while not read
        try:
            data = burst.encode()
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)
        wanted = {f"r{i}" for i in range(count)}
        # The FIFO runs its lines in order: once the last one is logged, all have run.
        last = b"fifo> set host web1 off for reasons r1499\n"
        wait_until(lambda: last in log_tail(daemon), 400, "the last command to run", step=0.5)
        assert reasons(daemon) >= wanted
        assert "dropping" not in daemon.log_text()
    finally:
        daemon.stop()


def test_the_default_fifo_is_beside_the_unix_socket() -> None:
    """Not /tmp/fifo, shared by every instance on a machine (and in a world-writable dir)."""

    def fifo_of(text: str) -> str:
        config = parse_text(text + "! www 192.0.2.70:80 -\n").config
        assert config is not None
        return config.options.management_fifo_path

    assert fifo_of("") == "/run/ipvswm.fifo"
    assert fifo_of("Management.Socket.Path=/run/ipvswm-a.sock\n") == "/run/ipvswm-a.fifo"
    assert fifo_of("Management.Socket.Path=/run/b\n") == "/run/b.fifo"
    # No Unix socket: beside the DB, which is every instance's own too.
    assert fifo_of("Management.Socket.Path=\nDB=/var/lib/wm/a.db\n") == "/var/lib/wm/a.fifo"
    assert fifo_of("Management.Fifo.Path=/tmp/fifo\n") == "/tmp/fifo"  # the key is kept
    assert fifo_of("Management.Fifo.Path=\n") == ""  # and empty still means no FIFO
