"""The console against the real daemon process (issue 6): TCP, Unix socket, FIFO, socat, `ctl`.

One daemon serves the whole module; every test that changes state owns a host of its own, so the
tests do not depend on each other's order. The fuzz test is in test_console_fuzz.py.
Addresses: real servers on 127.0.0.120-127.0.0.129 (.127 and .128 are the fuzz daemon's);
virtual services in 192.0.2.0/24 (never contacted: they only exist in the emulated table).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ConsoleSession
from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import run_cli
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import table_weights
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

WWW = "192.0.2.20:80"
SLOW = "192.0.2.21:80"  # checked every 2 s: shows that an enable waits for a fresh check
# tag -> (real-server address, VS list); one host per test that changes state
HOSTS = {
    "web": ("127.0.0.120", "www=10"),
    "fifo": ("127.0.0.121", "www=10"),
    "maint": ("127.0.0.122", "www=10"),
    "lazy": ("127.0.0.123", "slow=10"),
    "ramp": ("127.0.0.124", "www=1000"),
    "over": ("127.0.0.125", "www=10"),
    "waiter": ("127.0.0.126", "www=10"),
    "drain": ("127.0.0.129", "www=10"),
}
# Generous check timeouts: a loaded 2-core machine must not fail a check by accident.
OPTIONS = {"Check.Timeout.Connect": "1", "Check.Timeout.Response": "2"}


class Site:
    """The module's daemon, its emulated kernel and one real server per host."""

    def __init__(self, farm: ThreadedRealServers, tmp: Path) -> None:
        self.emu = Emulator(tmp / "emu")
        self.servers: dict[str, ThreadedRealServer] = {
            tag: farm.start(address) for tag, (address, _) in HOSTS.items()
        }
        lines = [f"! www {WWW} /health", f"! slow {SLOW} /health interval=2"]
        for tag, (_, pairs) in HOSTS.items():
            lines.append(f"{tag} {self.rs(tag)} {pairs}")
        self.daemon = DaemonProcess(
            tmp,
            "\n".join(lines) + "\n",
            env=self.emu.env,
            options={"IPVSADM": self.emu.binary, **OPTIONS},
        )

    def rs(self, tag: str) -> str:
        server = self.servers[tag]
        return f"{server.address}:{server.port}"

    def key(self, tag: str) -> str:
        vip = SLOW if "slow=" in HOSTS[tag][1] else WWW
        return f"{vip} {self.rs(tag)}"

    def full(self, tag: str) -> int:
        return int(HOSTS[tag][1].split("=")[1])

    def weight(self, tag: str) -> int | None:
        """The host's weight in the emulated kernel (None: absent)."""
        return table_weights(self.emu.table_text()).get(self.key(tag))

    def wait_weight(self, tag: str, weight: int | None, timeout: float = 10.0) -> None:
        wait_until(lambda: self.weight(tag) == weight, timeout, f"{tag} weight {weight}")

    def show(self, tag: str) -> str:
        """`show host TAG` over the Unix socket: the pair line(s) and the summary line."""
        return self.daemon.command(f"show host {tag}")

    def ctl(self, *words: str) -> subprocess.CompletedProcess[str]:
        """`ipvswm ctl -c CONFIG WORDS…` in text mode."""
        return run_cli(self.daemon, "ctl", "-c", str(self.daemon.config), *words)

    def checks_after(self, tag: str, count: int = 2) -> None:
        """Wait until `count` more checks reached the host's server."""
        server = self.servers[tag]
        server.wait_requests(len(server.requests) + count, timeout=10)


def field(text: str, name: str) -> str:
    """The value of `Name=value` in a `show` line."""
    match = re.search(rf"\b{re.escape(name)}=(\S+)", text)
    assert match, f"no {name}= in {text!r}"
    return match.group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with ThreadedRealServers() as farm:
        s = Site(farm, tmp_path_factory.mktemp("console"))
        s.daemon.start()
        try:
            for tag in HOSTS:
                s.wait_weight(tag, s.full(tag))
            yield s
        finally:
            if s.daemon.proc is not None:
                s.daemon.stop()


# --- TCP, socat, the Unix socket --------------------------------------------------------------


