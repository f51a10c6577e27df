"""The rolling-deploy loop of docs/rolling-deploy.md, run with bash against the real daemon.

The script is taken from the document itself (its ```sh block), so that the document and what
is tested cannot drift apart; only the config path, the ramp (30 s -> 2 s) and, where a test
needs it, the `wait … up` timeout are substituted. `./deploy.sh` is a fake that records the host
and the time and changes nothing.
Addresses: real servers on 127.0.0.130-127.0.0.132; the VS is 192.0.2.40:80 (never contacted).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import REPO
from tests.support.daemon import DaemonProcess
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.emulator import Invocation
from tests.support.emulator import table_weights
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "rolling-deploy.md"
VIP = "192.0.2.40:80"
HOSTS = ("web1", "web2", "web3")
FULL = 10
RAMP = 2
FAKE_DEPLOY = """#!/bin/sh
echo "$1 $(date +%s.%N)" >> deployed.txt
case " ${FAIL_DEPLOY:-} " in *" $1 "*) exit 1;; esac
exit 0
"""


def doc_script(conf: Path, *, up_timeout: int | None = None) -> str:
    """The document's script with our config, a short ramp and optionally a short wait."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert match, f"no ```sh block in {DOC}"
    script = match.group(1)
    edits = [
        ("CONF=/etc/ipvs-weightman.conf", f"CONF={shlex.quote(str(conf))}"),
        ("on reason deploy in 30", f"on reason deploy in {RAMP}"),
    ]
    if up_timeout is not None:
        edits.append(("up timeout 300", f"up timeout {up_timeout}"))
    for old, new in edits:
        assert script.count(old) == 1, f"the document's script no longer has {old!r}"
        script = script.replace(old, new)
    return script


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, ThreadedRealServer]]:
    with ThreadedRealServers() as farm:
        yield {tag: farm.start(f"127.0.0.{130 + i}") for i, tag in enumerate(HOSTS)}


