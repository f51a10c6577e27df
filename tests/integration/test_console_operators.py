"""Only operators change state, and replies tell the truth: the real daemon (issue 10 items 8-12).

Item 8 runs a real unprivileged uid (`nobody`, through `socat` started with `user=`) against the
TCP console of a daemon running as root: it may read, not change. Real servers on
127.0.0.131-133; VSs in 192.0.2.0/24 (never contacted).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import ipvswm_command
from tests.support.daemon import run_cli
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import table_weights
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

VIP = "192.0.2.31:80"
NOBODY = 65534


def need_root() -> None:
    """Item 8 needs a second, unprivileged uid: only root can start a process as one."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("the console authority tests must run as root in CI")
        pytest.skip("needs root (to run a client as uid 65534)")


class Site:
    def __init__(self, farm: ThreadedRealServers, tmp: Path) -> None:
        self.emu = Emulator(tmp / "emu")
        self.servers: dict[str, ThreadedRealServer] = {
            "h1": farm.start("127.0.0.131"),
            "h2": farm.start("127.0.0.132"),
            "h3": farm.start("127.0.0.133"),
        }
        lines = [f"! www {VIP} /health"]
        lines += [f"{tag} {s.address}:{s.port} www=10" for tag, s in self.servers.items()]
        self.daemon = DaemonProcess(
            tmp,
            "\n".join(lines) + "\n",
            env=self.emu.env,
            options={
                "IPVSADM": self.emu.binary,
                "Check.Timeout.Connect": "1",
                "Check.Timeout.Response": "2",
            },
        )

    def weight(self, tag: str) -> int | None:
        server = self.servers[tag]
        return table_weights(self.emu.table_text()).get(f"{VIP} {server.address}:{server.port}")

    def wait_weight(self, tag: str, weight: int) -> None:
        wait_until(lambda: self.weight(tag) == weight, 15, f"{tag} weight {weight}")

    def ctl(self, *words: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.daemon, "ctl", "-c", str(self.daemon.config), *words)

    def tcp(self, lines: str, uid: int | None = None) -> str:
        """Send lines to the TCP console with socat (as `uid` if given); everything it answers."""
        ids = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
        done = subprocess.run(
            ["socat", "-t", "10", "-", f"TCP:127.0.0.1:{self.daemon.tcp_port}"],
            input=lines,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            **ids,  # type: ignore[call-overload]
        )
        return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with ThreadedRealServers() as farm:
        s = Site(farm, tmp_path_factory.mktemp("operators"))
        s.daemon.start()
        try:
            for tag in s.servers:
                s.wait_weight(tag, 10)
            yield s
        finally:
            if s.daemon.proc is not None:
                s.daemon.stop()


# --- item 8 -----------------------------------------------------------------------------------


def test_an_unprivileged_local_user_may_read_but_not_change(site: Site) -> None:
    need_root()
    out = site.tcp("set host h1 off\nshow host h1\nconfig reload\n", uid=NOBODY)
    assert "# not allowed: uid 65534 (nobody) may only read" in out
    assert "ok: host h1" not in out
    assert "h1/www " in out and "Reasons=-" in out  # show works
    assert out.count("# not allowed:") == 2  # config reload too
    # The refusal never reached the engine: a later change of root's is applied, h1 untouched.
    assert site.ctl("set", "host", "h3", "off").returncode == 0
    site.wait_weight("h3", 0)
    assert site.weight("h1") == 10
    assert "Reasons=-" in site.daemon.command("show host h1")
    assert site.ctl("set", "host", "h3", "on").returncode == 0


def test_root_over_tcp_may_change(site: Site) -> None:
    need_root()
    out = site.tcp("set host h2 off reason tcp\n")
    assert "ok: host h2: off (reasons tcp)" in out
    site.wait_weight("h2", 0)
    assert "ok: host h2: on" in site.tcp("set host h2 on reason tcp\n")
    site.wait_weight("h2", 10)


def test_allowed_users_and_groups_may_change(site: Site) -> None:
    need_root()
    offset = site.daemon.log_size()
    site.daemon.write_config(site.daemon.body, {"Management.Socket.AllowUsers": "nobody"})
    site.daemon.wait_log("config reload applied", offset=offset)
    out = site.tcp("set host h2 off reason nobody\n", uid=NOBODY)
    assert "ok: host h2: off (reasons nobody)" in out, out
    site.wait_weight("h2", 0)
    offset = site.daemon.log_size()
    site.daemon.write_config(
        site.daemon.body,
        {"Management.Socket.AllowUsers": "", "Management.Socket.AllowGroups": "nogroup"},
    )
    site.daemon.wait_log("config reload applied", offset=offset)
    out = site.tcp("set host h2 on reason nobody\n", uid=NOBODY)  # nobody's group is nogroup
    assert "ok: host h2: on (reasons nobody)" in out, out
    site.wait_weight("h2", 10)
    offset = site.daemon.log_size()
    site.daemon.write_config(site.daemon.body, {"Management.Socket.AllowGroups": ""})
    site.daemon.wait_log("config reload applied", offset=offset)
    assert "# not allowed" in site.tcp("set host h2 off\n", uid=NOBODY)


