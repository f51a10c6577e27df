"""Real NAT traffic through the VIP, driven by the daemon on the real kernel (VM tier only).

Real servers rs1 (weight 300) and rs2 (weight 100) in namespaces; the client in its own. Each phase
records the requests per server in the tier's report (tests/kernel/tier.sh prints it).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.kernel.netns import VIP
from tests.kernel.netns import Topology
from tests.kernel.netns import sh
from tests.support.daemon import DaemonProcess
from tests.support.daemon import ipvswm_command
from tests.support.daemon import wait_until

pytestmark = pytest.mark.integration

# Python under TCG is 5-10x slower than on a host: generous bounds, never timed asserts.
SLOW = 240.0


def report(line: str) -> None:
    """One line of the traffic table (the tier prints the file at its end)."""
    path = os.environ.get("IPVSWM_VM_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def kernel_dests() -> dict[str, tuple[int, int]]:
    """RIP -> (weight, ActiveConn) of the VIP's service, from the real `ipvsadm -Ln`."""
    out = sh("ipvsadm", "-L", "-n", "-t", f"{VIP}:80")
    dests: dict[str, tuple[int, int]] = {}
    for m in re.finditer(r"->\s+([\d.]+):\d+\s+\w+\s+(\d+)\s+(\d+)", out):
        dests[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return dests


def weight(address: str) -> int | None:
    entry = kernel_dests().get(address)
    return None if entry is None else entry[0]


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    topo = Topology().up()
    yield topo
    topo.down()


@pytest.fixture(scope="module")
def daemon(topology: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    rs1, rs2 = topology.servers
    body = (
        f"! www {VIP}:80 /health scheduler=wrr,method=nat\n"
        f"rs1 {rs1.address} www=300\n"
        f"rs2 {rs2.address} www=100\n"
    )
    d = DaemonProcess(
        tmp_path_factory.mktemp("traffic"),
        body,
        options={
            "IPVSADM": "/usr/sbin/ipvsadm",
            "Ramping.TriggerTime": "3600",
            "Check.Interval": "0.5",
            "Check.Timeout.Connect": "2",
            "Check.Timeout.Response": "3",
        },
    )
    sh("ipvsadm", "-C")
    d.write_config(body)
    d.start(timeout=SLOW)
    wait_until(
        lambda: weight(rs1.address) == 300 and weight(rs2.address) == 100,
        SLOW,
        "both real servers at their weights",
        step=0.5,
    )
    yield d
    d.stop(timeout=SLOW)


def test_the_split_follows_the_weights(topology: Topology, daemon: DaemonProcess) -> None:
    counts = topology.count(40)
    report(f"traffic weights 300:100 (3:1): rs1={counts['rs1']} rs2={counts['rs2']} of 40")
    assert counts == {"rs1": 30, "rs2": 10}


def test_a_disabled_server_gets_no_new_connections(
    topology: Topology, daemon: DaemonProcess
) -> None:
    rs2 = topology.servers[1]
    assert daemon.ctl("set", "host", "rs2", "off", timeout=SLOW)[0] == 0
    wait_until(lambda: weight(rs2.address) == 0, SLOW, "rs2 at weight 0", step=0.5)
    counts = topology.count(20)
    report(f"traffic rs2 off: rs1={counts['rs1']} rs2={counts['rs2']} of 20")
    assert counts == {"rs1": 20, "rs2": 0}
    assert daemon.ctl("set", "host", "rs2", "on", timeout=SLOW)[0] == 0
    wait_until(lambda: weight(rs2.address) == 100, SLOW, "rs2 back at 100", step=0.5)


def test_a_failed_server_gets_no_new_connections(topology: Topology, daemon: DaemonProcess) -> None:
    rs2 = topology.servers[1]
    rs2.stop()
    try:
        wait_until(lambda: weight(rs2.address) == 0, SLOW, "failed rs2 at weight 0", step=0.5)
        counts = topology.count(20)
        report(f"traffic rs2 failed: rs1={counts['rs1']} rs2={counts['rs2']} of 20")
        assert counts == {"rs1": 20, "rs2": 0}
    finally:
        rs2.start()
    wait_until(lambda: weight(rs2.address) == 100, SLOW, "recovered rs2 at 100", step=0.5)


def test_a_ramp_shows_as_a_rising_share(topology: Topology, daemon: DaemonProcess) -> None:
    rs2 = topology.servers[1]
    assert daemon.ctl("set", "host", "rs2", "off", timeout=SLOW)[0] == 0
    wait_until(lambda: weight(rs2.address) == 0, SLOW, "rs2 at weight 0", step=0.5)
    assert daemon.ctl("set", "host", "rs2", "on", "in", "40", timeout=SLOW)[0] == 0
    wait_until(lambda: (weight(rs2.address) or 0) > 0, SLOW, "rs2 ramping", step=0.2)
    samples: list[tuple[int, int]] = []
    while True:
        w = weight(rs2.address) or 0
        samples.append((w, topology.count(40)["rs2"]))
        if w == 100:
            break
        assert len(samples) < 200, samples
    report(
        "traffic ramp of rs2 (weight: rs2 requests of 40): "
        + ", ".join(f"{w}:{n}" for w, n in samples)
    )
    assert samples[0][1] < samples[-1][1] == 10
    assert samples[0][0] < 100


def test_wait_quiescent_returns_only_when_activeconn_is_zero(
    topology: Topology, daemon: DaemonProcess
) -> None:
    rs1, rs2 = topology.servers
    assert daemon.ctl("set", "host", "rs2", "off", timeout=SLOW)[0] == 0
    wait_until(lambda: weight(rs2.address) == 0, SLOW, "rs2 at weight 0", step=0.5)
    topology.hold()
    try:
        assert kernel_dests()[rs1.address][1] == 1
        assert daemon.ctl("set", "host", "rs1", "off", timeout=SLOW)[0] == 0
        wait_until(lambda: weight(rs1.address) == 0, SLOW, "rs1 at weight 0", step=0.5)
        waiter = subprocess.Popen(
            [
                *ipvswm_command(),
                "ctl",
                "-c",
                str(daemon.config),
                "wait",
                "host",
                "rs1",
                "quiescent",
                "timeout",
                "600",
            ],
            env=daemon.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        # While the connection is held the kernel still counts it: the wait must not return.
        # (Several daemon resyncs pass in this window; a wrong wait would return in one.)
        with pytest.raises(subprocess.TimeoutExpired):
            waiter.wait(timeout=8)
        assert kernel_dests()[rs1.address][1] == 1
    finally:
        topology.release()
    out, _ = waiter.communicate(timeout=SLOW)
    assert waiter.returncode == 0, out
    assert kernel_dests()[rs1.address][1] == 0
    report("traffic wait host rs1 quiescent: held while ActiveConn=1, returned at 0")
    for host in ("rs1", "rs2"):
        assert daemon.ctl("set", "host", host, "on", timeout=SLOW)[0] == 0
