"""Where the console's asks enter the daemon: admin commands, `forget`, fresh kernel reads and
reloads, each through the owner's one queue (after the cluster store, where there is one)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from ipvswm.answers import Answer
from ipvswm.answers import Applied
from ipvswm.answers import Refused
from ipvswm.cluster.adapter import ClusterStore
from ipvswm.config.model import Config
from ipvswm.config.parser import ParseResult
from ipvswm.daemon.reload import Reloader
from ipvswm.daemon.requests import AdminRequest
from ipvswm.daemon.requests import QueueItem
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.daemon.requests import ResyncRequest
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent
from ipvswm.events import ForgetHost
from ipvswm.vocabulary import STARTING
from ipvswm.vocabulary import STOPPING
from ipvswm.vocabulary import config_refusal


class InboxView(Protocol):
    """What the inbox reads of the daemon."""

    @property
    def config(self) -> Config: ...
    @property
    def cluster(self) -> ClusterStore | None: ...

    def engine_snapshot(self) -> StateSnapshot: ...
    def running(self) -> bool: ...
    def stopping(self) -> bool: ...


class Inbox:
    """The daemon's requests side (a daemon.control.DaemonRequests)."""

    def __init__(
        self, queue: asyncio.Queue[QueueItem], view: InboxView, reloader: Reloader
    ) -> None:
        self._queue = queue
        self._view = view
        self._reloader = reloader

    def vss_of(self, host: str) -> tuple[str, ...]:
        """The VSs a host is on (for an override without a VS list)."""
        found = self._view.config.host(host)
        return tuple(vs for vs, _ in found.weights) if found is not None else ()

    def _refused(self) -> Refused | None:
        if not self._view.running():
            return Refused(STARTING)
        if self._view.stopping():
            return Refused(STOPPING)
        return None

    async def submit(self, event: AdminEvent, local: bool = False) -> Answer:
        """Apply an admin event; returns once its state change is committed (or refused).

        With a cluster store, the event is committed there first (unless `local`), so an
        unreachable store refuses it and nothing changes.
        """
        refused = self._refused()
        if refused is not None:
            return refused
        cluster = self._view.cluster
        if cluster is not None and not local:
            # Shared: written to the store before the engine sees it, so its names are checked
            # first, as the engine checks them (the same function, the same words).
            vss = getattr(event, "vss", None) or ()
            named = config_refusal(self._view.config, [event.host], vss, paired=True)
            if named is not None:
                return Refused(named)
            refused = await cluster.commit(event, self.vss_of)
            if refused is not None:
                return refused
        reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(AdminRequest(event, reply))
        answer = await reply
        if cluster is not None and local and isinstance(answer, Applied):
            cluster.note_local(event, self.vss_of)
        return answer

    async def forget(self, host: str, local: bool = False) -> Answer:
        """`forget host H`: drop the kept admin state of H's removed parts, once committed
        (with a cluster store, there first, unless `local`)."""
        refused = self._refused()
        if refused is not None:
            return refused
        view = self._view
        if view.cluster is not None and not local:
            refused = await view.cluster.commit_forget(host, view.config, view.engine_snapshot())
            if refused is not None:
                return refused
        reply: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(AdminRequest(ForgetHost(host), reply))
        return await reply

    async def refresh_kernel(self) -> bool:
        """Have the owner re-read (and resync) the kernel table; True once a fresh read worked."""
        if not self._view.running() or self._view.stopping():
            return False
        reply: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(ResyncRequest(reply))
        return await reply

    async def reload_from_file(self, why: str, force: bool = False) -> ReloadOutcome:
        """Reload the config file (daemon.reload.Reloader.reload)."""
        return await self._reloader.reload(why, force)

    async def parse_config(self) -> ParseResult:
        """Read and parse the config file off the event loop (daemon.reload.read_config)."""
        return await self._reloader.parse()

    def reload_refusal(self, config: Config) -> str | None:
        """Why `config` may replace the running one only with `force` (config.guard), or None."""
        return self._reloader.refusal(config)
