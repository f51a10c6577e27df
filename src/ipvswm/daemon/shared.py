"""Admin state shared through the cluster store, taken by the owner like a console's commands
(this director's own checks still decide when a pair carries weight)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ipvswm.cluster.adapter import ClusterStore
from ipvswm.cluster.adapter import SharedUpdate
from ipvswm.cluster.keys import describe_event
from ipvswm.cluster.sharing import configured_here
from ipvswm.cluster.sharing import late_changes
from ipvswm.config.model import Config
from ipvswm.engine.admin import NOTHING_TO_DO
from ipvswm.engine.outputs import Step
from ipvswm.events import EngineEvent
from ipvswm.events import ForgetHost

log = logging.getLogger("ipvswm.daemon")

StepFn = Callable[[EngineEvent], Step]
"""The owner's engine step for one event (logged and taken into the batch)."""


def take_shared(
    update: SharedUpdate, config: Config, cluster: ClusterStore | None, step: StepFn
) -> None:
    """Admin events another director committed to the cluster store: through the engine."""
    for change in update.changes:
        if change.forgotten and not configured_here(config, change):
            continue  # kept state here, if any: the ForgetHost that follows drops it
        done = step(change.event)
        what = describe_event(change.event)
        if done.error is not None and isinstance(change.event, ForgetHost):
            log.info("from director %s: %s (nothing kept here)", change.node, what)
        elif done.error is not None:
            log.warning(
                "from director %s: %s: not applied here (%s)",
                change.node,
                what,
                done.error.reason,
            )
        elif done.note != NOTHING_TO_DO:
            log.info("from director %s: %s", change.node, what)
        if cluster is not None and change.at is not None and change.node != cluster.node:
            cluster.observe_lag(time.time() - change.at)
    if cluster is not None:
        cluster.applied(update)


def take_late_shared(old: Config, config: Config, cluster: ClusterStore, step: StepFn) -> None:
    """The shared state of hosts/pairs a reload added: in force at once, as at start-up."""
    for change in late_changes(cluster.shared, cluster.local, old, config):
        done = step(change.event)
        what, who = describe_event(change.event), change.node
        if done.error is not None:
            log.warning("cluster store: %s: not applied here (%s)", what, done.error.reason)
        elif done.note != NOTHING_TO_DO:
            log.info("cluster store: %s (shared by %s, added by the reload)", what, who)