def test_tcp_console_greets_answers_and_survives_bad_input(site: Site) -> None:
    with ConsoleSession.tcp(site.daemon.tcp_port) as con:
        assert con.greeting.startswith("ipvs-weightman console. Commands:")
        assert "  show host[s] [H1,H2] [for|in V1,V2]" in con.greeting
        assert "  set host H off" in con.greeting
        assert con.greeting.endswith("\n$ ")

        hosts = con.send("show hosts").splitlines()
        summaries = [line.split()[0] for line in hosts if " Total.ActiveConn=" in line]
        assert summaries == list(HOSTS)
        web = next(line for line in hosts if line.startswith("web/www "))
        assert web.startswith(f"web/www {site.rs('web')} Reasons=- Weight.Config=10")
        assert field(web, "Proc.Weight") == "10"
        assert field(web, "Phase") == "ENABLED"

        reply = con.send("frobnicate the web").splitlines()
        assert reply == ["??? unknown command 'frobnicate'", "    usage: help"]
        # a near miss gets the closest command's syntax as its hint
        reply = con.send("sho hosts").splitlines()
        assert reply[0].startswith("???")
        assert reply[1] == "    usage: show host[s] [H1,H2] [for|in V1,V2]"
        assert con.send("set host web sideways").startswith("??? ")
        assert con.send("show host nosuch").splitlines() == ["# no such host 'nosuch'"]
        assert con.send("show " + "x" * 5000).startswith("??? line too long (max 4096 bytes)")
        assert con.send(b"show \xff\xfe vs").startswith("??? input is not UTF-8 text")
        assert con.send("") == ""  # an empty line: just a new prompt

        # the session goes on: trimmed, whitespace collapsed, keywords case-insensitive
        assert con.send("   SHOW \t  Vs   ").startswith(f"www tcp:{WWW} Check=/health")
        assert "Combined.TStatus=0-DONE" in con.send("show host web")
        assert "history" in con.send("help hist")
        con.send_line("quit")
        assert con.read_to_eof() == "bye\n"
    assert site.weight("web") == 10
    assert not site.daemon.proc_exited()


def test_two_commands_in_one_packet_get_two_replies(site: Site) -> None:
    with ConsoleSession.tcp(site.daemon.tcp_port) as con:
        con.send_line("show vs slow\nshow host web")
        assert con.reply().startswith(f"slow tcp:{SLOW}")
        assert con.reply().startswith("web/www ")


needs_socat = pytest.mark.skipif(shutil.which("socat") is None, reason="socat is not installed")


def socat(address: str, stdin: str) -> str:
    # -t 5: after our EOF, wait up to 5 s for the daemon's last bytes (it closes at once).
    done = subprocess.run(
        ["socat", "-t", "5", "-", address],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@needs_socat
def test_socat_over_tcp(site: Site) -> None:
    out = socat(f"TCP:127.0.0.1:{site.daemon.tcp_port}", "show vs\n")
    assert out.startswith("ipvs-weightman console. Commands:")
    assert f"\n$ www tcp:{WWW} Check=/health Hosts=7" in out
    assert out.endswith("\n$ ")


@needs_socat
def test_socat_over_the_unix_socket(site: Site) -> None:
    out = socat(f"UNIX-CONNECT:{site.daemon.sock}", "show host web\nquit\n")
    assert f"\n$ web/www {site.rs('web')} " in out
    assert out.endswith("Combined.TStatus=0-DONE\n$ bye\n")


def test_unix_socket_is_private_and_ctl_uses_it(site: Site, tmp_path: Path) -> None:
    mode = os.stat(site.daemon.sock).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600
    # A config naming the daemon's socket and a TCP port where nobody listens: only the Unix
    # socket can answer.
    conf = tmp_path / "unix-only.conf"
    conf.write_text(
        f"Management.Socket.Path={site.daemon.sock}\n"
        f"Management.Socket.Port={free_port('127.0.0.1')}\n"
    )
    done = run_cli(site.daemon, "ctl", "-c", str(conf), "show", "host", "web")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"web/www {site.rs('web')} ")


# --- the FIFO ---------------------------------------------------------------------------------


def test_fifo_command_disables_the_host_and_logs_its_output(site: Site) -> None:
    fifo = site.daemon.fifo
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    offset = site.daemon.log_size()
    subprocess.run(["sh", "-c", f"echo 'set host fifo off' > '{fifo}'"], check=True, timeout=10)
    site.wait_weight("fifo", 0)
    site.daemon.wait_log("fifo: ok: host fifo: off (reasons default)", offset=offset)
    assert "fifo> set host fifo off" in site.daemon.log_text(offset)
    # a bad line and an unknown host: answered in the log, nothing else happens
    subprocess.run(
        ["sh", "-c", f"printf 'bogus words\\nset host nosuch on\\n' > '{fifo}'"],
        check=True,
        timeout=10,
    )
    site.daemon.wait_log("fifo: # no such host 'nosuch'", offset=offset)
    assert "fifo: ??? unknown command 'bogus'" in site.daemon.log_text(offset)
    subprocess.run(["sh", "-c", f"echo 'set host fifo on' > '{fifo}'"], check=True, timeout=10)
    site.wait_weight("fifo", 10)


