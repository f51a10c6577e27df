"""Issue 15 items 5, 6 (`all`), 8: the command line's help, the console's `all` reasons, and
config errors and warnings that say what is wrong."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from ipvswm import __version__
from ipvswm.cli import main
from ipvswm.config.parser import parse_text
from ipvswm.console.command_types import Admin
from ipvswm.console.command_types import ParseError
from ipvswm.console.grammar import parse
from ipvswm.events import SetHostOn


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """check-config uses the system resolver: make sure no test reaches real DNS."""

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def help_of(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert help_of(capsys, "--version").strip() == f"ipvswm {__version__}"


def test_help_shows_defaults_backend_pid_file_and_ctl_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = help_of(capsys, "run", "--help")
    assert "default: /etc/ipvs-weightman.conf" in run
    backend = run.split("--backend {ipvsadm,netlink,dry-run}", 2)[2]
    assert "netlink" in backend.split("--pid-file")[0]  # --backend has a help text
    assert "pid" in run.split("--pid-file PATH", 2)[-1]
    ctl = help_of(capsys, "ctl", "--help")
    for line in ("0  the command worked", "1  the command failed", "3  a 'wait' timed out"):
        assert line in ctl
    assert "2  usage error, or the daemon cannot be reached" in ctl


def test_all_is_a_synonym_of_star_for_reasons() -> None:
    assert parse("set host web1 on reasons all") == parse("set host web1 on reasons *")
    command = parse("set host web1 on reasons all")
    assert command == Admin(SetHostOn("web1", None))
    off = parse("set host web1 off reasons all")
    assert isinstance(off, ParseError) and "'all' (all reasons) only works with 'on'" in str(
        off.message
    )


def test_a_shell_expanded_star_is_explained() -> None:
    error = parse("set host web1 on reasons README.md setup.py")
    assert isinstance(error, ParseError)
    assert "write 'all'" in error.message and "shell expands '*'" in error.message


def test_known_key_without_equals_is_named() -> None:
    result = parse_text("Check.Interval 2\n! www 192.0.2.1:80 /\nweb1 192.0.2.10 www=1\n")
    assert [e.message for e in result.errors] == [
        "Check.Interval needs '=': write 'Check.Interval=2'"
    ]
    lower = parse_text("check.interval 2\n")
    assert "Check.Interval needs '='" in lower.errors[0].message


def test_warnings_are_labelled_and_name_only_configured_fallbacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.conf"
    path.write_text("! www 192.0.2.1:80 / sorry_server=nope\nweb1 192.0.2.10 www=1\n")
    assert main(["check-config", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "sorry_server 'nope' is not a host" in err
    assert "SorryServer.Fallback.IP is used" not in err and "no sorry server" in err
    path.write_text(
        "SorryServer.Fallback.IP=192.0.2.99\n! www 192.0.2.1:80 / sorry_server=nope\n"
        "web1 192.0.2.10 www=1\n"
    )
    assert main(["check-config", "-c", str(path)]) == 0
    err = capsys.readouterr().err
    assert "SorryServer.Fallback.IP (192.0.2.99) is used instead" in err
    assert "SorryServer.Default" not in err