def test_a_console_off_loopback_needs_a_token(site: Site, tmp_path: Path) -> None:
    conf = tmp_path / "open.conf"
    conf.write_text("Management.Socket.IP=0.0.0.0\n" + site.daemon.config.read_text())
    done = run_cli(site.daemon, "check-config", "-c", str(conf))
    assert done.returncode != 0
    assert "is not a loopback address" in done.stdout + done.stderr
    assert "Management.Socket.Token" in done.stdout + done.stderr
    conf.write_text(
        "Management.Socket.IP=0.0.0.0\nManagement.Socket.Token=0123456789abcdef\n"
        + site.daemon.config.read_text()
    )
    assert run_cli(site.daemon, "check-config", "-c", str(conf)).returncode == 0


# --- item 10 ----------------------------------------------------------------------------------


def test_on_that_removes_nothing_names_the_reasons_and_exits_1(site: Site) -> None:
    assert site.ctl("set", "host", "h3", "off", "reason", "maint").returncode == 0
    site.wait_weight("h3", 0)
    done = site.ctl("set", "host", "h3", "on")
    assert done.returncode == 1
    assert "# nothing removed: host h3 has no reason 'default'; still off (maint)" in (
        done.stdout + done.stderr
    )
    assert site.weight("h3") == 0
    done = site.ctl("set", "host", "h3", "on", "reason", "maint")
    assert done.returncode == 0, done.stdout
    site.wait_weight("h3", 10)


# --- item 12 ----------------------------------------------------------------------------------


def test_escapes_from_console_input_never_reach_the_log_or_the_terminal(site: Site) -> None:
    offset = site.daemon.log_size()
    evil = "set host h1 off reason \x1b]0;owned\x07"
    with open(site.daemon.fifo, "w", encoding="utf-8") as fifo:
        fifo.write(evil + "\n")
    site.daemon.wait_log("fifo: ??? bad reason", offset=offset)
    logged = site.daemon.log_text(offset)
    assert "\x1b" not in logged and "\x07" not in logged
    assert "fifo> set host h1 off reason \\x1b]0;owned\\x07" in logged
    out = site.tcp("show host \x1b[2J\n")
    assert "\x1b" not in out and "no such host '\\x1b[2J'" in out
    assert site.weight("h1") == 10


# --- item 9 -----------------------------------------------------------------------------------


def test_no_answer_from_empty_state_while_the_daemon_starts(
    farm: ThreadedRealServers, emu: Emulator, tmp_path: Path
) -> None:
    emu.require_emulator()  # the emulator's table lock holds the first kernel read
    server = farm.start("127.0.0.134")
    body = f"! www {VIP} /health\nweb {server.address}:{server.port} www=10\n"
    daemon = DaemonProcess(tmp_path, body, env=emu.env, options={"IPVSADM": emu.binary})
    daemon.start()
    try:
        assert daemon.ctl("set", "host", "web", "off", "reason", "maint")[0] == 0
    finally:
        daemon.stop()
    offset = daemon.log_size()
    with open(str(emu.state) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # every ipvsadm call waits: the kernel cannot be read
        with open(daemon.stderr, "ab") as err:
            daemon.proc = subprocess.Popen(
                [*ipvswm_command(), "run", "--foreground", "-c", str(daemon.config)],
                env=daemon.env,
                stdout=err,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        try:
            daemon.wait_log(f"console listening on {daemon.sock}", timeout=20, offset=offset)
            code, reply = daemon.ctl("show", "host", "web")
            assert code == 1, reply
            assert reply["lines"] == [
                "# the daemon is starting: the kernel table has not been read yet"
            ]
            code, reply = daemon.ctl("set", "host", "web", "on", "reason", "maint")
            assert code == 1, reply
            assert "ipvswm running" not in daemon.log_text(offset)  # still starting throughout
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        daemon.wait_log("ipvswm running", timeout=20, offset=offset)
        code, reply = daemon.ctl("show", "host", "web")
        assert code == 0
        assert "Reasons=host:maint" in str(reply["lines"])
    finally:
        daemon.stop()