class Deploy:
    """A daemon with three hosts on one VS, and a work directory holding the script."""

    def __init__(self, servers: dict[str, ThreadedRealServer], tmp: Path) -> None:
        self.servers = servers
        self.emu = Emulator(tmp / "emu")
        body = f"! www {VIP} /health\n" + "".join(
            f"{tag} {self.rs(tag)} www={FULL}\n" for tag in HOSTS
        )
        self.daemon = DaemonProcess(
            tmp,
            body,
            env=self.emu.env,
            options={
                "IPVSADM": self.emu.binary,
                "Check.Timeout.Connect": "1",
                "Check.Timeout.Response": "2",
            },
        )
        self.work = tmp / "work"
        self.work.mkdir()
        deploy = self.work / "deploy.sh"
        deploy.write_text(FAKE_DEPLOY)
        deploy.chmod(0o755)
        self.mark = 0

    def rs(self, tag: str) -> str:
        return f"{self.servers[tag].address}:{self.servers[tag].port}"

    def weights(self) -> dict[str, int]:
        """host -> kernel weight now."""
        table = table_weights(self.emu.table_text())
        return {tag: table.get(f"{VIP} {self.rs(tag)}", -1) for tag in HOSTS}

    def start(self) -> None:
        self.daemon.start()
        wait_until(lambda: self.weights() == dict.fromkeys(HOSTS, FULL), 10, "all hosts up")
        self.mark = len(self.emu.invocations())

    def run(self, script: str, *hosts: str, **env: str) -> subprocess.CompletedProcess[str]:
        """Run the script with bash in the work directory, `ipvswm` on PATH from the venv."""
        path = self.work / "rolling-deploy.sh"
        path.write_text(script)
        venv_bin = os.path.dirname(sys.executable)
        assert shutil.which("ipvswm", path=venv_bin), f"no ipvswm in {venv_bin}"
        full_env = {**self.daemon.env, **env}
        full_env["PATH"] = venv_bin + os.pathsep + full_env.get("PATH", os.defpath)
        return subprocess.run(
            ["bash", str(path), *hosts],
            cwd=self.work,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def deployed(self) -> list[tuple[str, float]]:
        """(host, time) of each call of the fake deploy.sh."""
        log = self.work / "deployed.txt"
        if not log.exists():
            return []
        return [(h, float(t)) for h, t in (line.split() for line in log.read_text().splitlines())]

    def history(self) -> list[tuple[float, dict[str, int]]]:
        """The weights after each table-changing ipvsadm call since start(), by replaying them."""
        by_rs = {self.rs(tag): tag for tag in HOSTS}
        weights = dict.fromkeys(HOSTS, FULL)
        out: list[tuple[float, dict[str, int]]] = []
        calls: list[Invocation] = self.emu.invocations()[self.mark :]
        for call in calls:
            if not call.changing:
                continue
            assert call.command == "-R", f"expected one -R batch per step: {call.argv}"
            for line in call.batch_lines():
                words = line.split()
                assert words[0] == "-e" and words[2] == VIP, f"unexpected operation: {line}"
                weights[by_rs[words[4]]] = int(words[words.index("-w") + 1])
            out.append((call.time, dict(weights)))
        return out


@pytest.fixture
def deploy(servers: dict[str, ThreadedRealServer], tmp_path: Path) -> Iterator[Deploy]:
    d = Deploy(servers, tmp_path)
    try:
        d.start()
        yield d
    finally:
        if d.daemon.proc is not None:
            d.daemon.stop()


def weight_at(history: list[tuple[float, dict[str, int]]], host: str, when: float) -> int:
    weight = FULL
    for stamp, weights in history:
        if stamp > when:
            break
        weight = weights[host]
    return weight


def test_rolling_deploy_takes_one_host_at_a_time(deploy: Deploy) -> None:
    done = deploy.run(doc_script(deploy.daemon.config), *HOSTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("== all hosts deployed")
    assert deploy.weights() == dict.fromkeys(HOSTS, FULL)

    deployed = deploy.deployed()
    assert [host for host, _ in deployed] == list(HOSTS)
    history = deploy.history()
    assert history, "no kernel change at all"
    order: list[str] = []
    for stamp, weights in history:
        below = [tag for tag, w in weights.items() if w < FULL]
        # one host at a time: never two below full weight, let alone two at 0
        assert len(below) <= 1, f"at {stamp}: {weights}"
        if below and (not order or order[-1] != below[0]):
            order.append(below[0])
    assert order == list(HOSTS), f"hosts left full weight in this order: {order}"
    for host, when in deployed:
        assert weight_at(history, host, when) == 0, f"{host} deployed while carrying weight"
        seen = [w[host] for _, w in history]
        assert seen[-1] == FULL
        # back via the ramp: weight 0, then some weight between 0 and full, then full
        first_zero = seen.index(0)
        assert any(0 < w < FULL for w in seen[first_zero:]), f"{host}: no ramp in {seen}"
    assert "Phase" not in done.stderr  # nothing failed, so `show host` was never printed


def test_a_host_held_for_another_reason_stops_the_loop(deploy: Deploy) -> None:
    code, _ = deploy.daemon.ctl("set", "host", "web2", "off", "for", "reason", "kernel")
    assert code == 0
    wait_until(lambda: deploy.weights()["web2"] == 0, 10, "web2 at weight 0")
    deploy.mark = len(deploy.emu.invocations())

    script = doc_script(deploy.daemon.config, up_timeout=3)
    done = deploy.run(script, *HOSTS)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "web2 did not come back up" in done.stderr
    assert "Reasons=host:kernel" in done.stderr  # the `show host` it prints
    assert [host for host, _ in deploy.deployed()] == ["web1", "web2"]
    # web1 was done and is back; web2 stays out (for 'kernel' only); web3 was never touched
    assert deploy.weights() == {"web1": FULL, "web2": 0, "web3": FULL}
    assert all(w["web3"] == FULL for _, w in deploy.history())
    code, reply = deploy.daemon.ctl("show", "host", "web2")
    pair = reply["data"]["hosts"][0]["pairs"][0]  # type: ignore[index]
    assert pair["host_reasons"] == ["kernel"]


def test_a_failed_deploy_leaves_the_host_out_of_service(deploy: Deploy) -> None:
    done = deploy.run(doc_script(deploy.daemon.config), *HOSTS, FAIL_DEPLOY="web1")
    assert done.returncode == 1
    assert "deploy to web1 failed: it stays out of service (reason 'deploy')" in done.stderr
    assert [host for host, _ in deploy.deployed()] == ["web1"]
    assert deploy.weights() == {"web1": 0, "web2": FULL, "web3": FULL}
    code, reply = deploy.daemon.ctl("show", "host", "web1")
    assert code == 0
    assert reply["data"]["hosts"][0]["pairs"][0]["host_reasons"] == ["deploy"]  # type: ignore[index]
