"""The start-up guard: `run` with a file that would empty the table refuses, as a reload does.

A daemon started with a VS-less file (cut short, a wrong `-c`, globals only) would delete every
service it managed before (the state DB says which) at its first convergence: the outage a
reload refuses (config.guard). So start-up makes the same check on what it would remove from the
kernel — every managed service it holds, or more than `Config.MaxRemovedShare` of the
destinations in them — and then exits with one ERROR line and the kernel untouched, unless
`ipvswm run --force`. There is no last good config to keep serving at start-up, and carrying on
without health checks for the services still in the kernel would hide the problem; a daemon that
exits at once is what an operator sees (systemd shows the unit failed, with the reason).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ipvswm.engine.engine import Engine
from ipvswm.kernel.reconcile import reconcile
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import ServiceKey
from ipvswm.kernel.table import Table

FORCE_HINT = "to start anyway: ipvswm run --force (or fix the file; ipvswm check-config)"
_MAX_NAMED = 10


@dataclass(frozen=True, slots=True)
class StartRemoval:
    """What the first convergence would remove from the managed services the kernel holds."""

    services: tuple[ServiceKey, ...]  # deleted whole
    destinations: int  # destinations removed, those of deleted services included
    held: int  # managed services in the kernel
    total: int  # destinations in them


def start_removal(desired: Table, actual: Table, managed: Collection[ServiceKey]) -> StartRemoval:
    """What converging `actual` to `desired` (over `managed`) would remove."""
    held = [key for key in managed if key in actual.services]
    services: list[ServiceKey] = []
    removed = 0
    for op in reconcile(desired, actual, managed):
        if isinstance(op, DeleteService):
            services.append(op.key)
            removed += len(actual.services[op.key].destinations)
        elif isinstance(op, DeleteDestination):
            removed += 1
    total = sum(len(actual.services[key].destinations) for key in held)
    return StartRemoval(tuple(sorted(services, key=str)), removed, len(held), total)


def start_refusal(gone: StartRemoval, limit: float) -> str | None:
    """Why starting needs `--force`, or None."""
    named = ", ".join(str(key) for key in gone.services[:_MAX_NAMED])
    if len(gone.services) > _MAX_NAMED:
        named += f", ... ({len(gone.services)} in all)"
    if gone.held and len(gone.services) == gone.held:
        what = f"every virtual service it manages in the kernel ({named})"
    elif gone.total and gone.destinations / gone.total > limit:
        share = gone.destinations / gone.total
        what = (
            f"{gone.destinations} of the {gone.total} destinations of the virtual services it"
            f" manages ({share:.0%}, more than Config.MaxRemovedShare={limit:g})"
        )
        if named:
            what += f", deleting virtual service(s) {named}"
    else:
        return None
    return f"it would remove {what}; the kernel table is left as it is; {FORCE_HINT}"


def check_start(
    engine: Engine, actual: Table, managed: Collection[ServiceKey], limit: float
) -> str | None:
    """Why the engine's first convergence over `actual` needs `--force`, or None; `managed` is
    what the state DB says the daemon managed (the desired services are managed too)."""
    desired = engine.desired_table()
    return start_refusal(start_removal(desired, actual, {*managed, *desired.services}), limit)
