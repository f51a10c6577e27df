"""sd_notify over a real Unix datagram socket (a path and an abstract name)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipvswm import sdnotify


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[socket.socket]:
    """A datagram socket bound where $NOTIFY_SOCKET points."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        name = str(tmp_path / "notify")
        sock.bind(name)
    else:
        abstract = f"ipvswm-test-{uuid.uuid4().hex}"
        sock.bind("\0" + abstract)
        name = "@" + abstract
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    yield sock
    sock.close()


def receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_lifecycle_messages(notify_socket: socket.socket) -> None:
    assert sdnotify.ready("serving 3 virtual services")
    assert receive(notify_socket) == "READY=1\nSTATUS=serving 3 virtual services"
    assert sdnotify.reloading()
    lines = receive(notify_socket).split("\n")
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and int(lines[1].split("=")[1]) > 0
    assert sdnotify.ready()
    assert receive(notify_socket) == "READY=1"
    assert sdnotify.status("reloading config")
    assert receive(notify_socket) == "STATUS=reloading config"
    assert sdnotify.stopping()
    assert receive(notify_socket) == "STOPPING=1"


def test_unset_socket_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False


def test_missing_socket_is_false_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False
    assert "failed" in caplog.text
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:999")
    assert sdnotify.notify("READY=1") is False


async def test_watchdog_pings(notify_socket: socket.socket) -> None:
    env = dict(os.environ, WATCHDOG_USEC="40000", WATCHDOG_PID=str(os.getpid()))
    dog = sdnotify.Watchdog(env)
    assert dog.enabled and dog.interval == pytest.approx(0.04)
    notify_socket.setblocking(False)
    loop = asyncio.get_running_loop()
    await dog.start()
    try:
        first = await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), 5)
        second = await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), 5)
    finally:
        await dog.close()
    assert first == second == b"WATCHDOG=1"
    assert dog.pings >= 2


async def test_watchdog_withholds_pings_when_not_alive(
    notify_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = asyncio.Event()
    dog = sdnotify.Watchdog(dict(os.environ, WATCHDOG_USEC="20000"), alive=lambda: healthy.is_set())
    notify_socket.setblocking(False)
    loop = asyncio.get_running_loop()
    await dog.start()
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), 0.1)
        healthy.set()
        got = await asyncio.wait_for(loop.sock_recv(notify_socket, 4096), 5)
    finally:
        await dog.close()
    assert got == b"WATCHDOG=1"
    assert "ping withheld" in caplog.text


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": "0", "NOTIFY_SOCKET": "/x"},
        {"WATCHDOG_USEC": "abc", "NOTIFY_SOCKET": "/x"},
        {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "999999999", "NOTIFY_SOCKET": "/x"},
        {"WATCHDOG_USEC": "1000000"},  # no socket to ping
    ],
)
async def test_watchdog_disabled(env: dict[str, str]) -> None:
    dog = sdnotify.Watchdog(env)
    assert not dog.enabled
    await dog.start()
    await dog.close()
    assert dog.pings == 0
