"""The kernel's file events for the config watcher: a small ctypes binding of inotify(7).

Why a binding and not a library: the watcher needs three libc calls (`inotify_init1`,
`inotify_add_watch`, and `read` on the descriptor, which `os.read` does) and the parse of a
16-byte header per event, about 60 lines. The well-kept asyncio libraries on PyPI
(`asyncinotify`, `aionotify`) are ctypes bindings of the same calls; one would add a dependency
to a daemon that runs as root for no fewer moving parts. The descriptor is non-blocking and
watched with `loop.add_reader`, so an event costs one loop wake-up (no thread, no poll).

`writers_present` answers "is the file open for writing by anyone now?" with a read lease
(fcntl(2) `F_SETLEASE`): the kernel refuses one while any descriptor is open for writing. It is
the partial-write protection of the event path: a close event of one writer does not apply a
file another still writes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import signal
import struct
from collections.abc import Iterator

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000

_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


class InotifyError(OSError):
    """inotify cannot be used here (no libc symbol, no kernel support, limits reached)."""


def _libc() -> ctypes.CDLL:
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise InotifyError(errno.ENOSYS, f"cannot load the C library: {exc}") from None


class Inotify:
    """One non-blocking inotify descriptor; `watch` directories, `read` their events."""

    def __init__(self) -> None:
        libc = _libc()
        try:
            self._init = libc.inotify_init1
            self._add = libc.inotify_add_watch
        except AttributeError:
            raise InotifyError(errno.ENOSYS, "the C library has no inotify") from None
        self._init.argtypes = [ctypes.c_int]
        self._init.restype = ctypes.c_int
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        fd: int = self._init(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise InotifyError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd = fd

    def watch(self, directory: str, mask: int) -> int:
        """Watch `directory` for `mask`; returns the watch descriptor."""
        wd: int = self._add(self.fd, os.fsencode(directory), mask | IN_ONLYDIR)
        if wd < 0:
            code = ctypes.get_errno()
            raise InotifyError(code, f"inotify_add_watch {directory}: {os.strerror(code)}")
        return wd

    def read(self) -> Iterator[tuple[int, int, str]]:
        """The events ready now, as (watch descriptor, mask, name); none when there are none."""
        try:
            data = os.read(self.fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, size = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = data[offset : offset + size].rstrip(b"\0")
            offset += size
            yield wd, mask, os.fsdecode(name)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def writers_present(path: str) -> bool | None:
    """Whether some process has `path` open for writing; None when this cannot be told.

    A read lease is refused (EAGAIN) while the file is open for writing anywhere; it is taken and
    dropped at once. None: no lease on this file system or for this user (EINVAL, EPERM, EACCES)
    or the file cannot be opened; the caller then goes by the close events alone.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        # A writer opening the file while we hold the lease makes the kernel signal us (SIGIO by
        # default, which would end the daemon): SIGURG is ignored by default.
        fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    except OSError as exc:
        return True if exc.errno in (errno.EAGAIN, errno.EBUSY) else None
    finally:
        os.close(fd)  # drops the lease too, should the unlock have failed
    return False
