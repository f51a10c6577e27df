"""Issue 15 item 10: `check-config` refuses what `run` would refuse or lose: a DB or a log file
in a directory that does not exist."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from ipvswm.cli import main


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


BODY = "! www 192.0.2.1:80 /\nweb1 192.0.2.10 www=1\n"


@pytest.mark.parametrize("key", ["DB", "Log.Path"])
def test_a_file_in_a_missing_directory_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    missing = tmp_path / "nowhere" / "file"
    other = "Log.Path" if key == "DB" else "DB"
    path = tmp_path / "c.conf"
    path.write_text(f"{key}={missing}\n{other}={tmp_path / 'ok'}\n{BODY}")
    assert main(["check-config", "-c", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{key}={missing}: directory {missing.parent} does not exist" in out
    assert "OK:" not in out


def test_existing_directories_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.conf"
    path.write_text(f"DB={tmp_path / 'db'}\nLog.Path={tmp_path / 'log'}\n{BODY}")
    assert main(["check-config", "-c", str(path)]) == 0
    assert "OK:" in capsys.readouterr().out
