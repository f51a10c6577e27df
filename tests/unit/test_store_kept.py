"""The kept admin state of removed hosts in the state database (issue 10 item 2)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import KeptPair
from ipvswm.engine.state import StateChanges
from ipvswm.store import Store
from ipvswm.store import database as store_mod
from ipvswm.store import dump_file

ENTRY = KeptHost(
    1_700_000_000.5, frozenset({"maint"}), {"www": KeptPair(frozenset({"deploy"}), 7, 30.0)}
)


def test_kept_state_survives_a_reopen_and_is_deleted_by_none(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    with Store(db) as store:
        store.save(StateChanges(kept={"web3": ENTRY}))
    with Store(db) as store:
        assert store.load().kept == {"web3": ENTRY}
        store.save(StateChanges(kept={"web3": None}))
    with Store(db) as store:
        assert store.load().kept == {}


def test_a_version_1_database_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "v1.db")
    conn = sqlite3.connect(db, isolation_level=None)
    store_mod._create_v1(conn)
    conn.execute("UPDATE schema_version SET version = 1")
    conn.execute("INSERT INTO hosts (host, data) VALUES ('web1', '{\"reasons\":[\"maint\"]}')")
    conn.close()
    with Store(db) as store:
        snap = store.load()
        assert snap.hosts["web1"].reasons == {"maint"} and snap.kept == {}
        store.save(StateChanges(kept={"web3": ENTRY}))
    assert "kept admin state of removed hosts (1):" in dump_file(db)
    assert "web3 removed_at=2023-11-14T22:13:20.500Z reasons=maint" in dump_file(db)
