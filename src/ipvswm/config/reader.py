"""Reads a config file safely: never blocks on a FIFO or device, never reads without bound.

`open()` of a FIFO blocks until a writer appears and a read of `/dev/zero` never ends, so the
file is opened with `O_NONBLOCK` (which returns at once for a FIFO and changes nothing for a
regular file), checked with `fstat` on the descriptor that is read (no race with a rename), and
read only if it is a regular file of at most `MAX_CONFIG_BYTES`. A hung mount can still block
`open` itself in the kernel: callers run this in a thread they do not wait for on exit
(`ipvswm.offload`).
"""

from __future__ import annotations

import os
import stat

MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""The largest config file read (16 MiB; a 50,000-pair config is about 1.5 MB)."""

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class ConfigReadError(Exception):
    """The config file cannot be read; the message says why and is shown as it is."""


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_config_bytes(path: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The file's bytes, if it is a regular file (symlinks followed) of at most `limit` bytes."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigReadError(f"cannot read config file: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigReadError(
                f"cannot read config file: it is {_kind(st.st_mode)}, not a regular file"
                " (only a regular file, or a symlink to one, is read)"
            )
        if st.st_size > limit:
            raise ConfigReadError(_too_big(st.st_size, limit))
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # the file may grow while it is read: never more than limit + 1
            chunk = os.read(fd, min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ConfigReadError(_too_big(size, limit))
        return b"".join(chunks)
    except OSError as exc:
        raise ConfigReadError(f"cannot read config file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _too_big(size: int, limit: int) -> str:
    return (
        f"config file too large: at least {size} bytes, the limit is {limit} bytes"
        f" ({limit // (1024 * 1024)} MiB); is it the right file?"
    )
