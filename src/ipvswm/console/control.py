"""What the console needs from the running daemon: the seam between console and daemon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ipvswm.answers import Answer
from ipvswm.answers import Refused
from ipvswm.config.model import Config
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.engine.state import StateSnapshot
from ipvswm.events import AdminEvent
from ipvswm.events import CheckStatus
from ipvswm.kernel.table import Table


@dataclass(frozen=True, slots=True)
class CheckView:
    """One checker as `show checks` displays it."""

    target: str  # "127.0.0.2:80 http://www.example.org/health"
    status: CheckStatus
    last_started: float | None
    last_duration: float | None
    cause: str
    pairs: tuple[str, ...]  # "vs/host" of every pair it feeds
    no_verdict: int = 0  # checks that could not be made (director out of fds, ...): not counted


class Control(Protocol):
    """The daemon as the console sees it. Every mutation goes through the daemon's one queue."""

    def config(self) -> Config:
        """The config in force."""
        ...

    def snapshot(self) -> StateSnapshot:
        """The engine's current state (pairs, hosts, VSs)."""
        ...

    def kernel(self) -> Table:
        """The last table read from (or applied to) the kernel, with connection counts."""
        ...

    def checks(self) -> list[CheckView]:
        """Every running checker."""
        ...

    async def submit(self, event: AdminEvent, local: bool = False) -> Answer:
        """Apply an admin event; returns after its state change is committed (`local`: on this
        director only, not through the cluster store): Applied (with a note for the operator,
        e.g. "still off (kernel)") or Refused (nothing changed, and why)."""
        ...

    async def forget(self, host: str, local: bool = False) -> Answer:
        """`forget host H` (with a cluster store, on every director unless `local`); answers as
        `submit` does."""
        ...

    async def reload(self, force: bool = False) -> ReloadOutcome:
        """Re-read the config file and apply it as a diff (nothing applied if invalid, nor if it
        removes too much unless `force`)."""
        ...

    async def config_diff(self) -> ReloadOutcome:
        """The actions a reload would take now, without taking them."""
        ...

    async def config_check(self) -> ReloadOutcome:
        """Validate the config file on disk without applying it."""
        ...

    def set_log_level(self, level: int) -> None:
        """Change `Log.Level` at run time."""
        ...

    def log_level_in_force(self) -> int | None:
        """The `Log.Level` in force now (after any `log level N`); None if logging is not set up."""
        ...

    def status(self) -> dict[str, object]:
        """`dump status`: daemon facts (pid, start time, backend, config path, counts)."""
        ...

    async def refresh_kernel(self) -> bool:
        """Re-read the kernel table now (fresh connection counts); True once a read worked."""
        ...

    def ready(self) -> bool:
        """Whether the daemon has read the kernel table (before that, nothing it shows is true)."""
        ...

    async def wait_ready(self, within: float) -> Refused | None:
        """Wait (at most `within` s) until the state is loaded and the kernel read.

        None once ready; else why not (vocabulary.STARTING or STOPPING).
        """
        ...

    async def wait_change(self) -> None:
        """Return after the next engine step or kernel read (callers bound it with a timeout)."""
        ...

    def cluster_view(self) -> dict[str, object] | None:
        """The cluster store's view for `show cluster` (None without Cluster.Etcd)."""
        ...
