"""Detach from the terminal like the original (double fork), and the single-instance pre-check."""

from __future__ import annotations

import atexit
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
        atexit.register(_remove_pid_file, pid_file, os.getpid())


def _remove_pid_file(pid_file: str, pid: int) -> None:
    """Remove the pid file at exit, unless it now names another process (a newer daemon)."""
    with contextlib.suppress(OSError, ValueError):
        with open(pid_file, encoding="ascii") as fh:
            if int(fh.read().strip() or 0) != pid:
                return
        os.unlink(pid_file)


def running_instance(unix_path: str | None, tcp: tuple[str, int] | None) -> str | None:
    """What already answers on the management socket (another ipvswm, or some other program)."""
    if unix_path and os.path.exists(unix_path):
        with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as sock:
            sock.settimeout(1.0)
            with contextlib.suppress(OSError):
                sock.connect(unix_path)
                return _who_answered(sock, unix_path)
    if tcp is not None and tcp[1]:
        family = socket.AF_INET6 if ":" in tcp[0] else socket.AF_INET
        with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as sock:
            sock.settimeout(1.0)
            with contextlib.suppress(OSError):
                sock.connect(tcp)
                where = (
                    f"[{tcp[0]}]:{tcp[1]}" if family == socket.AF_INET6 else f"{tcp[0]}:{tcp[1]}"
                )
                return _who_answered(sock, where)
    return None


def _who_answered(sock: socket.socket, where: str) -> str:
    """Tell an ipvswm console (its greeting) from any other program holding the address."""
    from ipvswm.console.session import GREETING

    data = b""
    with contextlib.suppress(OSError):
        while b"\n" not in data and len(data) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            data += chunk
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if first.startswith(GREETING.split(".")[0]):
        return f"another ipvswm is already running (its console answers on {where})"
    said = f"it said {first[:60]!r}" if first else "it sent nothing"
    return (
        f"{where} is held by another program, not an ipvswm console ({said}); "
        "stop it or choose another Management.Socket.Port / Management.Socket.Path"
    )


def fail(message: str) -> int:
    print(f"ipvswm: {message}", file=sys.stderr)
    return 1
