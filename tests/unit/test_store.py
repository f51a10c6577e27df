"""The SQLite state store: round trips, deletes, schema versions, corruption, dump."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import sqlite3
import tempfile
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ipvswm.engine.state import HostState
from ipvswm.engine.state import PairState
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateChanges
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import VsState
from ipvswm.events import CheckStatus
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey
from ipvswm.store import Store
from ipvswm.store import StoreError
from ipvswm.store import database as store_mod
from ipvswm.store import decode_record
from ipvswm.store import dump_file
from ipvswm.store import encode_record
from ipvswm.store import format_dump

# --- strategies built from the dataclass fields, so fields added later are covered too ----------

names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(tp)))
    if origin is frozenset:
        return st.frozensets(strategy_for(typing.get_args(tp)[0]), max_size=4)
    if origin is tuple:
        return st.lists(strategy_for(typing.get_args(tp)[0]), max_size=4).map(tuple)
    if tp is type(None):
        return st.none()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    simple: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(),
        int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
        float: st.floats(allow_nan=False),
        str: names,
    }
    return simple[tp]


def records(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    return st.builds(cls, **{f.name: strategy_for(hints[f.name]) for f in dataclasses.fields(cls)})


service_keys = st.builds(
    ServiceKey,
    protocol=st.sampled_from(list(Protocol)),
    address=st.sampled_from(["192.0.2.1", "192.0.2.77", "2001:db8::1", "0.0.0.0", "::"]),
    port=st.integers(min_value=0, max_value=65535),
)

snapshots = st.builds(
    StateSnapshot,
    hosts=st.dictionaries(names, records(HostState), max_size=4),
    pairs=st.dictionaries(st.tuples(names, names), records(PairState), max_size=6),
    vss=st.dictionaries(names, records(VsState), max_size=4),
    managed=st.frozensets(service_keys, max_size=4),
)


def as_changes(snapshot: StateSnapshot) -> StateChanges:
    return StateChanges(
        hosts=dict(snapshot.hosts),
        pairs=dict(snapshot.pairs),
        vss=dict(snapshot.vss),
        managed_added=snapshot.managed,
    )


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


# --- round trips -----------------------------------------------------------------------------


@given(records(PairState))
def test_pair_state_codec_round_trip(pair: PairState) -> None:
    assert decode_record(PairState, encode_record(pair)) == pair


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots)
def test_snapshot_round_trip_through_the_database(snapshot: StateSnapshot) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.db")
        with Store(path) as store:
            store.save(as_changes(snapshot))
            assert store.load() == snapshot
        with Store(path) as store:  # and after reopening
            assert store.load() == snapshot


def test_new_database_loads_empty(db: str) -> None:
    with Store(db) as store:
        assert store.load() == StateSnapshot()


def test_every_pair_field_survives(db: str) -> None:
    sample: dict[str, Any] = {
        "reasons": frozenset({"maint", "default"}),
        "enabled_at": 1_700_000_000.25,
        "down_since": 1_700_000_001.5,
        "ramp_duration": 10.0,
        "ramp_deadline": 1_700_000_011.125,
        "override": 42,
        "check_status": CheckStatus.FAIL,
        "check_cause": "status 503",
        "last_pass_started": 1.0,
        "last_check_started": 2.0,
        "last_check_ended": 3.0,
        "weight": 17,
        "phase": Phase.RAMPING,
    }
    default = PairState()
    assert all(value != getattr(default, name) for name, value in sample.items())
    pair = PairState(**sample)
    with Store(db) as store:
        store.save(StateChanges(pairs={("web", "h1"): pair}))
    with Store(db) as store:
        assert store.load().pairs == {("web", "h1"): pair}


def test_a_pair_row_of_an_older_version_with_applied_weight_still_loads(db: str) -> None:
    """Versions before issue 14 stored the weight last applied to the kernel in each pair row;
    nothing reads it any more (the kernel sync holds the kernel's table), so it is ignored."""
    pair = PairState(weight=7, phase=Phase.ENABLED)
    with Store(db) as store:
        store.save(StateChanges(pairs={("web", "h1"): pair}))
    conn = sqlite3.connect(db)
    (data,) = conn.execute("SELECT data FROM pairs").fetchone()
    old = json.dumps({**json.loads(data), "applied_weight": 7})
    conn.execute("UPDATE pairs SET data = ?", (old,))
    conn.commit()
    conn.close()
    with Store(db) as store:
        assert store.load().pairs == {("web", "h1"): pair}


def test_rows_are_json_with_enums_by_value_and_sorted_sets(db: str) -> None:
    pair = PairState(reasons=frozenset({"b", "a"}), phase=Phase.DISABLED)
    with Store(db) as store:
        store.save(StateChanges(pairs={("web", "h1"): pair}))
    conn = sqlite3.connect(db)
    (data,) = conn.execute("SELECT data FROM pairs WHERE vs='web' AND host='h1'").fetchone()
    conn.close()
    stored = json.loads(data)
    assert stored["reasons"] == ["a", "b"]
    assert stored["phase"] == "DISABLED"
    assert stored["check_status"] == "unknown"


# --- updates and deletes ---------------------------------------------------------------------

KEY_A = ServiceKey(Protocol.TCP, "192.0.2.1", 80)
KEY_B = ServiceKey(Protocol.FWMARK, "::", 7)


def test_updates_replace_and_none_deletes(db: str) -> None:
    with Store(db) as store:
        store.save(
            StateChanges(
                hosts={"h1": HostState(frozenset({"x"})), "h2": HostState()},
                pairs={("v", "h1"): PairState(weight=1), ("v", "h2"): PairState(weight=2)},
                vss={"v": VsState(sorry_on=True, sorry_since=5.0), "w": VsState()},
                managed_added=frozenset({KEY_A, KEY_B}),
            )
        )
        store.save(
            StateChanges(
                hosts={"h1": None, "h2": HostState(frozenset({"y"})), "missing": None},
                pairs={("v", "h1"): None, ("v", "h2"): PairState(weight=3)},
                vss={"w": None},
                managed_removed=frozenset({KEY_A}),
            )
        )
        expected = StateSnapshot(
            hosts={"h2": HostState(frozenset({"y"}))},
            pairs={("v", "h2"): PairState(weight=3)},
            vss={"v": VsState(sorry_on=True, sorry_since=5.0)},
            managed=frozenset({KEY_B}),
        )
        assert store.load() == expected
    with Store(db) as store:
        assert store.load() == expected


def test_managed_key_in_both_sets_ends_up_managed(db: str) -> None:
    with Store(db) as store:
        store.save(
            StateChanges(managed_added=frozenset({KEY_A}), managed_removed=frozenset({KEY_A}))
        )
        assert store.load().managed == frozenset({KEY_A})


def test_empty_changes_write_nothing(db: str) -> None:
    with Store(db) as store:
        store.save(StateChanges())
        assert store.load() == StateSnapshot()


def test_failed_save_rolls_back_whole_transaction(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db) as store:
        store.save(StateChanges(pairs={("v", "h"): PairState(weight=1)}))

        def broken(record: Any) -> str:
            if isinstance(record, VsState):
                raise sqlite3.OperationalError("disk I/O error")
            return encode_record(record)

        monkeypatch.setattr(store_mod, "encode_record", broken)
        with pytest.raises(StoreError, match="disk I/O error"):
            store.save(StateChanges(pairs={("v", "h"): PairState(weight=2)}, vss={"v": VsState()}))
        assert store.load().pairs == {("v", "h"): PairState(weight=1)}
        monkeypatch.undo()
        store.save(StateChanges(pairs={("v", "h"): PairState(weight=3)}))  # still usable
        assert store.load().pairs == {("v", "h"): PairState(weight=3)}


# --- forward and backward compatibility ------------------------------------------------------


def _write_pair_json(db: str, data: str) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT OR REPLACE INTO pairs (vs, host, data) VALUES ('v', 'h', ?)", (data,))
    conn.close()


def test_unknown_fields_ignored_and_missing_fields_default(db: str) -> None:
    Store(db).close()
    _write_pair_json(db, json.dumps({"weight": 7, "from_the_future": [1, 2], "phase": "ENABLED"}))
    with Store(db) as store:
        assert store.load().pairs[("v", "h")] == PairState(weight=7, phase=Phase.ENABLED)


def test_unreadable_field_falls_back_to_default(db: str, caplog: pytest.LogCaptureFixture) -> None:
    Store(db).close()
    _write_pair_json(db, json.dumps({"weight": "heavy", "phase": "NO_SUCH", "override": 5}))
    with Store(db) as store:
        assert store.load().pairs[("v", "h")] == PairState(override=5)
    assert "pair v/h: field weight unreadable" in caplog.text
    assert "field phase unreadable" in caplog.text


def test_row_that_is_not_json_is_a_store_error(db: str) -> None:
    Store(db).close()
    _write_pair_json(db, "{not json")
    with Store(db) as store, pytest.raises(StoreError, match="pair v/h is not valid JSON"):
        store.load()


@dataclasses.dataclass(frozen=True, slots=True)
class FutureState:
    """A record as a later version might define it (a field added with a default)."""

    weight: int = 0
    ramp_steps: tuple[int, ...] = ()
    mode: Phase | None = None
    extra: dict[str, float] = dataclasses.field(default_factory=dict)


def test_added_fields_need_no_schema_change() -> None:
    new = FutureState(weight=3, ramp_steps=(1, 2), mode=Phase.RAMPING, extra={"a": 1.5})
    assert decode_record(FutureState, encode_record(new)) == new
    assert decode_record(PairState, encode_record(new)) == PairState(weight=3)
    assert decode_record(FutureState, encode_record(PairState(weight=4))) == FutureState(weight=4)


# --- schema versions -------------------------------------------------------------------------


def _version(db: str) -> int:
    conn = sqlite3.connect(db)
    (version,) = conn.execute("SELECT version FROM schema_version").fetchone()
    conn.close()
    return int(version)


def test_new_database_gets_current_schema_and_wal(db: str) -> None:
    Store(db).close()
    assert _version(db) == store_mod.SCHEMA_VERSION
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_newer_schema_is_refused(db: str) -> None:
    Store(db).close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    supports = rf"supports \({store_mod.SCHEMA_VERSION}\)"
    with pytest.raises(StoreError, match=rf"schema version 99 is newer .* {supports}"):
        Store(db)
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        dump_file(db)
    assert _version(db) == 99  # untouched


def test_older_schema_is_migrated(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(db) as store:
        store.save(StateChanges(pairs={("v", "h"): PairState(weight=5)}))

    def to_next(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (text TEXT)")

    current = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store_mod.MIGRATIONS, current, to_next)
    with pytest.raises(StoreError, match=f"older than {current + 1}"):
        dump_file(db)  # a read-only dump never migrates
    with Store(db) as store:
        assert store.load().pairs == {("v", "h"): PairState(weight=5)}
    assert _version(db) == current + 1
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)
    conn.close()


def test_failed_migration_changes_nothing(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    Store(db).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    current = store_mod.SCHEMA_VERSION
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(store_mod.MIGRATIONS, current, broken)
    with pytest.raises(StoreError, match="no such table"):
        Store(db)
    assert _version(db) == current
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert "half" not in tables


# --- unusable files --------------------------------------------------------------------------


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "state.db"
    with pytest.raises(StoreError, match="no directory"):
        Store(str(path))
    assert not path.parent.exists()


def test_garbage_file_is_a_clear_error(db: str) -> None:
    Path(db).write_bytes(b"this is not an sqlite database, just text\n" * 200)
    with pytest.raises(StoreError, match=r"unreadable or corrupt.*not a database"):
        Store(db)
    with pytest.raises(StoreError, match="not a database"):
        dump_file(db)


def test_damaged_pages_are_a_clear_error(db: str) -> None:
    with Store(db) as store:
        store.save(StateChanges(pairs={("v", f"h{i}"): PairState(weight=i) for i in range(2000)}))
    size = os.path.getsize(db)
    with open(db, "r+b") as f:  # keep the header, scribble over the b-tree pages
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    with pytest.raises(StoreError, match="corrupt"), Store(db) as store:
        store.load()


def test_foreign_database_is_refused(db: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE something (x)")
    conn.close()
    with pytest.raises(StoreError, match=r"not an ipvswm state database \(tables: something\)"):
        Store(db)


def test_save_after_close_is_a_store_error(db: str) -> None:
    store = Store(db)
    store.close()
    store.close()
    with pytest.raises(StoreError):
        store.save(StateChanges(hosts={"h": HostState()}))


# --- dump ------------------------------------------------------------------------------------


def test_format_dump_lists_every_record() -> None:
    snapshot = StateSnapshot(
        hosts={"h1": HostState(frozenset({"maint"}))},
        pairs={
            ("web", "h1"): PairState(
                reasons=frozenset({"b", "a"}), enabled_at=0.5, phase=Phase.DISABLED, weight=0
            )
        },
        vss={"web": VsState(sorry_on=True, sorry_since=86400.0)},
        managed=frozenset({KEY_A, ServiceKey(Protocol.TCP, "2001:db8::1", 443)}),
    )
    text = format_dump(snapshot)
    assert text.splitlines() == [
        "hosts (1):",
        "  h1 reasons=maint",
        "pairs (1):",
        "  web/h1 reasons=a,b enabled_at=1970-01-01T00:00:00.500Z down_since=- ramp_duration=-"
        ' ramp_deadline=- override=- check_status=unknown check_cause="" last_pass_started=-'
        " last_check_started=- last_check_ended=- weight=0 phase=DISABLED"
        " failed_at=-",
        "vss (1):",
        "  web sorry_on=yes sorry_since=1970-01-02T00:00:00.000Z kept_since=-",
        "kept admin state of removed hosts (0):",
        "managed services (2):",
        "  tcp:192.0.2.1:80",
        "  tcp:[2001:db8::1]:443",
    ]


def test_dump_file_reads_without_writing(db: str) -> None:
    with Store(db) as store:
        store.save(StateChanges(hosts={"h1": HostState(frozenset({"x"}))}))
        live = dump_file(db)  # while the daemon holds it open
    assert "  h1 reasons=x" in live
    os.chmod(db, 0o444)
    try:
        assert dump_file(db) == live
    finally:
        os.chmod(db, 0o644)
    assert _version(db) == store_mod.SCHEMA_VERSION


def test_dump_file_of_missing_or_empty_database(db: str) -> None:
    with pytest.raises(StoreError, match="no state database"):
        dump_file(db)
    Path(db).touch()
    assert dump_file(db).startswith("hosts (0):")
    assert Path(db).stat().st_size == 0


def test_the_db_and_its_wal_and_shm_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)  # the loosest umask: every file would be 0644/0666 by default
    try:
        path = tmp_path / "state.db"
        store = Store(str(path))
        store.save(StateChanges())  # a write: the -wal and -shm files exist now
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
        store.close()
        loose = tmp_path / "loose.db"
        loose.touch(mode=0o666)
        Store(str(loose)).close()
    finally:
        os.umask(old)
    assert {"state.db", "state.db-wal", "state.db-shm"} <= set(modes), modes
    assert set(modes.values()) == {0o600}, {k: oct(v) for k, v in modes.items()}
    assert loose.stat().st_mode & 0o777 == 0o600  # an older, looser DB is tightened
