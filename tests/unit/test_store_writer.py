"""The store's writer thread: every call runs in its one thread, in order, and is awaited."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from ipvswm.engine.state import HostState
from ipvswm.engine.state import StateChanges
from ipvswm.store import Store
from ipvswm.store import StoreError
from ipvswm.store.writer import StoreWriter


def reasons(*words: str) -> StateChanges:
    return StateChanges(hosts={"web1": HostState(reasons=frozenset(words))})


async def test_saves_run_in_the_writer_thread_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await StoreWriter.open(str(tmp_path / "db"))
    threads: set[str] = set()
    save = Store.save

    def recording(store: Store, changes: StateChanges) -> None:
        threads.add(threading.current_thread().name)
        save(store, changes)

    monkeypatch.setattr(Store, "save", recording)
    try:
        # started together, committed in the order asked: the last one wins
        await asyncio.gather(*(writer.save(reasons(f"r{i}")) for i in range(20)))
        assert (await writer.load()).hosts["web1"].reasons == frozenset({"r19"})
    finally:
        await writer.close()
    assert len(threads) == 1 and threading.current_thread().name not in threads


async def test_a_failed_commit_raises_to_the_awaiting_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await StoreWriter.open(str(tmp_path / "db"))
    await writer.save(reasons("kept"))

    def disk_full(store: Store, changes: StateChanges) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(Store, "save", disk_full)
    try:
        with pytest.raises(StoreError, match="disk full"):
            await writer.save(reasons("lost"))
        assert (await writer.load()).hosts["web1"].reasons == frozenset({"kept"})
    finally:
        await writer.close()


async def test_an_unusable_database_is_refused_at_open(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no directory"):
        await StoreWriter.open(str(tmp_path / "missing" / "db"))
