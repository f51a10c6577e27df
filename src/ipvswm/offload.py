"""Blocking work run off the event loop in a thread that nobody waits for on exit.

`asyncio.to_thread` uses the loop's default executor, and `asyncio.run` joins that executor's
threads when the loop ends: a config read stuck in the kernel (a hung NFS mount) would then keep
SIGTERM from ever stopping the daemon. A daemon thread is abandoned at exit instead; its caller
may also stop waiting for it (`timeout`), and a late result is simply dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def run_detached(fn: Callable[[], T], name: str, limit: float | None = None) -> T:
    """`fn()` in a new daemon thread; TimeoutError if it has not finished within `limit` s."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(value: T | None, error: BaseException | None) -> None:
        if future.done():  # the caller gave up (timeout, cancellation)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the caller, whatever it is
            result: tuple[T | None, BaseException | None] = (None, exc)
        else:
            result = (value, None)
        # RuntimeError: the loop has closed meanwhile, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, *result)

    threading.Thread(target=work, name=name, daemon=True).start()
    if limit is None:
        return await future
    async with asyncio.timeout(limit):
        return await future
