"""Persistent engine state in SQLite (SPEC §6): load at start, one transaction per state change.

Records are stored generically, one JSON object per row (see store.records), so fields added to the
state dataclasses later need no schema change.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import TypeVar

from ipvswm.engine.state import HostState
from ipvswm.engine.state import KeptHost
from ipvswm.engine.state import PairState
from ipvswm.engine.state import StateChanges
from ipvswm.engine.state import StateSnapshot
from ipvswm.engine.state import VsState
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey
from ipvswm.store.records import StoreError
from ipvswm.store.records import decode_record
from ipvswm.store.records import encode_record
from ipvswm.timestamps import is_time_field
from ipvswm.timestamps import utc_text

__all__ = ["Store", "StoreError", "decode_record", "dump_file", "encode_record", "format_dump"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""The schema this code writes. Older databases are migrated; newer ones are refused."""

BUSY_TIMEOUT_MS = 5000

R = TypeVar("R")


# --- schema ----------------------------------------------------------------------------------


def _create_v1(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version (version) VALUES (0)")
    conn.execute("CREATE TABLE hosts (host TEXT PRIMARY KEY, data TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE pairs (vs TEXT NOT NULL, host TEXT NOT NULL, data TEXT NOT NULL,"
        " PRIMARY KEY (vs, host))"
    )
    conn.execute("CREATE TABLE vss (vs TEXT PRIMARY KEY, data TEXT NOT NULL)")
    conn.execute(
        "CREATE TABLE managed (protocol TEXT NOT NULL, address TEXT NOT NULL,"
        " port INTEGER NOT NULL, PRIMARY KEY (protocol, address, port))"
    )


def _create_v2(conn: sqlite3.Connection) -> None:
    """v2: the kept admin state of hosts removed by a reload (issue 10 item 2)."""
    conn.execute("CREATE TABLE kept (host TEXT PRIMARY KEY, data TEXT NOT NULL)")


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_v1, 1: _create_v2}
"""Schema upgrades by the version they start from (0: a new, empty database)."""


