"""A pytest-friendly handle on the ipvsadm emulator (tests/emulator/ipvsadm), or a real ipvsadm.

`Emulator(tmp_path)` gives each test its own table (state file) and invocation log. Pass `.env` to
any process that runs the binary (the daemon, or IpvsadmBackend via os.environ) and use `.binary`
as its `IPVSADM`. With IPVSWM_TEST_IPVSADM set, `.binary` is that ipvsadm instead and
`.real` is True: the emulator-only helpers (`set_connections`, the log, no-IPVS mode) are then
unavailable and tests using them should skip via `require_emulator()`.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

EMULATOR = Path(__file__).resolve().parent.parent / "emulator" / "ipvsadm"

# Commands that can change the table. -Z (zero counters) is deliberately not one of them: it
# never changes services, destinations or weights.
_CHANGING = {"-A", "-E", "-D", "-a", "-e", "-d", "-C"}
_CHANGING_LONG = {
    "--add-service",
    "--edit-service",
    "--delete-service",
    "--add-server",
    "--edit-server",
    "--delete-server",
    "--clear",
}


@dataclass(frozen=True, slots=True)
class Invocation:
    """One logged call of the emulator."""

    argv: list[str]
    stdin: str
    exit: int
    time: float

    @property
    def command(self) -> str:
        return self.argv[0] if self.argv else ""

    def batch_lines(self) -> list[str]:
        """The non-blank lines of a -R call's stdin."""
        return [line for line in self.stdin.splitlines() if line.strip()]

    @property
    def changing(self) -> bool:
        """Whether this call could change the table (-Z excluded; -R only with a batch)."""
        cmd = self.command
        if cmd in ("-R", "--restore"):
            return bool(self.batch_lines())
        return (
            cmd in _CHANGING
            or cmd in _CHANGING_LONG
            or (cmd.startswith("-") and not cmd.startswith("--") and cmd[1:2] in "AEDaedC")
        )


@dataclass(frozen=True, slots=True)
class Result:
    """What one run of the binary gave."""

    exit: int
    stdout: str
    stderr: str


def real_ipvsadm() -> str | None:
    """The real ipvsadm named by IPVSWM_TEST_IPVSADM, if any."""
    return os.environ.get("IPVSWM_TEST_IPVSADM") or None