# --- admin state through ctl ------------------------------------------------------------------


def test_maintenance_with_two_reasons(site: Site) -> None:
    assert site.ctl("set", "host", "maint", "off", "for", "reasons", "a,b").returncode == 0
    site.wait_weight("maint", 0)
    assert field(site.show("maint"), "Reasons") == "host:a,host:b"

    done = site.ctl("set", "host", "maint", "on", "reasons", "a")
    assert done.returncode == 0, done.stderr
    # applied, and the operator is told the host is still held by the other reason
    assert done.stdout == "ok: host maint: on (reasons a)\nnote: still off (b)\n"
    site.checks_after("maint")  # passing checks change nothing while a reason remains
    assert site.weight("maint") == 0
    shown = site.show("maint")
    assert field(shown, "Reasons") == "host:b"
    assert field(shown, "Phase") == "DISABLED"

    assert site.ctl("set", "host", "maint", "on", "reasons", "b").returncode == 0
    site.wait_weight("maint", 10)
    shown = site.show("maint")
    assert field(shown, "Reasons") == "-"
    assert field(shown, "Phase") == "ENABLED"


def test_enable_waits_for_a_check_that_started_after_it(site: Site) -> None:
    server = site.servers["lazy"]
    with ConsoleSession.unix(site.daemon.sock) as con:
        assert con.send("set host lazy off").startswith("ok: ")
        site.wait_weight("lazy", 0)
        # Right after a check (interval 2 s), so the next one is ~2 s away: the last pass is
        # fresh, passing, and still must not count.
        server.wait_requests(len(server.requests) + 1, timeout=10)
        command_time = time.time()
        assert con.send("set host lazy on").startswith("ok: host lazy: on")
        shown = con.send("show host lazy")
    assert field(shown, "Phase") == "AWAIT_PASS"
    assert field(shown, "Weight.Desired") == "0"
    assert field(shown, "Proc.Weight") == "0"
    assert site.weight("lazy") == 0

    samples: list[tuple[float, int | None]] = []  # (time the read finished, weight)

    def up() -> bool:
        weight = site.weight("lazy")
        samples.append((time.time(), weight))
        return weight == 10

    wait_until(up, 10, "lazy back at weight 10")
    fresh = [r.time for r in server.requests if r.time >= command_time]
    assert fresh, "the weight came back without a check after the command"
    first_fresh = min(fresh)
    early = [(t, w) for t, w in samples if t < first_fresh and w != 0]
    assert not early, f"weight > 0 before the first check after 'on' ({first_fresh}): {early}"
    back = next(t for t, w in samples if w == 10)
    assert back - command_time > 1.0  # it waited for the next check, not the recent pass


def test_enable_with_a_ramp_is_visible(site: Site) -> None:
    assert site.ctl("set", "host", "ramp", "off").returncode == 0
    site.wait_weight("ramp", 0)
    command_time = time.time()
    assert site.ctl("set", "host", "ramp", "on", "in", "20").returncode == 0
    wait_until(lambda: 0 < (site.weight("ramp") or 0) < 1000, 10, "ramp weight between 0 and T")

    shown = site.show("ramp")
    assert field(shown, "Phase") == "RAMPING"
    desired = int(field(shown, "Weight.Desired"))
    assert 0 < desired < 1000
    left = re.search(r"Ramp=(\d+\.\d)s\(until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)", shown)
    assert left, shown
    assert 15.0 < float(left.group(1)) <= 20.0
    assert "Combined.TStatus=1-RAMPING" in shown

    code, reply = site.daemon.ctl("show", "host", "ramp")
    assert code == 0
    pair = reply["data"]["hosts"][0]["pairs"][0]  # type: ignore[index]
    assert pair["phase"] == "RAMPING" and pair["ramp_duration"] == 20.0
    assert command_time + 15 < pair["ramp_deadline"] <= time.time() + 20

    # the kernel follows the curve upwards: ceil(1000 / (left + 1)) grows every ~0.4 s
    seen: list[int] = []

    def climbing() -> bool:
        weight = site.weight("ramp") or 0
        if not seen or seen[-1] != weight:
            seen.append(weight)
        return len(seen) >= 3

    wait_until(climbing, 10, "the ramp weight to rise twice")
    assert seen == sorted(seen) and all(0 < w < 1000 for w in seen), seen


