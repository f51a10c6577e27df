"""An ipvsadm that holds one kind of call until the test releases it: a real kernel-call hang."""

from __future__ import annotations

from pathlib import Path

from tests.support.emulator import Emulator


class HeldIpvsadm:
    """An ipvsadm that holds every call of `command` while `hold` exists, then runs the emulator.

    Each held call writes its pid to `held` before waiting; each `-R` call, held or not, writes
    its start time to `started` (the daemon began that kernel operation then).
    """

    def __init__(self, tmp: Path, emu: Emulator, command: str) -> None:
        self.hold = tmp / "hold"
        self.held = tmp / "held"
        self.started = tmp / "started-R"
        self.binary = tmp / "ipvsadm-held"
        self.binary.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = -R ]; then date +%s.%N >> {self.started}; fi\n'
            f'if [ "$1" = {command} ] && [ -e {self.hold} ]; then\n'
            f"  echo $$ >> {self.held}\n"
            f"  while [ -e {self.hold} ]; do sleep 0.01; done\n"
            "fi\n"
            f'exec {emu.binary} "$@"\n'
        )
        self.binary.chmod(0o755)

    def hold_calls(self) -> None:
        self.hold.touch()

    def release(self) -> None:
        self.hold.unlink()

    def held_pids(self) -> list[int]:
        text = self.held.read_text() if self.held.exists() else ""
        return [int(word) for word in text.split()]

    def restores_begun(self) -> list[float]:
        text = self.started.read_text() if self.started.exists() else ""
        return [float(word) for word in text.split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
