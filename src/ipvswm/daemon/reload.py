"""Config reloads: read and parse off the event loop, check, then hand over to the owner."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ipvswm import sdnotify
from ipvswm.config.guard import refusal
from ipvswm.config.model import Config
from ipvswm.config.parser import ParseResult
from ipvswm.config.parser import parse_bytes
from ipvswm.config.parser import unreadable
from ipvswm.config.reader import ConfigReadError
from ipvswm.config.reader import read_config_bytes
from ipvswm.config.watch import ConfigWatcher
from ipvswm.config.watch import Signature
from ipvswm.config.watch import file_signature
from ipvswm.daemon.requests import QueueItem
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.daemon.requests import ReloadRequest
from ipvswm.metrics import Metrics
from ipvswm.offload import run_detached

log = logging.getLogger("ipvswm.daemon")

CONFIG_READ_TIMEOUT = 30.0
"""Seconds a config read may take before the reload gives up on it (a hung mount)."""


class Reloader:
    """Reloads of one config file, one at a time: never an older version applied last."""

    def __init__(
        self,
        path: str,
        in_force: Callable[[], Config],
        running: Callable[[], bool],
        queue: asyncio.Queue[QueueItem],
        metrics: Metrics,
    ) -> None:
        self.path = path
        self._in_force = in_force  # the owner's config
        self._running = running  # the engine runs and no stop has begun
        self._queue = queue
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self.watcher: ConfigWatcher | None = None  # told which version was read

    async def parse(self) -> ParseResult:
        """Read and parse the config file off the event loop (see `read_config`)."""
        return (await read_config(self.path))[1]

    def refusal(self, config: Config) -> str | None:
        """Why `config` may replace the running one only with `force` (config.guard), or None."""
        return refusal(self._in_force(), config)

    async def reload(
        self, why: str, force: bool = False, wanted: Callable[[], bool] | None = None
    ) -> ReloadOutcome:
        """Parse the file (off the loop: names may be resolved) and apply it if valid and safe.

        `wanted`, asked once this reload's turn comes: False drops it (an automatic reload
        queued behind the one that turned Config.AutoCheck off). Never raises: whatever goes
        wrong is logged at ERROR here, whichever trigger asked (a SIGHUP's task has nobody to
        report to).
        """
        try:
            async with self._lock:
                if wanted is not None and not wanted():
                    return ReloadOutcome(ok=True)
                return await self._reload(why, force)
        except Exception:
            log.exception("config reload (%s) failed unexpectedly; keeping the running config", why)
            self._metrics.reload(False)
            return ReloadOutcome(ok=False, errors=("# internal error (logged)",))

    async def _reload(self, why: str, force: bool) -> ReloadOutcome:
        signature, result = await read_config(self.path)
        if self.watcher is not None:
            self.watcher.mark_seen(signature)  # taken before the read: a later write is seen
        if result.config is None:
            errors = tuple(result.messages())
            for text in errors:  # at most MAX_ERRORS lines, then "... and N more"
                log.error("config reload (%s) rejected: %s", why, text)
            log.error("config reload (%s): nothing applied, keeping the last good config", why)
            self._metrics.reload(False)
            return ReloadOutcome(ok=False, errors=errors)
        if not self._running():
            return ReloadOutcome(ok=False, errors=("# the daemon is not running",))
        refused = self.refusal(result.config)
        if refused is not None:
            if not force:
                log.error("config reload (%s) refused: %s: %s", why, self.path, refused)
                self._metrics.reload(False)
                return ReloadOutcome(ok=False, errors=(f"refused: {refused}",), refusal=refused)
            log.warning("config reload (%s) forced: %s", why, refused.partition("; ")[0])
        sdnotify.reloading()
        reply: asyncio.Future[ReloadOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(ReloadRequest(result.config, reply))
        outcome = await reply
        sdnotify.ready("running")
        return outcome


async def read_config(path: str) -> tuple[Signature, ParseResult]:
    """The file's signature and parse, each in a thread that never delays the daemon's exit.

    Only a regular file is read (config.reader), so a FIFO cannot block; a stat or read that
    still hangs in the kernel is abandoned after CONFIG_READ_TIMEOUT seconds, which frees the
    reload lock. The signature is taken before the read: a write during the parse is seen next.
    """

    def read() -> tuple[Signature, bytes | str]:
        signature = file_signature(path)
        try:
            return signature, read_config_bytes(path)
        except ConfigReadError as exc:
            return signature, str(exc)

    try:
        signature, data = await run_detached(read, "config-read", CONFIG_READ_TIMEOUT)
    except TimeoutError:
        message = (
            f"cannot read config file: no answer within {CONFIG_READ_TIMEOUT:g}s"
            " (a hung mount?); the read is abandoned"
        )
        return None, unreadable(path, message)
    if isinstance(data, str):
        return signature, unreadable(path, data)
    return signature, await run_detached(lambda: _parse_warm(data, path), "config-parse")


def _parse_warm(data: bytes, path: str) -> ParseResult:
    """Parse, and compute in this thread what the owner reads of a new config (its pairs and
    check targets: about 0.4 s at 50,000 pairs, else paid on the owner task)."""
    result = parse_bytes(data, path)
    if result.config is not None:
        result.config.warm()
    return result
