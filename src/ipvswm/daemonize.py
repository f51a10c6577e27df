"""Detach from the terminal like the original (double fork), and the single-instance pre-check."""

from __future__ import annotations

import contextlib
import os
import socket
import sys


def daemonize(pid_file: str | None = None) -> None:
    """Double fork, new session, stdio to /dev/null; the parent processes exit 0."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    if pid_file:
        with open(pid_file, "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")


def running_instance(unix_path: str | None, tcp: tuple[str, int] | None) -> str | None:
    """Where another daemon already answers (its management socket), or None."""
    if unix_path and os.path.exists(unix_path):
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.settimeout(1.0)
            with contextlib.suppress(OSError):
                sock.connect(unix_path)
                return unix_path
    if tcp is not None and tcp[1]:
        family = socket.AF_INET6 if ":" in tcp[0] else socket.AF_INET
        with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
            sock.settimeout(1.0)
            with contextlib.suppress(OSError):
                sock.connect(tcp)
                return f"{tcp[0]}:{tcp[1]}"
    return None


def fail(message: str) -> int:
    print(f"ipvswm: {message}", file=sys.stderr)
    return 1