def test_weight_override_set_and_cleared(site: Site) -> None:
    offset = site.daemon.log_size()
    done = site.ctl("set", "host", "over", "weight", "7")
    assert done.returncode == 0, done.stderr
    site.wait_weight("over", 7)
    shown = site.show("over")
    assert field(shown, "Weight.Override") == "7"
    assert field(shown, "Weight.Config") == "10"
    assert field(shown, "Weight.Desired") == "7"
    # ctl came in through the Unix socket (its session is called 'unix')
    assert "console unix: host over: weight 7" in site.daemon.log_text(offset)

    assert site.ctl("set", "host", "over", "weight", "default").returncode == 0
    site.wait_weight("over", 10)
    shown = site.show("over")
    assert field(shown, "Weight.Override") == "-"
    assert field(shown, "Weight.Desired") == "10"


def test_ctl_wait_up_and_timeout_without_blocking_others(site: Site) -> None:
    cmd = ["ctl", "-c", str(site.daemon.config)]
    assert site.ctl("set", "host", "waiter", "off").returncode == 0
    site.wait_weight("waiter", 0)
    with ConsoleSession.unix(site.daemon.sock) as waiting:
        waiting.send_line("wait host waiter up timeout 30")
        started = time.monotonic()
        timed_out = site.ctl("wait", "host", "waiter", "up", "timeout", "1")
        took = time.monotonic() - started
        assert timed_out.returncode == 3, timed_out
        assert timed_out.stderr.startswith("# timeout: host waiter not up after 1s")
        assert took >= 1.0
        # two waits are pending in the daemon; other commands are still answered at once
        shown = run_cli(site.daemon, *cmd, "show", "hosts")
        assert shown.returncode == 0
        assert "waiter Total.ActiveConn=0 Total.Weight=0" in shown.stdout
        waiting.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            waiting.sock.recv(1)  # the 30 s wait has not answered
        waiting.sock.settimeout(20)

        assert site.ctl("set", "host", "waiter", "on").returncode == 0
        up = site.ctl("wait", "host", "waiter", "up")
        assert up.returncode == 0, up
        assert up.stdout.startswith("ok: host waiter is up (after ")
        assert site.weight("waiter") == 10  # full weight when `wait … up` returns
        assert waiting.reply().startswith("ok: host waiter is up")


def test_wait_quiescent_does_not_trust_stale_connection_counts(site: Site) -> None:
    site.emu.require_emulator()
    # Right after a resync read (which saw no connection), so the next one is ~1 s away.
    reads = len([c for c in site.emu.invocations() if "-L" in c.argv])
    wait_until(
        lambda: len([c for c in site.emu.invocations() if "-L" in c.argv]) > reads,
        10,
        "a resync read of the connection counters",
    )
    site.emu.set_connections(f"tcp:{WWW}", site.rs("drain"), active=3)
    with ConsoleSession.unix(site.daemon.sock) as con:
        assert con.send("set host drain off").startswith("ok: ")
        reply = con.send("wait host drain quiescent timeout 2")
    site.emu.set_connections(f"tcp:{WWW}", site.rs("drain"), active=0)
    # The kernel showed 3 active connections the whole time: this must time out.
    assert reply.startswith("# timeout: host drain not quiescent"), reply


def test_ctl_json_and_exit_codes(site: Site, tmp_path: Path) -> None:
    done = site.ctl("--json", "show", "hosts", "web")
    assert done.returncode == 0
    assert done.stdout.count("\n") == 1
    reply = json.loads(done.stdout)
    assert reply["ok"] is True and reply["status"] == 0
    assert reply["data"]["hosts"][0]["tstatus"] == "0-DONE"
    assert reply["lines"][-1].startswith("web Total.ActiveConn=0 Total.Weight=10")

    done = site.ctl("--json", "set", "host", "nosuch", "off")
    assert done.returncode == 1
    reply = json.loads(done.stdout)
    assert reply["ok"] is False and reply["lines"] == ["# no such host 'nosuch'"]
    done = site.ctl("show", "host", "nosuch")  # text mode: the error goes to stderr
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "# no such host 'nosuch'\n")

    done = site.ctl("--json", "show", "hostz")  # not understood: a usage error
    assert done.returncode == 2
    assert json.loads(done.stdout)["lines"][0].startswith("???")

    conf = tmp_path / "nobody.conf"
    conf.write_text(
        f"Management.Socket.Path={tmp_path / 'no.sock'}\n"
        f"Management.Socket.Port={free_port('127.0.0.1')}\n"
    )
    done = run_cli(site.daemon, "ctl", "-c", str(conf), "--json", "show", "hosts")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "cannot reach the daemon" in done.stderr
