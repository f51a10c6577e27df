"""The VM's traffic topology: the VIP on a dummy device, real servers and a client in namespaces.

Director (root namespace): 192.0.2.10/32 on `vip0` (dummy), 198.51.100.(4i+1)/30 towards real
server i (which is 198.51.100.(4i+2), default route via the director: NAT), 203.0.113.1/24
towards the client namespace (203.0.113.2). Only inside the VM: it has no network device.

IPv6 alongside (documentation prefix 2001:db8::/32): the VIP6 2001:db8::10/128 on `vip0`,
2001:db8:0:i::1/64 towards real server i (2001:db8:0:i::2, default route via the director) and
2001:db8:0:cc::1/64 towards the client (2001:db8:0:cc::2). Addresses skip duplicate address
detection (`nodad`), so they are usable at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

PEER = Path(__file__).resolve().parent / "peer.py"
VIP = "192.0.2.10"
CLIENT = "203.0.113.2"
VIP6 = "2001:db8::10"
CLIENT6 = "2001:db8:0:cc::2"


def sh(*cmd: str) -> str:
    """Run a command, fail with its stderr."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"
    return done.stdout


@dataclass
class RealServer:
    """One real server: a namespace with an HTTP server answering its name."""

    name: str
    address: str
    port: int = 80
    proc: subprocess.Popen[str] | None = field(default=None, repr=False)
    address6: str = ""  # its IPv6 address (set by Topology)

    @property
    def failfile(self) -> Path:
        """While this file exists the server answers 500 (a failing health check)."""
        return Path(f"/run/ipvswm-peer-{self.name}.fail")

    def set_failing(self, failing: bool) -> None:
        """Answer 500 (True) or 200 (False) from now on, without a restart."""
        if failing:
            self.failfile.touch()
        else:
            self.failfile.unlink(missing_ok=True)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.name,
                sys.executable,
                str(PEER),
                "serve",
                self.name,
                str(self.port),
                str(self.failfile),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(60)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


class Topology:
    """Builds and tears down the namespaces; runs clients."""

    def __init__(self, count: int = 2) -> None:
        self.client: subprocess.Popen[str] | None = None  # started on first use
        self.servers = [
            RealServer(f"rs{i}", f"198.51.100.{4 * i + 2}", address6=f"2001:db8:0:{i}::2")
            for i in range(1, count + 1)
        ]

    def up(self) -> Topology:
        sh("sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        sh("ip", "link", "add", "vip0", "type", "dummy")
        sh("ip", "addr", "add", f"{VIP}/32", "dev", "vip0")
        sh("ip", "addr", "add", f"{VIP6}/128", "dev", "vip0", "nodad")
        sh("ip", "link", "set", "vip0", "up")
        for i, rs in enumerate(self.servers, start=1):
            self._namespace(rs.name, f"198.51.100.{4 * i + 1}", rs.address, 30)
            self._namespace6(rs.name, f"2001:db8:0:{i}::1", rs.address6)
            rs.set_failing(False)
            rs.start()
        self._namespace("client", "203.0.113.1", CLIENT, 24)
        self._namespace6("client", "2001:db8:0:cc::1", CLIENT6)
        return self

    def _namespace6(self, ns: str, director: str, peer: str) -> None:
        sh("ip", "addr", "add", f"{director}/64", "dev", f"v{ns}", "nodad")
        sh("ip", "-n", ns, "addr", "add", f"{peer}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", ns, "-6", "route", "add", "default", "via", director)

    def _namespace(self, ns: str, director: str, peer: str, bits: int) -> None:
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", f"v{ns}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "addr", "add", f"{director}/{bits}", "dev", f"v{ns}")
        sh("ip", "link", "set", f"v{ns}", "up")
        sh("ip", "-n", ns, "addr", "add", f"{peer}/{bits}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", director)

    def down(self) -> None:
        if self.client is not None:
            assert self.client.stdin is not None and self.client.stdout is not None
            self.client.stdin.close()
            self.client.wait(60)
            self.client.stdout.close()
        for rs in self.servers:
            rs.stop()
        for ns in [*(rs.name for rs in self.servers), "client"]:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        subprocess.run(["ip", "link", "del", "vip0"], check=False)

    def _ask(self, line: str) -> str:
        if self.client is None:
            self.client = subprocess.Popen(
                ["ip", "netns", "exec", "client", sys.executable, str(PEER), "client", VIP],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert self.client.stdin is not None and self.client.stdout is not None
        self.client.stdin.write(line + "\n")
        self.client.stdin.flush()
        return self.client.stdout.readline()

    def count(self, n: int, port: int = 80, vip: str = VIP) -> dict[str, int]:
        """Send n requests from the client namespace to `vip`, each on a new connection."""
        counts: dict[str, int] = {rs.name: 0 for rs in self.servers}
        counts.update(json.loads(self._ask(f"count {port} {n} {vip}")))
        return counts

    def hold(self, port: int = 80) -> None:
        """Open one connection from the client and keep it open until release()."""
        assert self._ask(f"hold {port}").strip() == "held"

    def release(self) -> None:
        """Close the held connections."""
        assert self._ask("release").strip() == "released"
