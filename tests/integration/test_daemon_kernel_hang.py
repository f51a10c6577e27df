"""A hung kernel call delays no answer, and SIGTERM begins no kernel operation (issue 10 items
11 and 14).

The daemon runs against an ipvsadm wrapper that holds one kind of call (`-R` or `-S`) while a
hold file exists, then hands it to the emulator: a real hang, released by the test. Hosts sit on
127.0.0.x with check `-` (never contacted); the VS only exists in the emulated table.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ConsoleSession
from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import wait_weight
from tests.support.held import HeldIpvsadm
from tests.support.held import alive

pytestmark = pytest.mark.integration

BODY = (
    "! www 192.0.2.60:80 -\n"
    "web1 127.0.0.61:80 www=10\n"
    "web2 127.0.0.62:80 www=10\n"
    "web3 127.0.0.63:80 www=10\n"
)


def key(n: int) -> str:
    return f"192.0.2.60:80 127.0.0.6{n}:80"


@pytest.fixture
def emu(tmp_path: Path) -> Emulator:
    emulator = Emulator(tmp_path / "emu")
    emulator.require_emulator()  # the wrapper holds calls of the emulator
    return emulator


def start_daemon(tmp: Path, emu: Emulator, wrapper: HeldIpvsadm) -> DaemonProcess:
    daemon = DaemonProcess(tmp, BODY, env=emu.env, options={"IPVSADM": str(wrapper.binary)})
    daemon.start()
    for n in (1, 2, 3):
        wait_weight(emu, key(n), 10)
    return daemon


@pytest.fixture
def stop_at_end() -> Iterator[list[DaemonProcess]]:
    daemons: list[DaemonProcess] = []
    yield daemons
    for daemon in daemons:
        if daemon.proc is not None:
            daemon.stop()


def test_commands_are_answered_while_an_ipvsadm_restore_hangs(
    tmp_path: Path, emu: Emulator, stop_at_end: list[DaemonProcess]
) -> None:
    """Item 11: the owner commits and answers while the applier waits on a hung `-R`; what
    was asked meanwhile goes to the kernel together once the call returns."""
    wrapper = HeldIpvsadm(tmp_path, emu, "-R")
    daemon = start_daemon(tmp_path, emu, wrapper)
    stop_at_end.append(daemon)
    begun = len(wrapper.restores_begun())  # start-up's
    wrapper.hold_calls()
    with ConsoleSession.unix(daemon.sock, timeout=60) as con:
        assert con.send("set host web1 off").startswith("ok: ")
        wait_until(lambda: len(wrapper.held_pids()) == 1, 30, "web1's -R to be held")
        # Before: each answer waited for the hung -R (killed after 5 s, then retried once).
        assert con.send("set host web2 off").startswith("ok: ")
        assert con.send("set host web3 weight 3").startswith("ok: ")
        # Answered while the first -R is still held: none was killed and retried meanwhile
        # (the ipvsadm timeout, 5 s, is the bound: far above two answers, below the old wait).
        held = wrapper.held_pids()
        assert len(held) == 1, "the held -R was killed and retried before the answers came"
        assert alive(held[0]), "the held -R ended before the commands were answered"
        assert len(wrapper.restores_begun()) == begun + 1  # web1's, held
        shown = con.send("show host web2")
        assert "default" in shown, shown  # committed: the reason is there
    wrapper.release()
    wait_weight(emu, key(1), 0)
    wait_weight(emu, key(2), 0)
    wait_weight(emu, key(3), 3)
    # web2 and web3, asked while the applier was busy, went to the kernel in one batch.
    batches = [inv.batch_lines() for inv in emu.changing_invocations()]
    together = [b for b in batches if any("127.0.0.62" in x for x in b)]
    assert together and any("127.0.0.63" in x for x in together[-1]), batches


def test_sigterm_begins_no_kernel_operation_and_the_next_start_applies_the_change(
    tmp_path: Path, emu: Emulator, stop_at_end: list[DaemonProcess]
) -> None:
    """Item 14: a command acknowledged while the applier is held in a table read; SIGTERM, then
    the read returns: no `-R` is begun after the signal; the change is applied at the next start."""
    wrapper = HeldIpvsadm(tmp_path, emu, "-S")
    daemon = start_daemon(tmp_path, emu, wrapper)
    stop_at_end.append(daemon)
    wrapper.hold_calls()  # the next resync's read (IPVS.ResyncPeriod=1) is held
    wait_until(lambda: len(wrapper.held_pids()) == 1, 30, "a resync's -S to be held")
    with ConsoleSession.unix(daemon.sock, timeout=60) as con:
        assert con.send("set host web1 off").startswith("ok: ")
    assert emu.weights()[key(1)] == 10  # acknowledged, not yet applied: the applier is held
    offset = daemon.log_size()
    signalled = time.time()
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_log("ipvswm stopping", offset=offset)
    wrapper.release()
    assert daemon.stop() == 0
    wait_until(lambda: not any(map(alive, wrapper.held_pids())), 30, "the held -S to end")
    begun_after = [t for t in wrapper.restores_begun() if t >= signalled]
    assert begun_after == [], "a kernel operation was begun after SIGTERM"
    assert emu.weights()[key(1)] == 10
    # The acknowledged change is in the DB: the next start applies it.
    daemon.start()
    wait_weight(emu, key(1), 0)
