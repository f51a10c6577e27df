"""Fixtures shared by the integration tests: a loopback real-server farm and an ipvsadm table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.emulator import Emulator
from tests.support.realservers import ThreadedRealServers


@pytest.fixture
def farm() -> Iterator[ThreadedRealServers]:
    with ThreadedRealServers() as servers:
        yield servers


@pytest.fixture
def emu(tmp_path: Path) -> Emulator:
    return Emulator(tmp_path / "emu")
