"""Execute the console commands that run against the daemon's `Control` (SPEC §7): admin
commands (the engine's events, submitted as parsed), `wait`, `config`, `log level`, and the
read-only `show`/`dump` (console.show). Session commands (history, format, quit) are the
session's; this module knows no session, only its name (for the log) and its `gone` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ipvswm.answers import Refused
from ipvswm.console import render
from ipvswm.console import show
from ipvswm.console.command_types import Admin
from ipvswm.console.command_types import ConfigAction
from ipvswm.console.command_types import ConfigCmd
from ipvswm.console.command_types import ControlCommand
from ipvswm.console.command_types import Dump
from ipvswm.console.command_types import DumpWhat
from ipvswm.console.command_types import LogLevel
from ipvswm.console.command_types import ShowChecks
from ipvswm.console.command_types import ShowCluster
from ipvswm.console.command_types import ShowHosts
from ipvswm.console.command_types import ShowVs
from ipvswm.console.command_types import Wait
from ipvswm.console.command_types import WaitFor
from ipvswm.console.control import Control
from ipvswm.console.render import printable
from ipvswm.console.reply import STATUS_FAILED
from ipvswm.console.reply import STATUS_TIMEOUT
from ipvswm.console.reply import Reply
from ipvswm.console.reply import failed
from ipvswm.daemon.requests import ReloadOutcome
from ipvswm.engine.state import Phase
from ipvswm.events import AdminEvent
from ipvswm.events import ForgetHost
from ipvswm.events import SetHostOff
from ipvswm.events import SetHostOn
from ipvswm.events import SetOverride
from ipvswm.events import SetPairsOn
from ipvswm.views import pair_views
from ipvswm.vocabulary import STARTING
from ipvswm.vocabulary import config_refusal

log = logging.getLogger(__name__)

WAIT_POLL = 1.0  # re-check a `wait` at least this often, even if no change is signalled
# Before the state is loaded and the kernel read, a command that shows or changes state waits
# this long for it, then says so: never an answer from empty state (it would read "no reason").
STARTUP_WAIT = 5.0


def describe(event: AdminEvent) -> str:
    """What an admin command did, for its reply and the log."""
    vss = None if isinstance(event, SetHostOff | SetHostOn) else event.vss
    where = f" on vs {','.join(vss)}" if vss else ""
    if isinstance(event, SetOverride):
        weight = "configured" if event.weight is None else str(event.weight)
        return f"host {event.host}{where}: weight {weight}"
    on = isinstance(event, SetHostOn | SetPairsOn)
    ramp = event.ramp if isinstance(event, SetHostOn | SetPairsOn) else None
    reasons = "*" if event.reasons is None else ",".join(sorted(event.reasons))
    ramp_text = f", ramp {ramp:g}s" if ramp is not None else ""
    return f"host {event.host}{where}: {'on' if on else 'off'} (reasons {reasons}){ramp_text}"


async def _admin(cmd: Admin, control: Control, who: str) -> Reply:
    """Submit the event as parsed: the engine's refusal (unknown names too) is the reply."""
    event = cmd.event
    if isinstance(event, ForgetHost):
        return await _forget(event.host, cmd.local, control, who)
    # `local` only when given: a Control without a cluster store need not know the word.
    answer = await (control.submit(event, local=True) if cmd.local else control.submit(event))
    if isinstance(answer, Refused):
        return failed(answer)
    text = describe(event) + (" (local: this director only)" if cmd.local else "")
    note = f" ({answer.note})" if answer.note else ""
    log.info("console %s: %s%s", printable(who), printable(text), printable(note))
    data = {"event": type(event).__name__, **_event_data(event), "note": answer.note}
    lines = [f"ok: {text}"] + ([f"note: {answer.note}"] if answer.note else [])
    return Reply(lines=lines, data=data)


async def _forget(host: str, local: bool, control: Control, who: str) -> Reply:
    # `local` only when given, as for `set host` (a Control without a cluster store).
    answer = await (control.forget(host, local=True) if local else control.forget(host))
    if isinstance(answer, Refused):
        return failed(answer)
    note = answer.note
    log.info("console %s: forget host %s (%s)", who, host, note)
    return Reply(lines=[f"ok: host {host}: {note}"], data={"host": host, "note": note})


def _event_data(event: AdminEvent) -> dict[str, object]:
    data = render.jsonable(event)
    assert isinstance(data, dict)
    return data


def wait_reached(control: Control, cmd: Wait) -> bool:
    """Whether the kernel shows the waited-for state for every selected pair of the host."""
    views = pair_views(
        control.config(), control.snapshot(), control.kernel(), hosts=[cmd.host], vss=cmd.vss
    )
    if cmd.until is WaitFor.QUIESCENT:
        return all(v.active == 0 for v in views)
    if cmd.until is WaitFor.DOWN:
        return all(v.kernel_or_zero == 0 for v in views)
    return all(v.phase is Phase.ENABLED and v.kernel_weight == v.target for v in views)