class Emulator:
    """One test's ipvsadm: binary path, environment, and helpers to drive and inspect it."""

    def __init__(self, tmp_path: Path, *, no_ipvs: bool = False) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        real = real_ipvsadm()
        self.real = real is not None
        self.binary = real or str(EMULATOR)
        self.state = tmp_path / "ipvsadm-state.json"
        self.log = tmp_path / "ipvsadm-log.jsonl"
        self.env: dict[str, str] = {
            "IPVSADM_EMU_STATE": str(self.state),
            "IPVSADM_EMU_LOG": str(self.log),
        }
        if not self.real:
            # `#!/usr/bin/env python3` may find a slow launcher (a pyenv shim takes ~0.25 s a
            # call); put this interpreter's directory first so that each call starts fast.
            path = os.environ.get("PATH", os.defpath)
            self.env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + path
        if no_ipvs:
            self.env["IPVSADM_EMU_NO_IPVS"] = "1"

    def require_emulator(self) -> None:
        """Skip the calling test when it runs against a real ipvsadm."""
        if self.real:
            pytest.skip("needs the ipvsadm emulator (IPVSWM_TEST_IPVSADM is set)")

    def require_disposable_table(self) -> None:
        """Start from an empty table: the emulator's own, or a real one that is nobody's.

        A real kernel table is cleared only with IPVSWM_TEST_TABLE_DISPOSABLE=1 (the VM tier sets
        it); elsewhere the calling test skips rather than touch a director's table.
        """
        if not self.real:
            return
        if os.environ.get("IPVSWM_TEST_TABLE_DISPOSABLE") != "1":
            pytest.skip("clears the table: a real ipvsadm needs IPVSWM_TEST_TABLE_DISPOSABLE=1")
        result = self.run("-C")
        assert result.exit == 0, result.stderr

    def full_env(self) -> dict[str, str]:
        """os.environ plus this emulator's variables (what a child process should get)."""
        return {**os.environ, **self.env}

    def run(self, *args: str, stdin: str = "") -> Result:
        """Run the binary with these arguments (and stdin); never raises on a non-zero exit."""
        proc = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.full_env(),
            timeout=60,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def restore(self, lines: str) -> Result:
        """`ipvsadm -R` with these lines."""
        return self.run("-R", stdin=lines)

    def weights(self) -> dict[str, int]:
        """'VIP:PORT RIP:PORT' -> weight of every destination in the table."""
        return table_weights(self.table_text())

    def table_text(self) -> str:
        """The table as `ipvsadm -S -n` prints it."""
        result = self.run("-S", "-n")
        assert result.exit == 0, result.stderr
        return result.stdout

    def list_text(self, *extra: str) -> str:
        """The table as `ipvsadm -L -n` prints it."""
        result = self.run("-L", "-n", *extra)
        assert result.exit == 0, result.stderr
        return result.stdout

    def invocations(self) -> list[Invocation]:
        """Every logged call so far, oldest first."""
        self.require_emulator()
        if not self.log.exists():
            return []
        with self.log.open(encoding="utf-8") as f:
            return [Invocation(**json.loads(line)) for line in f if line.strip()]

    def changing_invocations(self) -> list[Invocation]:
        """The calls that could change the table: -A -E -D -a -e -d -C, and -R with a batch."""
        return [inv for inv in self.invocations() if inv.changing]

    def clear_log(self) -> None:
        """Forget the calls logged so far."""
        self.log.unlink(missing_ok=True)

    def set_connections(self, service: str, dest: str, active: int, inactive: int = 0) -> None:
        """Set a destination's ActiveConn/InActConn, e.g. ("tcp:192.0.2.1:80", "127.0.0.2:80").

        The labels are those of `str(ServiceKey)` and `str(DestKey)`: `tcp:ADDR:PORT`, `udp:…`,
        `sctp:…`, `fwm:MARK[/ipv6]`, with IPv6 addresses bracketed.
        """
        self.require_emulator()
        with open(str(self.state) + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = json.loads(self.state.read_text(encoding="utf-8"))
            for svc in data["services"]:
                if _service_label(svc) != service:
                    continue
                for d in svc["dests"]:
                    if _hostport(d["af"], d["addr"], d["port"]) == dest:
                        d["active"], d["inactive"] = active, inactive
                        tmp = self.state.with_suffix(".tmp")
                        tmp.write_text(json.dumps(data), encoding="utf-8")
                        tmp.replace(self.state)
                        return
            raise KeyError(f"no destination {dest} in service {service}")


def _hostport(af: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if af == 6 else f"{addr}:{port}"


def _service_label(svc: dict[str, object]) -> str:
    if svc.get("fwmark"):
        return f"fwm:{svc['fwmark']}" + ("/ipv6" if svc["af"] == 6 else "")
    af, addr, port = svc["af"], svc["addr"], svc["port"]
    assert isinstance(af, int) and isinstance(addr, str) and isinstance(port, int)
    return f"{svc['proto']}:{_hostport(af, addr, port)}"


def table_weights(table_text: str) -> dict[str, int]:
    """'VIP:PORT RIP:PORT' -> weight, from `ipvsadm -S -n` text (or -R batch lines)."""
    out: dict[str, int] = {}
    for line in table_text.splitlines():
        words = line.split()
        if words[:1] in (["-a"], ["-e"]) and "-w" in words:
            out[f"{words[2]} {words[4]}"] = int(words[words.index("-w") + 1])
    return out


def wait_weight(emu: Emulator, key: str, weight: int | None, timeout: float = 10.0) -> None:
    """Wait until destination 'VIP:PORT RIP:PORT' has this weight (None: until it is absent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if emu.weights().get(key) == weight:
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {key} weight {weight}")
