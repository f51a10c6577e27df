"""Config diff descriptions and the file watcher used for automatic reload."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ipvswm.config.diff import describe_diff
from ipvswm.config.model import CheckKind
from ipvswm.config.model import CheckSpec
from ipvswm.config.model import Config
from ipvswm.config.model import GlobalOptions
from ipvswm.config.model import Host
from ipvswm.config.model import VirtualService
from ipvswm.config.watch import ConfigWatcher
from ipvswm.config.watch import file_signature
from tests.support.watch import watched

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


async def test_a_change_is_handed_over_only_once_it_has_settled(tmp_path: Path) -> None:
    path, on_change, watcher = watched(tmp_path, "old\n", 3.0)
    assert not await watcher.poll()
    path.write_text("")  # `cat new > conf`: truncated first ...
    assert not await watcher.poll()  # ... seen once: not handed over
    path.write_text("new content\n")
    assert not await watcher.poll()  # a different version: wait for one more quiet period
    assert await watcher.poll()
    assert on_change.seen == ["new content\n"]
    assert not await watcher.poll()
    assert on_change.seen == ["new content\n"]


async def test_mark_current_skips_a_pending_change(tmp_path: Path) -> None:
    path, on_change, watcher = watched(tmp_path, "a\n", 3.0)
    path.write_text("bb\n")
    assert not await watcher.poll()
    watcher.mark_current()  # e.g. `config reload` read this version
    assert not await watcher.poll()
    assert not await watcher.poll()
    assert on_change.seen == []


async def test_a_vanished_file_is_logged_once_when_settled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, on_change, watcher = watched(tmp_path, "a\n", 3.0)
    path.unlink()
    with caplog.at_level(logging.WARNING, "ipvswm.config.watch"):
        assert not await watcher.poll()
        assert await watcher.poll()
        assert not await watcher.poll()
    assert [r.getMessage() for r in caplog.records] == [
        f"config {path}: cannot be read now; keeping the last good config"
    ]
    assert on_change.seen == []


def count_polls(
    watcher: ConfigWatcher, after: Callable[[int], None] | None = None
) -> asyncio.Queue[int]:
    """Have the watcher report each poll (and run `after(n)` right after poll n, in its task)."""
    polls: asyncio.Queue[int] = asyncio.Queue()
    poll = watcher.poll
    count = 0

    async def counted() -> bool:
        nonlocal count
        handled = await poll()
        count += 1
        if after is not None:
            after(count)
        polls.put_nowait(count)
        return handled

    watcher.poll = counted  # type: ignore[method-assign]
    return polls


async def test_file_rewritten_in_two_steps_gives_one_callback(tmp_path: Path) -> None:
    path, on_change, watcher = watched(tmp_path, "! www 192.0.2.1:80 /\n", 0.02)
    polls = count_polls(watcher)
    watcher.start()
    try:
        await asyncio.wait_for(polls.get(), 5)
        path.write_text("")  # truncated ...
        await asyncio.wait_for(polls.get(), 5)  # ... and a poll sees it empty
        path.write_text("! www 192.0.2.1:80 /\n! api 192.0.2.2:80 /\n")  # within the period
        await asyncio.wait_for(on_change.called.wait(), 5)
        for _ in range(3):
            await asyncio.wait_for(polls.get(), 5)
        assert on_change.seen == ["! www 192.0.2.1:80 /\n! api 192.0.2.2:80 /\n"]
    finally:
        await watcher.close()


async def test_file_changing_every_poll_is_not_handed_over_until_it_settles(
    tmp_path: Path,
) -> None:
    path, on_change, watcher = watched(tmp_path, "", 0.01)

    def keep_writing(poll: int) -> None:
        if poll <= 20:
            with path.open("a") as file:  # one byte more: a new signature before every poll
                file.write(f"{poll % 10}")

    polls = count_polls(watcher, keep_writing)
    watcher.start()
    try:
        while await asyncio.wait_for(polls.get(), 5) < 20:
            assert on_change.seen == []
        await asyncio.wait_for(on_change.called.wait(), 5)
        assert on_change.seen == ["12345678901234567890"]
    finally:
        await watcher.close()


async def test_an_edit_made_before_the_watcher_started_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "ipvswm.conf"
    path.write_text("old\n")
    loaded = file_signature(str(path))  # what the daemon parsed at start
    path.write_text("edited during start-up\n")
    calls: list[str] = []

    async def on_change() -> None:
        calls.append(path.read_text())

    watcher = ConfigWatcher(str(path), 1.0, on_change, seen=loaded)
    assert not await watcher.poll()  # seen changed: wait one quiet period
    assert await watcher.poll()
    assert calls == ["edited during start-up\n"]
    fresh = ConfigWatcher(str(path), 1.0, on_change)  # default: the file as it is now
    assert not await fresh.poll() and not await fresh.poll()
    assert len(calls) == 1


async def test_follow_config_auto_check_off_sees_changes_without_handing_them_over(
    tmp_path: Path,
) -> None:
    path, on_change, watcher = watched(tmp_path, "a\n", 3.0)
    watcher.follow(GlobalOptions(config_auto_check=False))
    path.write_text("bb\n")
    assert not await watcher.poll()
    assert await watcher.poll()  # settled: this version is seen ...
    assert on_change.seen == []  # ... and not reloaded
    watcher.follow(GlobalOptions(config_auto_check=True))  # a reload turned it on again
    try:
        assert watcher.on
        assert not await watcher.poll()  # "bb" was seen already: nothing new
        path.write_text("ccc\n")
        assert not await watcher.poll()
        assert await watcher.poll()
        assert on_change.seen == ["ccc\n"]
    finally:
        await watcher.close()
