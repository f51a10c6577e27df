"""`ipvswm check-config`: exit 0 with a summary when valid, exit 1 with every error when not."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from ipvswm.cli import main

VALID = """\
Check.Interval=2
! www 192.0.2.1:80 http://mysite.org/check email=true,sorry_server=sorry
! api [2001:db8::1]:443:8443 tcp://
web1 192.0.2.10:8080 www=10
web2 192.0.2.11 www=10
web6 [2001:db8::10] api=5
sorry 192.0.2.99
"""

INVALID = """\
Check.Interval=fast
! www 192.0.2.1:80 http://mysite.org/check
web3 192.0.2.12 wwww=1
web4 192.0.2.13 www=70000
"""


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """check-config uses the system resolver: make sure no test reaches real DNS."""

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "www.conf"
    path.write_text(text)
    return str(path)


def test_valid_config_exits_0_with_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID)
    assert main(["check-config", "-c", path]) == 0
    out = capsys.readouterr().out
    assert out == f"{path}: OK: 2 virtual services, 4 hosts, 3 pairs, 3 distinct checks\n"


def test_invalid_config_exits_1_with_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, INVALID)
    assert main(["check-config", "-c", path]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}:1: Check.Interval: bad value 'fast': expected seconds > 0 (e.g. 5 or 2.5)",
        f"{path}:3: host 'web3': unknown virtual service 'wwww' (known: www)",
        f"{path}:4: host 'web4': bad weight '70000' for virtual service 'www': "
        "expected an integer 0..65535",
        f"{path}: 3 error(s), configuration is NOT valid",
    ]


def test_unresolvable_name_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "! www lb.invalid:80 -\n")
    assert main(["check-config", "-c", path]) == 1
    assert "cannot resolve host name 'lb.invalid'" in capsys.readouterr().out


def test_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "absent.conf")
    assert main(["check-config", "-c", path]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}:0: cannot read config file: No such file or directory"


def test_a_config_others_may_edit_is_refused_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID)
    os.chmod(path, 0o664)  # group-writable: a group member would choose what IPVSADM= runs
    assert main(["check-config", "-c", path]) == 1
    out = capsys.readouterr().out
    assert f"{path}: writable by group or others (mode 0664)" in out
    assert f"fix: chmod go-w {path}" in out
    assert main(["run", "--foreground", "-c", path]) == 1  # refused before anything starts
    assert f"fix: chmod go-w {path}" in capsys.readouterr().err
    assert main(["check-config", "--allow-insecure-config", "-c", path]) == 0
    capsys.readouterr()
    os.chmod(path, 0o644)
    assert main(["check-config", "-c", path]) == 0


def test_a_config_owned_by_another_user_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file to another user")  # CI and this machine: root
    path = write(tmp_path, VALID)
    os.chown(path, 65534, -1)  # nobody
    assert main(["check-config", "-c", path]) == 1
    out = capsys.readouterr().out
    assert "owned by uid 65534, not root or the daemon's user" in out
    assert f"fix: chown root {path}" in out
