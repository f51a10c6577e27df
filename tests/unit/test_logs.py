"""Logging: line format in UTC, Log.Level mapping, file rotation, syslog, stderr, run-time level."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvswm import logs
from ipvswm.config.model import GlobalOptions
from ipvswm.logs import CHECK_RESULT
from ipvswm.logs import CHECK_STATUS
from ipvswm.logs import KERNEL_OP
from ipvswm.logs import LineFormatter
from ipvswm.logs import LogControl
from ipvswm.logs import parse_syslog_address
from ipvswm.logs import python_level
from ipvswm.logs import setup_logging
from ipvswm.logs import syslog_facility

log = logging.getLogger("ipvswm.test")
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6})\|(\d+)\|(.*)$")


@pytest.fixture(autouse=True)
def _close_logging() -> Iterator[None]:
    yield
    if logs._active is not None:
        logs._active.close()


def options(**kw: object) -> GlobalOptions:
    kw.setdefault("log_path", "")
    return GlobalOptions(**kw)  # type: ignore[arg-type]


def record(msg: str, level: int = logging.INFO, created: float | None = None) -> logging.LogRecord:
    rec = logging.LogRecord("ipvswm.x", level, __file__, 1, msg, (), None)
    if created is not None:
        rec.created = created
    return rec


# --- format and levels -----------------------------------------------------------------------


def test_line_format_is_utc_with_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # +05:30: a local-time bug would show
    time.tzset()
    try:
        line = LineFormatter().format(record("vs web: up", created=86400.25))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert line == f"1970-01-02 00:00:00.250000|{os.getpid()}|vs web: up"


def test_warning_and_error_prefixes() -> None:
    fmt = LineFormatter()
    assert fmt.format(record("w", logging.WARNING)).endswith("|WARNING: w")
    assert fmt.format(record("e", logging.ERROR)).endswith("|ERROR: e")
    assert fmt.format(record("c", logging.CRITICAL)).endswith("|ERROR: c")
    assert fmt.format(record("s", CHECK_STATUS)).endswith(f"|{os.getpid()}|s")


def test_traceback_follows_the_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("ipvswm.x", logging.ERROR, __file__, 1, "failed", (), True)
        rec.exc_info = sys.exc_info()
    first, *rest = LineFormatter().format(rec).splitlines()
    assert first.endswith("|ERROR: failed")
    assert rest[-1] == "ValueError: boom"


@pytest.mark.parametrize(
    ("log_level", "expected"),
    [
        (-1, logging.WARNING),
        (0, logging.WARNING),
        (1, logging.INFO),
        (4, logging.INFO),
        (5, CHECK_STATUS),
        (6, CHECK_RESULT),
        (9, CHECK_RESULT),
        (10, logging.DEBUG),
        (99, logging.DEBUG),
    ],
)
def test_python_level(log_level: int, expected: int) -> None:
    assert python_level(log_level) == expected


def test_level_constants_are_ordered_and_named() -> None:
    assert logging.INFO > CHECK_STATUS > CHECK_RESULT > KERNEL_OP == logging.DEBUG
    assert logging.getLevelName(CHECK_STATUS) == "CHECK_STATUS"
    assert logging.getLevelName(CHECK_RESULT) == "CHECK_RESULT"


def test_facility_names() -> None:
    assert syslog_facility("daemon") == 3
    assert syslog_facility("LOCAL3") == 19
    assert syslog_facility("log_user") == 1
    assert syslog_facility("nonsense") == 3


def test_parse_syslog_address() -> None:
    assert parse_syslog_address("127.0.0.1:5140") == ("127.0.0.1", 5140)
    assert parse_syslog_address("[::1]:514") == ("::1", 514)
    assert parse_syslog_address("/run/systemd/journal/syslog") == "/run/systemd/journal/syslog"
    assert parse_syslog_address("relative.sock") == "relative.sock"


# --- file -----------------------------------------------------------------------------------


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def messages(path: Path) -> list[str]:
    result = []
    for line in lines(path):
        match = LINE.match(line)
        assert match, line
        assert int(match.group(2)) == os.getpid()
        result.append(match.group(3))
    return result


def test_file_reopened_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "ipvswm.log"
    setup_logging(options(log_path=str(path)), foreground=False)
    log.info("before")
    os.rename(path, tmp_path / "ipvswm.log.1")  # what logrotate does
    log.info("after")
    assert messages(tmp_path / "ipvswm.log.1") == ["before"]
    assert messages(path) == ["after"]


def test_a_log_directory_that_vanishes_never_raises_into_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "ipvswm.log"
    setup_logging(options(log_path=str(path)), foreground=False)
    log.info("before")
    os.rename(path, tmp_path / "ipvswm.log.1")
    directory.rmdir()  # the rotated file cannot be reopened
    log.info("lost")  # must not raise
    log.info("lost too")
    err = capsys.readouterr().err
    assert err.count("cannot write the log file") == 1
    directory.mkdir()
    log.info("back")
    assert messages(path) == ["back"]
    assert "writable again" in capsys.readouterr().err


def test_unopenable_file_is_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "missing-dir" / "ipvswm.log"
    control = setup_logging(options(log_path=str(path)), foreground=False)
    log.info("still running")
    assert control.handlers == ()
    err = capsys.readouterr().err
    assert f"cannot open log file {path}: No such file or directory" in err


def test_setup_again_replaces_handlers(tmp_path: Path) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    control = setup_logging(options(log_path=str(first)), foreground=False)
    assert setup_logging(options(log_path=str(first)), foreground=False) is control
    log.info("once")
    assert messages(first) == ["once"]
    assert len(logging.getLogger("ipvswm").handlers) == 1
    control.reconfigure(options(log_path=str(second)))
    log.info("moved")
    assert messages(first) == ["once"]
    assert messages(second) == ["moved"]
    control.close()
    log.warning("nowhere")
    assert messages(second) == ["moved"]
    assert logging.getLogger("ipvswm").handlers == []


# --- levels at run time ----------------------------------------------------------------------


def test_set_level_at_run_time(tmp_path: Path) -> None:
    path = tmp_path / "ipvswm.log"
    control = setup_logging(options(log_path=str(path), log_level=1), foreground=False)

    def emit_all(tag: str) -> None:
        log.debug("%s op", tag)
        log.log(CHECK_RESULT, "%s result", tag)
        log.log(CHECK_STATUS, "%s status", tag)
        log.info("%s decision", tag)
        log.warning("%s warn", tag)

    for level in (1, 5, 6, 10, 0):
        control.set_level(level)
        emit_all(str(level))
    assert messages(path) == [
        "1 decision",
        "WARNING: 1 warn",
        "5 status",
        "5 decision",
        "WARNING: 5 warn",
        "6 result",
        "6 status",
        "6 decision",
        "WARNING: 6 warn",
        "10 op",
        "10 result",
        "10 status",
        "10 decision",
        "WARNING: 10 warn",
        "WARNING: 0 warn",
    ]


def test_run_time_level_survives_reload_unless_log_level_changes(tmp_path: Path) -> None:
    control = setup_logging(options(log_level=1), foreground=False)
    control.set_level(10)
    control.reconfigure(options(log_level=1, log_path=str(tmp_path / "x.log")))
    assert control.log_level == 10
    control.reconfigure(options(log_level=6))
    assert control.log_level == 6
    assert logging.getLogger("ipvswm").level == CHECK_RESULT


# --- stderr ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("foreground", "log_stderr", "shown"),
    [(True, True, True), (True, False, False), (False, True, False)],
)
def test_stderr_only_in_foreground(
    capsys: pytest.CaptureFixture[str], foreground: bool, log_stderr: bool, shown: bool
) -> None:
    setup_logging(options(log_stderr=log_stderr), foreground=foreground)
    log.info("hello")
    err = capsys.readouterr().err
    if shown:
        match = LINE.match(err.strip())
        assert match and match.group(3) == "hello"
    else:
        assert err == ""


# --- syslog ---------------------------------------------------------------------------------


def receive(sock: socket.socket) -> str:
    sock.settimeout(10)
    data = sock.recv(4096)
    assert data.endswith(b"\x00")
    return data[:-1].decode()


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_syslog_over_udp(udp_listener: socket.socket) -> None:
    address = udp_listener.getsockname()
    setup_logging(
        options(log_syslog=True, log_syslog_facility="local3", log_level=10),
        foreground=False,
        syslog_address=address,
    )
    pid = os.getpid()
    log.warning("vs %s down", "web")  # local3 (19) * 8 + warning (4)
    assert receive(udp_listener) == f"<156>ipvs-weightman[{pid}]: WARNING: vs web down"
    log.info("decision")  # info (6)
    assert receive(udp_listener) == f"<158>ipvs-weightman[{pid}]: decision"
    log.log(CHECK_STATUS, "status")
    assert receive(udp_listener) == f"<158>ipvs-weightman[{pid}]: status"
    log.log(CHECK_RESULT, "result")
    assert receive(udp_listener) == f"<158>ipvs-weightman[{pid}]: result"
    log.debug("op")  # debug (7)
    assert receive(udp_listener) == f"<159>ipvs-weightman[{pid}]: op"
    log.error("bad")  # err (3)
    assert receive(udp_listener) == f"<155>ipvs-weightman[{pid}]: ERROR: bad"


def test_syslog_address_from_environment(
    udp_listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = udp_listener.getsockname()
    monkeypatch.setenv("IPVSWM_SYSLOG_ADDRESS", f"{host}:{port}")
    setup_logging(options(log_syslog=True), foreground=False)
    log.info("from env")  # default facility daemon (3) * 8 + info (6)
    assert receive(udp_listener) == f"<30>ipvs-weightman[{os.getpid()}]: from env"


def test_syslog_over_unix_datagram_socket() -> None:
    with tempfile.TemporaryDirectory(prefix="ipvswm-") as tmp:  # short: sun_path is 108 bytes
        path = os.path.join(tmp, "log")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
            setup_logging(options(log_syslog=True), foreground=False, syslog_address=path)
            log.info("over unix")
            assert receive(sock) == f"<30>ipvs-weightman[{os.getpid()}]: over unix"
        finally:
            sock.close()


def test_syslog_unreachable_is_reported_and_retried(capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="ipvswm-") as tmp:
        path = os.path.join(tmp, "log")
        control = setup_logging(options(log_syslog=True), foreground=False, syslog_address=path)
        log.info("lost")
        log.info("lost too")
        err = capsys.readouterr().err
        assert f"cannot connect to syslog at {path}; will retry" in err
        assert "cannot send" not in err  # reported once, not once per line
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # syslogd comes (back)
        try:
            sock.bind(path)
            log.info("found")
            assert receive(sock) == f"<30>ipvs-weightman[{os.getpid()}]: found"
            assert "reachable again" in capsys.readouterr().err
            assert len(control.handlers) == 1
        finally:
            sock.close()


def test_syslog_lost_while_running_is_reported_once(capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="ipvswm-") as tmp:
        path = os.path.join(tmp, "log")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        setup_logging(options(log_syslog=True), foreground=False, syslog_address=path)
        log.info("one")
        assert receive(sock).endswith("]: one")
        sock.close()  # syslogd restarts
        os.unlink(path)
        log.info("lost")
        log.info("lost too")
        assert capsys.readouterr().err.count(f"cannot send to syslog at {path}") == 1
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(path)
            log.info("two")
            assert receive(sock).endswith("]: two")
        finally:
            sock.close()


def test_everything_at_once(tmp_path: Path, udp_listener: socket.socket) -> None:
    path = tmp_path / "ipvswm.log"
    control: LogControl = setup_logging(
        options(log_path=str(path), log_syslog=True, log_stderr=True),
        foreground=True,
        syslog_address=udp_listener.getsockname(),
    )
    assert len(control.handlers) == 3
    log.info("all three")
    assert messages(path) == ["all three"]
    assert receive(udp_listener).endswith("]: all three")


def test_the_log_file_is_created_0640_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "ipvswm.log"
    old = os.umask(0)
    try:
        setup_logging(options(log_path=str(path)), foreground=False)
        log.info("one line")
        os.rename(path, tmp_path / "ipvswm.log.1")  # rotated: the reopened file is new too
        log.info("after")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "ipvswm.log.1").stat().st_mode & 0o777 == 0o640
