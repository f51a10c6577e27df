"""What the owner says about a step: its decisions (a ramp's middle steps counted), sorry-server
and depool-threshold changes, logged and (for a VS with email=true) mailed."""

from __future__ import annotations

import logging

from ipvswm.alerts import Mailer
from ipvswm.alerts import host_lines
from ipvswm.config.model import Config
from ipvswm.engine.outputs import Decision
from ipvswm.engine.outputs import KeptChange
from ipvswm.engine.outputs import SorryChange
from ipvswm.engine.state import Phase
from ipvswm.engine.state import StateSnapshot
from ipvswm.kernel.table import Table
from ipvswm.logs import CHECK_STATUS

log = logging.getLogger("ipvswm.daemon")


class DecisionLog:
    """Logs decisions; a ramp's middle steps only at Log.Level 5, counted in its last line."""

    def __init__(self) -> None:
        self.ramp_steps: dict[tuple[str, str], int] = {}  # steps logged below level 1, per pair

    def log(self, decision: Decision) -> None:
        key = (decision.vs, decision.host)
        if decision.old_phase is Phase.RAMPING and decision.new_phase is Phase.RAMPING:
            self.ramp_steps[key] = self.ramp_steps.get(key, 0) + 1
            log.log(CHECK_STATUS, "%s", decision)
            return
        steps = self.ramp_steps.pop(key, 0)
        if steps and decision.old_phase is Phase.RAMPING:
            log.info("%s, after %d ramp step(s)", decision, steps)
        else:
            log.info("%s", decision)


def sorry_notice(
    alert: SorryChange, config: Config, snapshot: StateSnapshot, kernel: Table, mailer: Mailer
) -> None:
    """Log (and mail) that a VS's sorry server went in or out."""
    vs = config.service(alert.vs)
    state = "ON" if alert.on else "OFF"
    who = alert.sorry_host or "(none configured)"
    log.info("vs %s: sorry server %s %s (%s)", alert.vs, who, state, alert.subject())
    if vs is not None and vs.email and alert.mail:
        mailer.notify(alert, vs, host_lines(config, snapshot, kernel, alert.vs))


def kept_notice(
    change: KeptChange, config: Config, snapshot: StateSnapshot, kernel: Table, mailer: Mailer
) -> None:
    """Log (and with email=true mail) that the depool threshold keeps failing pairs in."""
    if change.on:
        log.warning(
            "vs %s: depool threshold %g reached: failing pair(s) kept in service: %s",
            change.vs,
            change.threshold,
            ", ".join(change.kept),
        )
    else:
        log.info(
            "vs %s: depool threshold: no failing pair kept in any more (after %.1fs)",
            change.vs,
            change.after or 0.0,
        )
    vs = config.service(change.vs)
    if vs is not None and vs.email:
        mailer.notify(change, vs, host_lines(config, snapshot, kernel, change.vs))