def _read_version(conn: sqlite3.Connection, path: str) -> int:
    """The database's schema version (0 for a new, empty one); refuses one newer than ours."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables:
            names = ", ".join(sorted(tables))
            raise StoreError(f"{path}: not an ipvswm state database (tables: {names})")
        return 0
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None or not isinstance(row[0], int):
        raise StoreError(f"{path}: corrupt state database: no valid schema version")
    if row[0] > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {row[0]} is newer than this ipvswm supports"
            f" ({SCHEMA_VERSION}); run a newer ipvswm or move the database away"
        )
    return row[0]


# --- the store -------------------------------------------------------------------------------


class Store:
    """The state database at one path: load once, then save every state change.

    Used from one thread, the one that opened it (the daemon's writer thread, store.writer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise StoreError(f"{path}: cannot open state database: no directory {directory}")
        self._conn = self._call(self._open, "cannot open state database (unreadable or corrupt?)")

    def _call(self, fn: Callable[[], R], what: str = "state database error") -> R:
        try:
            return fn()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {what}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        # Created 0600 whatever the umask; SQLite gives -wal and -shm the DB file's mode.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                if os.fstat(fd).st_mode & 0o077:
                    os.fchmod(fd, 0o600)  # an older, looser file: reasons, overrides are private
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open state database: {exc}") from exc
        # One thread uses the connection (the daemon's: store.writer): SQLite checks that it is so.
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("state database %s: journal mode %s, not WAL", self.path, mode)
            # FULL: a committed (acknowledged) change survives power loss, not only kill -9.
            conn.execute("PRAGMA synchronous = FULL")
            check = conn.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                problems = "; ".join(str(row[0]) for row in check[:3])
                raise StoreError(f"{self.path}: corrupt state database: {problems}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _read_version(conn, self.path)
            start = version
            while version < SCHEMA_VERSION:
                MIGRATIONS[version](conn)
                version += 1
            if version != start:
                conn.execute("UPDATE schema_version SET version = ?", (version,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if start not in (0, version):
            log.info("state database %s migrated from schema %d to %d", self.path, start, version)

    def load(self) -> StateSnapshot:
        """The whole stored state (empty for a new database)."""
        return self._call(lambda: _load(self._conn))

    def save(self, changes: StateChanges) -> None:
        """Write one engine step's changes in one durable transaction (None deletes the row)."""
        if not changes:
            return
        self._call(lambda: self._save(changes))

    def _save(self, changes: StateChanges) -> None:
        up_hosts, del_hosts = _split(changes.hosts.items())
        up_pairs, del_pairs = _split(changes.pairs.items())
        up_vss, del_vss = _split(changes.vss.items())
        up_kept, del_kept = _split(changes.kept.items())
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("DELETE FROM hosts WHERE host = ?", ((k,) for k in del_hosts))
            conn.executemany(
                "INSERT OR REPLACE INTO hosts (host, data) VALUES (?, ?)",
                ((k, encode_record(v)) for k, v in up_hosts),
            )
            conn.executemany(
                "DELETE FROM pairs WHERE vs = ? AND host = ?", ((vs, h) for vs, h in del_pairs)
            )
            conn.executemany(
                "INSERT OR REPLACE INTO pairs (vs, host, data) VALUES (?, ?, ?)",
                ((vs, h, encode_record(v)) for (vs, h), v in up_pairs),
            )
            conn.executemany("DELETE FROM vss WHERE vs = ?", ((k,) for k in del_vss))
            conn.executemany(
                "INSERT OR REPLACE INTO vss (vs, data) VALUES (?, ?)",
                ((k, encode_record(v)) for k, v in up_vss),
            )
            conn.executemany("DELETE FROM kept WHERE host = ?", ((k,) for k in del_kept))
            conn.executemany(
                "INSERT OR REPLACE INTO kept (host, data) VALUES (?, ?)",
                ((k, encode_record(v)) for k, v in up_kept),
            )
            # Removed first: a key in both sets ends up managed.
            conn.executemany(
                "DELETE FROM managed WHERE protocol = ? AND address = ? AND port = ?",
                (_key_row(k) for k in changes.managed_removed),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO managed (protocol, address, port) VALUES (?, ?, ?)",
                (_key_row(k) for k in changes.managed_added),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _split(items: Iterable[tuple[Any, R | None]]) -> tuple[list[tuple[Any, R]], list[Any]]:
    upserts: list[tuple[Any, R]] = []
    deletes: list[Any] = []
    for key, value in items:
        if value is None:
            deletes.append(key)
        else:
            upserts.append((key, value))
    return upserts, deletes


def _key_row(key: ServiceKey) -> tuple[str, str, int]:
    return (key.protocol.value, key.address, key.port)


def _load(conn: sqlite3.Connection) -> StateSnapshot:
    hosts = {
        host: decode_record(HostState, data, f"host {host}")
        for host, data in conn.execute("SELECT host, data FROM hosts")
    }
    pairs = {
        (vs, host): decode_record(PairState, data, f"pair {vs}/{host}")
        for vs, host, data in conn.execute("SELECT vs, host, data FROM pairs")
    }
    vss = {
        vs: decode_record(VsState, data, f"vs {vs}")
        for vs, data in conn.execute("SELECT vs, data FROM vss")
    }
    managed: set[ServiceKey] = set()
    for protocol, address, port in conn.execute("SELECT protocol, address, port FROM managed"):
        try:
            managed.add(ServiceKey(Protocol(protocol), str(address), int(port)))
        except ValueError:
            log.warning(
                "state: managed service %s %s %s unreadable; ignored", protocol, address, port
            )
    kept = {
        host: decode_record(KeptHost, data, f"kept {host}")
        for host, data in conn.execute("SELECT host, data FROM kept")
    }
    return StateSnapshot(hosts=hosts, pairs=pairs, vss=vss, managed=frozenset(managed), kept=kept)


# --- dump ------------------------------------------------------------------------------------


def _show(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, frozenset | set):
        return ",".join(sorted(str(v) for v in value)) or "-"
    if isinstance(value, float) and is_time_field(name):
        return utc_text(value)
    if isinstance(value, str):
        return json.dumps(value) if (not value or " " in value) else value
    return str(value)


def _fields_line(record: Any) -> str:
    return " ".join(
        f"{f.name}={_show(f.name, getattr(record, f.name))}" for f in dataclasses.fields(record)
    )


def format_dump(snapshot: StateSnapshot) -> str:
    """The persistent state as readable text, one record per line (times in UTC)."""
    lines = [f"hosts ({len(snapshot.hosts)}):"]
    lines += [f"  {h} {_fields_line(s)}" for h, s in sorted(snapshot.hosts.items())]
    lines.append(f"pairs ({len(snapshot.pairs)}):")
    lines += [f"  {vs}/{h} {_fields_line(s)}" for (vs, h), s in sorted(snapshot.pairs.items())]
    lines.append(f"vss ({len(snapshot.vss)}):")
    lines += [f"  {vs} {_fields_line(s)}" for vs, s in sorted(snapshot.vss.items())]
    lines.append(f"kept admin state of removed hosts ({len(snapshot.kept)}):")
    lines += [f"  {h} {_fields_line(s)}" for h, s in sorted(snapshot.kept.items())]
    lines.append(f"managed services ({len(snapshot.managed)}):")
    lines += [f"  {key}" for key in sorted(snapshot.managed)]
    return "\n".join(lines) + "\n"


def dump_file(path: str) -> str:
    """Open the database read-only (no writes, no migration) and format its state."""
    if not os.path.exists(path):
        raise StoreError(f"{path}: no state database")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open state database: {exc}") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("BEGIN")  # one consistent read of all tables
        version = _read_version(conn, path)
        if version == 0:
            return format_dump(StateSnapshot())
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is older than {SCHEMA_VERSION};"
                " start the daemon once to migrate it"
            )
        return format_dump(_load(conn))
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: unreadable or corrupt state database: {exc}") from exc
    finally:
        conn.close()
