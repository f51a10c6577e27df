"""Config diff descriptions and the file watcher used for automatic reload."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ipvswm.config.diff import describe_diff
from ipvswm.config.model import (
    CheckKind,
    CheckSpec,
    Config,
    GlobalOptions,
    Host,
    VirtualService,
)
from ipvswm.config.watch import ConfigWatcher, file_signature

HTTP = CheckSpec(CheckKind.HTTP, url_host="www.example.test", path="/health")


def config(*hosts: Host, services: tuple[VirtualService, ...] | None = None) -> Config:
    vss = services or (
        VirtualService("www", "192.0.2.1", 80, 80, HTTP),
        VirtualService("api", "192.0.2.2", 443, 443, CheckSpec(CheckKind.TCP)),
    )
    return Config(services=vss, hosts=hosts)


def test_equal_configs_have_no_diff() -> None:
    a = config(Host("web1", "127.0.0.2", weights=(("www", 10),)))
    assert describe_diff(a, a) == []


def test_diff_names_every_kind_of_change() -> None:
    old = config(
        Host("web1", "127.0.0.2", weights=(("www", 10), ("api", 5))),
        Host("web2", "127.0.0.3", weights=(("www", 10),)),
    )
    new_vss = (
        VirtualService("www", "192.0.2.1", 80, 80, CheckSpec(CheckKind.HTTP, path="/other")),
        VirtualService("db", "192.0.2.3", 5432, 5432, CheckSpec(CheckKind.TCP)),
    )
    new = Config(
        options=GlobalOptions(check_interval=2.0, management_socket_port=9100),
        services=new_vss,
        hosts=(
            Host("web1", "127.0.0.2", weights=(("www", 20),)),
            Host("web3", "127.0.0.4", weights=(("db", 1),)),
        ),
    )
    lines = describe_diff(old, new)
    assert "add vs db tcp:192.0.2.3:5432" in lines
    assert "remove vs api" in lines
    assert "vs www: check http://www.example.test/health -> /other" in lines
    assert "add host web3 127.0.0.4" in lines
    assert "remove host web2" in lines
    assert "remove host web1 from vs api" in lines
    assert "vs www host web1: weight 10 -> 20" in lines
    assert "option check_interval: 5.0 -> 2.0" in lines
    assert "option management_socket_port: 9000 -> 9100 (takes effect after a restart)" in lines
    assert any(line.startswith("checkers: ") for line in lines)


def test_vs_with_a_new_address_is_a_replacement() -> None:
    old = config()
    new = config(
        services=(
            VirtualService("www", "192.0.2.9", 80, 80, HTTP),
            VirtualService("api", "192.0.2.2", 443, 443, CheckSpec(CheckKind.TCP)),
        )
    )
    assert describe_diff(old, new) == ["replace vs www: tcp:192.0.2.1:80 -> tcp:192.0.2.9:80"]


async def test_watcher_calls_back_once_per_new_version(tmp_path: Path) -> None:
    path = tmp_path / "ipvswm.conf"
    path.write_text("a\n")
    seen: list[str] = []
    changed = asyncio.Event()

    async def on_change() -> None:
        seen.append(path.read_text())
        changed.set()

    watcher = ConfigWatcher(str(path), 0.01, on_change)
    watcher.start()
    try:
        await asyncio.sleep(0.05)  # several polls of an unchanged file: no call
        assert seen == []
        path.write_text("bb\n")
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()
        path.unlink()  # unreadable: logged, no call
        tmp = tmp_path / "new"
        tmp.write_text("ccc\n")
        os.replace(tmp, path)
        await asyncio.wait_for(changed.wait(), 5)
        assert seen == ["bb\n", "ccc\n"]
    finally:
        await watcher.close()


def test_signature_of_missing_file_is_none(tmp_path: Path) -> None:
    assert file_signature(str(tmp_path / "missing")) is None
    (tmp_path / "f").write_text("x")
    assert file_signature(str(tmp_path / "f")) is not None
