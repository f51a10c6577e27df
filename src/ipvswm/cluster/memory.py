"""What a director believes the shared state is, kept in its local state DB across restarts.

Three tables of their own beside the engine's (created if missing; the engine's schema is not
touched): the shared keys as last applied, the revision they were read at with the cluster's
prefix, and the keys changed only on this director (`local` commands). Written after the engine's
own commit, so a crash in between only makes the next catch-up apply a change twice (harmless: an
admin event that is already in force does nothing), never lose one.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from dataclasses import field

BUSY_TIMEOUT_MS = 5000


@dataclass(slots=True)
class Belief:
    """The loaded memory: shared keys (relative), their revision, and the local-only keys."""

    revision: int = 0
    shared: dict[str, str] = field(default_factory=dict)
    local: set[str] = field(default_factory=set)


class Memory:
    """The cluster tables of the state DB at `path`."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # No fsync of its own in WAL mode (the engine's store sets it): a write lost to a power
        # cut only makes the next catch-up apply a change again (harmless, see above), and WAL
        # keeps commit order, so it is never ahead of the engine's own (FULL) commits. A FULL
        # commit here cost one more fsync per shared change in the owner (~10 ms on a busy disk).
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = "NORMAL" if str(mode).lower() == "wal" else "FULL"
        self._conn.execute(f"PRAGMA synchronous = {sync}")
        for sql in (
            "CREATE TABLE IF NOT EXISTS cluster_keys (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS cluster_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS cluster_local (key TEXT PRIMARY KEY)",
        ):
            self._conn.execute(sql)

    def load(self, prefix: str) -> Belief:
        """The belief about cluster `prefix` (empty if the DB knew another cluster, or none)."""
        with self._lock:
            meta = dict(self._conn.execute("SELECT name, value FROM cluster_meta").fetchall())
            if meta.get("prefix") != prefix:
                return Belief()
            shared = dict(self._conn.execute("SELECT key, value FROM cluster_keys").fetchall())
            local = {row[0] for row in self._conn.execute("SELECT key FROM cluster_local")}
            return Belief(int(meta.get("revision", "0")), shared, local)

    def save(
        self, prefix: str, revision: int, puts: dict[str, str], deletes: set[str], *, full: bool
    ) -> None:
        """Record applied shared keys in one transaction (`full`: they are all there is)."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                if full:
                    conn.execute("DELETE FROM cluster_keys")
                else:
                    conn.executemany(
                        "DELETE FROM cluster_keys WHERE key = ?", [(k,) for k in deletes]
                    )
                conn.executemany(
                    "INSERT OR REPLACE INTO cluster_keys (key, value) VALUES (?, ?)",
                    list(puts.items()),
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO cluster_meta (name, value) VALUES (?, ?)",
                    [("prefix", prefix), ("revision", str(revision))],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def save_local(self, keys: set[str]) -> None:
        """Replace the set of local-only keys."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM cluster_local")
                conn.executemany("INSERT INTO cluster_local (key) VALUES (?)", [(k,) for k in keys])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()
