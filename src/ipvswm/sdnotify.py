"""systemd readiness and watchdog notifications (sd_notify), without libsystemd.

API for the daemon:

- ``notify(message) -> bool``: send one datagram (e.g. ``"READY=1"``) to ``$NOTIFY_SOCKET``
  (a path, or an abstract name written ``@name``). False when not under systemd or when sending
  failed; never raises, never blocks.
- ``ready(status="")``, ``reloading()``, ``stopping()``, ``status(text)``: the usual messages.
  ``reloading()`` adds ``MONOTONIC_USEC`` so it also satisfies ``Type=notify-reload``; send
  ``ready()`` when the reload is done.
- ``Watchdog``: built from ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``); ``await start()`` runs a task
  sending ``WATCHDOG=1`` at half the interval while the optional ``alive()`` callback says the
  daemon is healthy; ``await close()`` stops it. When the watchdog is not enabled, both do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _address(value: str) -> str | None:
    """The socket address named by $NOTIFY_SOCKET: a path, or an abstract name for `@name`."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock and other forms are not supported


def notify(message: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `message` to systemd's notification socket; False if unset or the send failed."""
    environ = os.environ if env is None else env
    target = environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = _address(target)
    if address is None:
        log.warning("NOTIFY_SOCKET=%s: unsupported address", target)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # A full receive queue must not stall the daemon: drop the message instead.
            sock.setblocking(False)
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify %r to %s failed: %s", message, target, exc)
        return False
    return True


def ready(status: str = "") -> bool:
    """Tell systemd start-up (or a reload) is complete."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def reloading() -> bool:
    """Tell systemd a reload started (with the timestamp `Type=notify-reload` requires)."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """Tell systemd the daemon is shutting down."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """Set the free-form status line `systemctl status` shows."""
    return notify(f"STATUS={text}")


class Watchdog:
    """Pings the systemd watchdog (`WATCHDOG=1`) at half of `$WATCHDOG_USEC`."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self._env: Mapping[str, str] = os.environ if env is None else env
        self._alive = alive
        self._task: asyncio.Task[None] | None = None
        self.interval = self._interval(self._env)
        self.pings = 0

    @staticmethod
    def _interval(env: Mapping[str, str]) -> float | None:
        """The watchdog timeout in seconds, or None when this process has no watchdog."""
        pid = env.get("WATCHDOG_PID", "")
        if pid and pid != str(os.getpid()):
            return None  # meant for another process (e.g. our parent before a fork)
        try:
            usec = int(env.get("WATCHDOG_USEC", ""))
        except ValueError:
            return None
        return usec / 1e6 if usec > 0 else None

    @property
    def enabled(self) -> bool:
        """Whether systemd expects pings from this process."""
        return self.interval is not None and bool(self._env.get("NOTIFY_SOCKET"))

    async def start(self) -> None:
        """Start pinging (no-op when the watchdog is not enabled)."""
        if not self.enabled or self._task is not None:
            return
        log.info("systemd watchdog: pinging every %.3fs", (self.interval or 0) / 2)
        self._task = asyncio.create_task(self._run(), name="ipvswm-watchdog")

    async def close(self) -> None:
        """Stop pinging."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        assert self.interval is not None
        period = self.interval / 2
        while True:
            # A stuck owner task must let systemd's timer expire: that is the watchdog's point.
            if self._alive is None or self._alive():
                if notify("WATCHDOG=1", self._env):
                    self.pings += 1
            else:
                log.warning("systemd watchdog: daemon not healthy, ping withheld")
            await asyncio.sleep(period)
