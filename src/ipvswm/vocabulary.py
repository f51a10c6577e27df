"""The words the console, the engine and the daemon share: one wording for every refusal of a
name, the default reason, and the start-up refusals. Pure: no I/O (the config model only for
its type).

A name is validated by `name_refusal` only: the engine for admin commands, the console for the
commands that only read (show, dump, wait) — same checks, same order, same words.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipvswm.config.model import Config

DEFAULT_REASON = "default"  # the reason of `set host H off|on` without `reason R`

STARTING = "the daemon is starting: the kernel table has not been read yet"
STOPPING = "the daemon is stopping"


def no_such_host(tag: str) -> str:
    return f"no such host '{tag}'"


def no_such_vs(tag: str) -> str:
    return f"no such vs '{tag}'"


def not_on_vs(host: str, vs: str) -> str:
    return f"host '{host}' is not on vs '{vs}'"


def name_refusal(
    hosts: Iterable[str],
    vss: Iterable[str],
    *,
    is_host: Callable[[str], bool],
    is_vs: Callable[[str], bool],
    is_pair: Callable[[str, str], bool] | None = None,
) -> str | None:
    """Why these names cannot be used (None: they can): the first unknown host, then for each
    VS in turn an unknown VS or (with `is_pair`, for commands on pairs) a host not on it."""
    host_tags = list(hosts)
    for tag in host_tags:
        if not is_host(tag):
            return no_such_host(tag)
    for vs in vss:
        if not is_vs(vs):
            return no_such_vs(vs)
        if is_pair is not None:
            for host in host_tags:
                if not is_pair(vs, host):
                    return not_on_vs(host, vs)
    return None


def config_refusal(
    config: Config, hosts: Iterable[str] = (), vss: Iterable[str] = (), *, paired: bool = False
) -> str | None:
    """`name_refusal` over a config's names (`paired`: each host must be on each VS)."""

    def is_pair(vs: str, tag: str) -> bool:
        host = config.host(tag)
        return host is not None and any(on == vs for on, _ in host.weights)

    return name_refusal(
        hosts,
        vss,
        is_host=lambda tag: config.host(tag) is not None,
        is_vs=lambda tag: config.service(tag) is not None,
        is_pair=is_pair if paired else None,
    )
