"""The single-instance lock: an flock on a file beside the state DB, held for the daemon's life."""

from __future__ import annotations

import fcntl
import os


class InstanceLocked(Exception):
    """Another daemon holds the lock of this DB."""


def lock_path(db: str) -> str:
    """The lock file of a state DB: `DB.lock`, beside it."""
    return db + ".lock"


def acquire(db: str) -> int:
    """Take the lock of `db` (non-blocking) and return its open descriptor; keep it open.

    The socket file alone is no lock (delete it and a second daemon starts); an flock is released
    by the kernel when the process ends however it ends, so a `kill -9` leaves no stale lock.
    """
    path = lock_path(db)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InstanceLocked(
            f"another ipvswm manages the state DB {db} (it holds {path}); stop it first"
        ) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for the operator: who holds it
    return fd
