"""A real etcd (Debian's `etcd-server`, 3.4) for the cluster tests: one member or three.

Every member listens on 127.0.0.1 with free ports and a data dir under the test's tmp dir, and is
stopped after the test. Readiness is awaited on etcd's /health, never slept for. Without the
binary a test is skipped locally and fails in CI (CI=true), where `.ci/run` installs it.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest

from tests.support.daemon import free_port
from tests.support.daemon import wait_until

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def require_etcd() -> None:
    """Skip (locally) or fail (in CI) when etcd is not installed."""
    if os.path.exists(ETCD):
        return
    message = "etcd not installed: apt-get install -y etcd-server"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(slots=True)
class TlsFiles:
    """Server and client certificates made by trustme for one test."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass(slots=True)
class Member:
    """One etcd process."""

    name: str
    data: Path
    client_port: int
    peer_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass(slots=True)
class Etcd:
    """An etcd cluster of one or more members on loopback."""

    tmp: Path
    size: int = 1
    tls: TlsFiles | None = None
    members: list[Member] = field(default_factory=list)

    def __post_init__(self) -> None:
        require_etcd()
        for i in range(self.size):
            self.members.append(
                Member(
                    f"m{i}",
                    self.tmp / f"etcd-m{i}",
                    free_port("127.0.0.1"),
                    free_port("127.0.0.1"),
                    self.tmp / f"etcd-m{i}.log",
                )
            )

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def endpoints(self) -> str:
        """The `Cluster.Etcd` value."""
        return ",".join(f"127.0.0.1:{m.client_port}" for m in self.members)

    def _command(self, m: Member) -> list[str]:
        peers = ",".join(f"{x.name}=http://127.0.0.1:{x.peer_port}" for x in self.members)
        url = f"{self.scheme}://127.0.0.1:{m.client_port}"
        cmd = [
            ETCD,
            "--name", m.name,
            "--data-dir", str(m.data),
            "--listen-client-urls", url,
            "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{m.peer_port}",
            "--initial-cluster", peers,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"ipvswm-test-{os.getpid()}-{self.members[0].client_port}",
            "--log-level", "warn",
            "--logger", "zap",
        ]  # fmt: skip
        if self.tls is not None:
            cmd += [
                "--cert-file", str(self.tls.server_cert),
                "--key-file", str(self.tls.server_key),
                "--trusted-ca-file", str(self.tls.ca),
                "--client-cert-auth",
            ]  # fmt: skip
        return cmd

    def start(self, which: list[int] | None = None) -> Etcd:
        """Start the members (all, or those indexed) and wait until each is healthy."""
        chosen = [self.members[i] for i in (which if which is not None else range(self.size))]
        for m in chosen:
            with open(m.log, "ab") as log:
                m.proc = subprocess.Popen(
                    self._command(m), stdout=log, stderr=log, stdin=subprocess.DEVNULL
                )
        for m in chosen:
            wait_until(lambda m=m: self.healthy(m), 30, f"etcd member {m.name} healthy", 0.05)
        return self

    def healthy(self, m: Member) -> bool:
        if m.proc is not None and m.proc.poll() is not None:
            raise AssertionError(f"etcd {m.name} exited: {m.log.read_text()[-2000:]}")
        try:
            data = self._get(m, "/health")
        except (OSError, ValueError):
            return False
        return data.get("health") == "true"

    def _context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        return context

    def _get(self, m: Member, path: str) -> dict[str, object]:
        url = f"{self.scheme}://127.0.0.1:{m.client_port}{path}"
        with urllib.request.urlopen(url, timeout=2, context=self._context()) as response:
            data: dict[str, object] = json.loads(response.read())
            return data

    def post(self, path: str, body: dict[str, object], token: str = "") -> dict[str, object]:
        """POST to the gateway of the first live member (`/v3/...`)."""
        m = next(x for x in self.members if x.proc is not None)
        request = urllib.request.Request(
            f"{self.scheme}://127.0.0.1:{m.client_port}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": token} if token else {},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=self._context()) as response:
                data: dict[str, object] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            data = json.loads(exc.read())
        return data

    def enable_auth(self, user: str, password: str) -> None:
        """Create `root` and `user` (read-write on everything) and turn authentication on."""
        for body_path, body in (
            ("/v3/auth/user/add", {"name": "root", "password": password + "-root"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/user/add", {"name": user, "password": password}),
            ("/v3/auth/role/add", {"name": "ipvswm"}),
            (
                "/v3/auth/role/grant",
                {
                    "name": "ipvswm",
                    "perm": {"permType": "READWRITE", "key": _b64("/"), "range_end": _b64("\0")},
                },
            ),
            ("/v3/auth/user/grant", {"user": user, "role": "ipvswm"}),
            ("/v3/auth/enable", {}),
        ):
            data = self.post(body_path, body)
            assert "error" not in data or "exists" in str(data["error"]), (body_path, data)

    def keys(self, prefix: str, token: str = "") -> dict[str, str]:
        """Every key under `prefix` with its value."""
        end = bytearray(prefix.encode())
        end[-1] += 1
        data = self.post(
            "/v3/kv/range",
            {"key": _b64(prefix), "range_end": base64.b64encode(bytes(end)).decode()},
            token,
        )
        kvs = data.get("kvs", [])
        assert isinstance(kvs, list)
        return {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in kvs}

    def kill(self, index: int = 0) -> None:
        """SIGKILL one member (its data dir stays)."""
        m = self.members[index]
        if m.proc is not None:
            m.proc.kill()
            m.proc.wait(10)
            m.proc = None

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None:
                m.proc.terminate()
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait(10)
                m.proc = None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def make_tls(tmp: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, in `tmp`."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("ipvswm-director")
    files = TlsFiles(
        tmp / "ca.pem",
        tmp / "server.pem",
        tmp / "server.key",
        tmp / "client.pem",
        tmp / "client.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.server_cert))
    server.private_key_pem.write_to_path(str(files.server_key))
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    return files
