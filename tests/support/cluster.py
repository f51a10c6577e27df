"""Director pairs for the cluster tests: a real etcd, real servers and one daemon per director.

Each director has its own config, DB, console and emulator table; they share one etcd started by
the `etcd` fixture on 127.0.0.1 with free ports. The VS 192.0.2.60:80 is never contacted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess
from tests.support.daemon import free_port
from tests.support.daemon import wait_until
from tests.support.emulator import Emulator
from tests.support.etcd import Etcd
from tests.support.realservers import ThreadedRealServer
from tests.support.realservers import ThreadedRealServers

VIP = "192.0.2.60:80"
FULL = 10
PREFIX = "/ipvswm/pair1/"


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[Etcd]:
    (tmp_path / "etcd").mkdir()
    cluster = Etcd(tmp_path / "etcd").start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def servers(farm: ThreadedRealServers) -> dict[str, ThreadedRealServer]:
    return {tag: farm.start(f"127.0.0.{210 + i}") for i, tag in enumerate(("web1", "web2"))}


class Director:
    """One daemon of the pair, with its own emulator table."""

    def __init__(
        self,
        tmp: Path,
        node: str,
        servers: dict[str, ThreadedRealServer],
        etcd: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        tmp.mkdir()
        self.node = node
        self.servers = servers
        self.emu = Emulator(tmp / "emu")
        self.metrics_port = free_port("127.0.0.1")
        body = f"! www {VIP} /health\n" + "".join(
            f"{tag} {s.address}:{s.port} www={FULL}\n" for tag, s in servers.items()
        )
        self.daemon = DaemonProcess(
            tmp,
            body,
            env=self.emu.env,
            options={
                "IPVSADM": self.emu.binary,
                "Cluster.Etcd": etcd,
                "Cluster.Name": "pair1",
                "Cluster.Node": node,
                "Metrics.Listen": f"127.0.0.1:{self.metrics_port}",
                **(extra or {}),
            },
        )

    def weight(self, tag: str) -> int:
        s = self.servers[tag]
        return self.emu.weights().get(f"{VIP} {s.address}:{s.port}", -1)

    def wait_weight(self, tag: str, weight: int, timeout: float = 15) -> None:
        wait_until(lambda: self.weight(tag) == weight, timeout, f"{self.node}: {tag} at {weight}")

    def start(self) -> Director:
        try:
            self.daemon.start()
        except AssertionError:  # a start that timed out (a loaded machine) leaves no process
            if self.daemon.proc is not None:
                self.daemon.kill()
            raise
        return self

    def ctl(self, *words: str) -> tuple[int, dict[str, object]]:
        return self.daemon.ctl(*words)

    def ok(self, *words: str) -> dict[str, object]:
        code, reply = self.ctl(*words)
        assert code == 0, (words, reply)
        data = reply["data"]
        assert isinstance(data, dict)
        return data

    def pair(self, tag: str) -> dict[str, object]:
        reply = self.ok("show", "hosts", tag)
        hosts = reply["hosts"]
        assert isinstance(hosts, list)
        found: dict[str, object] = hosts[0]["pairs"][0]
        return found


@contextlib.contextmanager
def director_pair(
    tmp: Path, servers: dict[str, ThreadedRealServer], etcd: Etcd, **extra: str
) -> Iterator[tuple[Director, Director]]:
    """Directors A and B, started and with every host at FULL weight; both stopped at the end."""
    a = Director(tmp / "A", "A", servers, etcd.endpoints, extra).start()
    b: Director | None = None
    try:
        b = Director(tmp / "B", "B", servers, etcd.endpoints, extra).start()
        for d in (a, b):
            for tag in servers:
                d.wait_weight(tag, FULL)
        yield a, b
    finally:
        stop_all(*(d for d in (a, b) if d is not None))


def stop_all(*directors: Director) -> None:
    for d in directors:
        if d.daemon.proc is not None:
            d.daemon.stop()
