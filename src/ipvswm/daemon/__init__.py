"""The daemon (SPEC §9): one event queue, one owner of the engine, start-up, reload and shutdown.

Light on purpose: the console imports `ipvswm.daemon.requests` and must not pull the running
daemon in, so `Daemon`, `raise_fd_limit` and `read_config` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ipvswm.daemon.daemon import Daemon
    from ipvswm.daemon.reload import read_config
    from ipvswm.daemon.runtime import raise_fd_limit

__all__ = ["Daemon", "raise_fd_limit", "read_config"]

_LAZY = {"Daemon": "daemon", "raise_fd_limit": "runtime", "read_config": "reload"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
