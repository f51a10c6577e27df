"""Name resolution for the config: the system resolver is bounded in time; tests never hit DNS."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ipvswm.config.parser import parse_text
from ipvswm.config.parser import system_resolver
from ipvswm.config.resolve import split_host_port


def _info(address: str) -> tuple[Any, ...]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, 0, 0, 0) if ":" in address else (address, 0)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event that unblocks hung fake lookups when the test ends (no thread outlives it)."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def fake_getaddrinfo(monkeypatch: pytest.MonkeyPatch, release: threading.Event) -> list[str]:
    """socket.getaddrinfo replaced: a table, a name that hangs, and failure for anything else."""
    calls: list[str] = []
    table = {
        "web.example": ["2001:db8::7", "192.0.2.7"],
        "v6.example": ["fe80::1%eth0", "2001:db8::8"],
    }

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        if host == "hang.example":
            release.wait(30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_info(a) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_system_resolver_returns_every_address(fake_getaddrinfo: list[str]) -> None:
    assert system_resolver()("web.example") == ["2001:db8::7", "192.0.2.7"]
    assert fake_getaddrinfo == ["web.example"]


def test_parser_prefers_ipv4_and_drops_scope(fake_getaddrinfo: list[str]) -> None:
    text = "! a web.example:80 -\n! b v6.example:80 -\n"
    result = parse_text(text, "t.conf", system_resolver())
    assert result.config is not None
    assert [vs.address for vs in result.config.services] == ["192.0.2.7", "fe80::1"]


def test_parser_defaults_to_the_system_resolver(fake_getaddrinfo: list[str]) -> None:
    result = parse_text("h web.example:81\n", "t.conf")
    assert result.config is not None
    assert result.config.hosts[0].address == "192.0.2.7"


def test_unknown_name_is_an_error(fake_getaddrinfo: list[str]) -> None:
    result = parse_text("h nosuch.example\n", "t.conf", system_resolver())
    assert [str(e) for e in result.errors] == [
        "t.conf:1: host 'h': cannot resolve host name 'nosuch.example': "
        "[Errno -2] Name or service not known"
    ]


def test_hung_lookup_is_bounded(fake_getaddrinfo: list[str]) -> None:
    start = time.monotonic()
    result = parse_text("! w hang.example:80 -\n", "t.conf", system_resolver(timeout=0.2))
    elapsed = time.monotonic() - start
    assert [str(e) for e in result.errors] == [
        "t.conf:1: virtual service 'w': cannot resolve host name 'hang.example': "
        "lookup timed out after 0.2 s"
    ]
    assert elapsed < 10.0  # bounded, not the 30 s hang


def test_resolver_is_not_called_for_literals(fake_getaddrinfo: list[str]) -> None:
    result = parse_text("! w 192.0.2.1:80 http://web.example/\nh [2001:db8::1]\n", "t")
    assert result.errors == ()
    assert fake_getaddrinfo == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", ("192.0.2.1", False, [])),
        ("192.0.2.1:80:8080", ("192.0.2.1", False, ["80", "8080"])),
        ("[2001:db8::1]", ("2001:db8::1", True, [])),
        ("[2001:db8::1]:443:8443", ("2001:db8::1", True, ["443", "8443"])),
        ("name.example:80", ("name.example", False, ["80"])),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, bool, list[str]]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["", ":80", "[]:80", "[::1", "[::1]80", "a:", "1:2:3:4"])
def test_split_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)
