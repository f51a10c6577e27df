"""The config watcher's event path (inotify): renames and closes are handed over at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ipvswm.config import watch
from ipvswm.config.inotify import InotifyError
from ipvswm.config.inotify import writers_present
from ipvswm.config.watch import ConfigWatcher
from tests.support.watch import Recorder
from tests.support.watch import watched

NEVER = 3600.0  # a poll period no test waits for (Recorder.next waits 30 s at most): whatever
# is handed over came from an event


async def started(path: Path, on_change: Recorder) -> ConfigWatcher:
    watcher = ConfigWatcher(str(path), NEVER, on_change, events=True)
    watcher.start()
    assert watcher.following_events
    return watcher


def watching(tmp_path: Path) -> tuple[Path, Recorder]:
    """`ipvswm.conf` holding "old" and its Recorder."""
    path, on_change, _ = watched(tmp_path, "old\n", NEVER)
    return path, on_change


async def test_a_rename_into_place_is_handed_over_without_waiting_a_period(
    tmp_path: Path,
) -> None:
    path, on_change = watching(tmp_path)
    watcher = await started(path, on_change)
    try:
        new = tmp_path / "ipvswm.conf.new"
        new.write_text("renamed\n")  # a close of another name: nothing
        os.replace(new, path)
        assert await on_change.next() == "renamed\n"
        new.write_text("renamed again\n")  # the replaced file is followed
        os.replace(new, path)
        assert await on_change.next() == "renamed again\n"
    finally:
        await watcher.close()


async def test_an_in_place_write_is_handed_over_when_its_writer_closes(tmp_path: Path) -> None:
    path, on_change = watching(tmp_path)
    watcher = await started(path, on_change)
    try:
        with path.open("w") as writer:
            writer.write("half")
            writer.flush()
            # Another writer's close while the first still writes: not handed over.
            with path.open("a"):
                pass
            assert not await watcher.look()
            writer.write(" and the rest\n")
        assert await on_change.next() == "half and the rest\n"
        assert not on_change.pending()
    finally:
        await watcher.close()


async def test_a_symlinked_config_follows_edits_of_its_target(tmp_path: Path) -> None:
    target_dir = tmp_path / "real"
    target_dir.mkdir()
    target = target_dir / "conf"
    target.write_text("old\n")
    link = tmp_path / "ipvswm.conf"
    link.symlink_to(target)
    on_change = Recorder(link)
    watcher = await started(link, on_change)
    try:
        target.write_text("edited through the link\n")
        assert await on_change.next() == "edited through the link\n"
    finally:
        await watcher.close()


async def test_a_poll_does_not_hand_over_a_quiet_file_still_open_for_writing(
    tmp_path: Path,
) -> None:
    path, on_change, watcher = watched(tmp_path, "old\n", NEVER)
    with path.open("w") as writer:
        writer.write("cut off")
        writer.flush()
        assert not await watcher.poll()
        assert not await watcher.poll()  # quiet for a period, but open for writing
    assert await watcher.poll()
    assert await on_change.next() == "cut off"


def test_writers_present_tells_an_open_writer(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    assert writers_present(str(path)) is False
    with path.open("a"):
        assert writers_present(str(path)) is True
    assert writers_present(str(path)) is False
    assert writers_present(str(tmp_path / "missing")) is None


async def test_without_inotify_the_watcher_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unavailable() -> None:
        raise InotifyError(38, "inotify_init1: Function not implemented")

    monkeypatch.setattr(watch, "Inotify", unavailable)
    path, on_change, watcher = watched(tmp_path, "old\n", 0.01, events=True)
    with caplog.at_level("INFO", "ipvswm.config.watch"):
        watcher.start()
    try:
        assert not watcher.following_events
        assert "no file events" in caplog.text
        path.write_text("polled\n")
        assert await on_change.next() == "polled\n"
    finally:
        await watcher.close()