async def _wait(cmd: Wait, control: Control, gone: asyncio.Event) -> Reply:
    error = config_refusal(control.config(), [cmd.host], cmd.vss or (), paired=True)
    if error is not None:
        return failed(error)
    if not control.ready():
        return failed(STARTING)
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + cmd.timeout
    what = f"host {cmd.host}" + (f" on vs {','.join(cmd.vss)}" if cmd.vss else "")
    # Connection counts are only as fresh as the last kernel read: read before every look, at
    # most once per WAIT_POLL (a read is a whole table), and never judge from a failed read.
    fresh_counts = cmd.until is WaitFor.QUIESCENT
    while True:
        if fresh_counts:
            read = False
            with contextlib.suppress(TimeoutError):
                remaining = max(deadline - loop.time(), 0)
                read = await asyncio.wait_for(control.refresh_kernel(), remaining)
            if read and wait_reached(control, cmd):
                break
        elif wait_reached(control, cmd):
            break
        remaining = deadline - loop.time()
        if gone.is_set():
            log.info("console: %s: client gone, wait abandoned", what)
            return failed(f"# wait abandoned: the client closed the connection ({what})")
        if remaining <= 0:
            return Reply(
                ok=False,
                status=STATUS_TIMEOUT,
                lines=[f"# timeout: {what} not {cmd.until.value} after {cmd.timeout:g}s"],
                data={"host": cmd.host, "until": cmd.until.value, "reached": False},
            )
        # Weights change only with an engine step; the cap covers a missed signal (and counts
        # need a new read). The client going away ends the wait at once.
        signals: list[asyncio.Future[Any]] = [asyncio.ensure_future(gone.wait())]
        if not fresh_counts:
            signals.append(asyncio.ensure_future(control.wait_change()))
        try:
            await asyncio.wait(
                signals, timeout=min(remaining, WAIT_POLL), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for signal in signals:
                signal.cancel()
    elapsed = loop.time() - start
    return Reply(
        lines=[f"ok: {what} is {cmd.until.value} (after {elapsed:.1f}s)"],
        data={"host": cmd.host, "until": cmd.until.value, "reached": True, "elapsed": elapsed},
    )


def _outcome(outcome: ReloadOutcome, empty: str) -> Reply:
    extra: dict[str, object] = {}
    if outcome.refusal is not None:
        extra["refused"] = outcome.refusal
    if not outcome.ok:
        lines = [e if e.startswith("#") else f"# {e}" for e in outcome.errors] or ["# failed"]
        return Reply(
            ok=False,
            status=STATUS_FAILED,
            lines=lines,
            data={"errors": list(outcome.errors), **extra},
        )
    lines = list(outcome.actions) or [empty]
    if outcome.refusal is not None:  # `config diff`: the verdict a reload would get
        lines.append(f"# a reload would be refused: {outcome.refusal}")
    return Reply(lines=lines, data={"actions": list(outcome.actions), **extra})


async def _config(cmd: ConfigCmd, control: Control) -> Reply:
    if cmd.action is ConfigAction.RELOAD:
        return _outcome(await control.reload(cmd.force), "config reloaded: no change")
    if cmd.action is ConfigAction.DIFF:
        return _outcome(await control.config_diff(), "no change")
    return _outcome(await control.config_check(), "config OK")


def needs_state(cmd: ControlCommand) -> bool:
    """Whether a command shows or changes the engine's state or the kernel's table."""
    match cmd:
        case LogLevel():
            return False
        case ConfigCmd(action):
            return action is ConfigAction.RELOAD
        case Dump(what):
            return what not in (DumpWhat.STATUS, DumpWhat.OPTIONS)
    return True  # every other command (new ones too) waits for the real state


async def execute(cmd: ControlCommand, control: Control, who: str, gone: asyncio.Event) -> Reply:
    """Run one command for the session named `who` (`gone`: its client left, a `wait` stops);
    never raises for a command's own failure (that is a failed Reply)."""
    if needs_state(cmd):
        refusal = await control.wait_ready(STARTUP_WAIT)
        if refusal is not None:
            return failed(refusal)
    match cmd:
        case LogLevel(level):
            control.set_log_level(level)
            log.info("console %s: log level %d", who, level)
            return Reply(lines=[f"log level {level}"], data={"level": level})
        case Admin():
            return await _admin(cmd, control, who)
        case Wait():
            return await _wait(cmd, control, gone)
        case ConfigCmd():
            return await _config(cmd, control)
        case Dump():
            return show.dump(cmd, control)
        case ShowHosts():
            return show.show_hosts(cmd, control)
        case ShowVs():
            return show.show_vs(cmd, control)
        case ShowChecks():
            return show.show_checks(control)
        case ShowCluster():
            return show.show_cluster(control)
