"""Execute parsed console commands against the daemon's `Control` (SPEC §7)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ipvswm.answers import Refused
from ipvswm.config.model import Config
from ipvswm.console import render
from ipvswm.console.command_types import (
    Auth,
    Command,
    ConfigAction,
    ConfigCmd,
    Dump,
    DumpWhat,
    Forget,
    Format,
    Help,
    History,
    LogLevel,
    Quit,
    SetHost,
    SetWeight,
    ShowChecks,
    ShowCluster,
    ShowHosts,
    ShowVs,
    Wait,
    WaitFor,
)
from ipvswm.console.control import Control, ReloadOutcome
from ipvswm.console.grammar import help_lines
from ipvswm.console.marks import with_local_marks
from ipvswm.console.render import printable
from ipvswm.engine.state import Phase
from ipvswm.events import (
    AdminEvent,
    SetHostOff,
    SetHostOn,
    SetOverride,
    SetPairsOff,
    SetPairsOn,
)
from ipvswm.views import pair_views

if TYPE_CHECKING:
    from ipvswm.console.session import Session

log = logging.getLogger(__name__)

STATUS_OK = 0
STATUS_FAILED = 1
STATUS_TIMEOUT = 3
WAIT_POLL = 1.0  # re-check a `wait` at least this often, even if no change is signalled
# Before the state is loaded and the kernel read, a command that shows or changes state waits
# this long for it, then says so: never an answer from empty state (it would read "no reason").
STARTUP_WAIT = 5.0
STARTING = "# the daemon is starting: the kernel table has not been read yet"


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to one command: text lines, JSON data, exit status, and whether to close."""

    ok: bool = True
    status: int = STATUS_OK
    lines: list[str] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)
    close: bool = False


def failed(message: str, status: int = STATUS_FAILED) -> Reply:
    """A failed command: one `#` line."""
    text = message if message.startswith("#") else f"# {message}"
    return Reply(ok=False, status=status, lines=[text], data={"error": text})


def rendered(result: render.Rendered) -> Reply:
    lines, data = result
    return Reply(lines=lines, data=data)


def check_names(
    config: Config, hosts: Iterable[str] = (), vss: Iterable[str] = (), *, paired: bool = False
) -> str | None:
    """An error line for the first unknown host or VS (or, if `paired`, a VS a host is not on)."""
    host_tags = list(hosts)
    vs_tags = list(vss)
    for tag in host_tags:
        if config.host(tag) is None:
            return f"# no such host '{tag}'"
    for tag in vs_tags:
        if config.service(tag) is None:
            return f"# no such vs '{tag}'"
    if paired:
        for tag in host_tags:
            host = config.host(tag)
            on = {vs for vs, _ in host.weights} if host is not None else set()
            for vs in vs_tags:
                if vs not in on:
                    return f"# host '{tag}' is not on vs '{vs}'"
    return None


def admin_event(cmd: SetHost | SetWeight) -> AdminEvent:
    """The admin event a `set host` command submits."""
    if isinstance(cmd, SetWeight):
        return SetOverride(cmd.host, cmd.weight, cmd.vss)
    if cmd.vss is None:
        if cmd.on:
            return SetHostOn(cmd.host, cmd.reasons, cmd.ramp)
        return SetHostOff(cmd.host, cmd.reasons or frozenset({"default"}))
    if cmd.on:
        return SetPairsOn(cmd.host, cmd.vss, cmd.reasons, cmd.ramp)
    return SetPairsOff(cmd.host, cmd.vss, cmd.reasons or frozenset({"default"}))


def describe(cmd: SetHost | SetWeight) -> str:
    """What an admin command did, for its reply and the log."""
    where = f" on vs {','.join(cmd.vss)}" if cmd.vss else ""
    if isinstance(cmd, SetWeight):
        weight = "configured" if cmd.weight is None else str(cmd.weight)
        return f"host {cmd.host}{where}: weight {weight}"
    reasons = "*" if cmd.reasons is None else ",".join(sorted(cmd.reasons))
    ramp = f", ramp {cmd.ramp:g}s" if cmd.ramp is not None else ""
    return f"host {cmd.host}{where}: {'on' if cmd.on else 'off'} (reasons {reasons}){ramp}"


async def _admin(cmd: SetHost | SetWeight, control: Control, session: Session) -> Reply:
    error = check_names(control.config(), [cmd.host], cmd.vss or (), paired=True)
    if error is not None:
        return failed(error)
    event = admin_event(cmd)
    # `local` only when given: a Control without a cluster store need not know the word.
    answer = await (control.submit(event, local=True) if cmd.local else control.submit(event))
    if isinstance(answer, Refused):
        return failed(answer.reason)
    text = describe(cmd) + (" (local: this director only)" if cmd.local else "")
    note = f" ({answer.note})" if answer.note else ""
    log.info("console %s: %s%s", printable(session.name), printable(text), printable(note))
    data = {"event": type(event).__name__, **_event_data(event), "note": answer.note}
    lines = [f"ok: {text}"] + ([f"note: {answer.note}"] if answer.note else [])
    return Reply(lines=lines, data=data)


async def _forget(cmd: Forget, control: Control, session: Session) -> Reply:
    # `local` only when given, as for `set host` (a Control without a cluster store).
    answer = await (control.forget(cmd.host, local=True) if cmd.local else control.forget(cmd.host))
    if isinstance(answer, Refused):
        return failed(answer.reason)
    note = answer.note
    log.info("console %s: forget host %s (%s)", session.name, cmd.host, note)
    return Reply(lines=[f"ok: host {cmd.host}: {note}"], data={"host": cmd.host, "note": note})


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
    error = check_names(control.config(), [cmd.host], cmd.vss or (), paired=True)
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
            await asyncio.wait(signals, timeout=min(remaining, WAIT_POLL))
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


def _dump(cmd: Dump, control: Control) -> Reply:
    config = control.config()
    if cmd.what is DumpWhat.STATUS:
        status = control.status()
        return Reply(lines=render.key_values(status), data={"status": render.jsonable(status)})
    if cmd.what is DumpWhat.OPTIONS:
        return rendered(render.dump_options(config.options, control.log_level_in_force()))
    if cmd.what is DumpWhat.CHECKERS:
        lines: list[str] = []
        for check in control.checks():
            lines.extend(render.dump_fields(f"checker {check.target}", check))
        return Reply(lines=lines, data={"checks": render.jsonable(control.checks())})
    names = [cmd.name] if cmd.name is not None else None
    if cmd.what is DumpWhat.HOSTS:
        error = check_names(config, hosts=names or ())
        if error is not None:
            return failed(error)
        tags = names or [h.tag for h in config.hosts]
        return rendered(render.dump_hosts(config, control.snapshot(), tags))
    error = check_names(config, vss=names or ())
    if error is not None:
        return failed(error)
    tags = names or [vs.tag for vs in config.services]
    return rendered(render.dump_vss(config, control.snapshot(), tags))


def _show_hosts(cmd: ShowHosts, control: Control) -> Reply:
    config = control.config()
    snap = control.snapshot()
    # A removed host whose admin state is kept is shown by name too (its kept line only).
    named = [h for h in cmd.hosts or () if not (config.host(h) is None and h in snap.kept)]
    kept = [h for h in cmd.hosts or () if h not in named]
    error = check_names(config, named, cmd.vss or ())
    if error is not None:
        return failed(error)
    hosts = None if cmd.hosts is None else tuple(named)
    views = pair_views(config, snap, control.kernel(), hosts=hosts, vss=cmd.vss)
    if cmd.hosts is not None:
        order = named
    elif cmd.vss is not None:
        order = list(dict.fromkeys(v.host for v in views))
    else:
        order = [h.tag for h in config.hosts]
        kept = sorted(snap.kept)
    now = time.time()
    lines, data = render.show_hosts(views, order, now)
    view = control.cluster_view() if hasattr(control, "cluster_view") else None
    lines, data = with_local_marks((lines, data), view)
    keep_for = config.options.config_forget_after
    kept_lines, kept_data = render.kept_hosts(snap, kept, keep_for)
    return Reply(lines=lines + kept_lines, data={**data, **kept_data})


def _show_vs(cmd: ShowVs, control: Control) -> Reply:
    config = control.config()
    if cmd.vss is None:
        return rendered(render.show_vs_list(config, control.snapshot(), control.kernel()))
    error = check_names(config, vss=cmd.vss)
    if error is not None:
        return failed(error)
    snap, table = control.snapshot(), control.kernel()
    return rendered(render.show_vs_detail(config, cmd.vss, snap, table, time.time()))


def _show_cluster(control: Control) -> Reply:
    view = control.cluster_view() if hasattr(control, "cluster_view") else None
    if view is None:
        return Reply(lines=["no cluster store (Cluster.Etcd is not set)"], data={"cluster": None})
    now = time.time()
    lines = [
        f"cluster {view['name']}: this director {view['node']}",
        f"store {view['endpoint']}: {view['store']}, revision {view['revision']},"
        f" {view['shared_keys']} shared key(s)",
    ]
    members = view.get("members")
    for member in members if isinstance(members, list) else []:
        since = member.get("since")
        if member.get("present"):
            age = f", up {now - since:.0f}s" if isinstance(since, float) else ""
            lines.append(f"  member {member['node']}: present (seen now{age})")
        else:
            lines.append(
                f"  member {member['node']}: gone (last seen {now - member['seen']:.0f}s ago)"
            )
    if view.get("duplicate"):
        lines.append(
            f"  DUPLICATE: another director also uses Cluster.Node={view['node']}"
            f" ({view['duplicate']}): shared admin commands are refused until one is renamed"
        )
    local = view.get("local")
    for key in local if isinstance(local, list) else []:
        lines.append(f"  local only (not shared): {key}")
    return Reply(lines=lines, data={"cluster": view})


def read_only(cmd: Command) -> bool:
    """Whether any console user may run it: it shows, waits or sets up the session only."""
    return isinstance(
        cmd,
        Help
        | History
        | Format
        | Quit
        | ShowVs
        | ShowHosts
        | ShowChecks
        | ShowCluster
        | Dump
        | Wait,
    )


def needs_state(cmd: Command) -> bool:
    """Whether a command shows or changes the engine's state or the kernel's table."""
    match cmd:
        case Help() | History() | Format() | Quit() | LogLevel() | Auth():
            return False
        case ConfigCmd(action):
            return action is ConfigAction.RELOAD
        case Dump(what):
            return what not in (DumpWhat.STATUS, DumpWhat.OPTIONS)
    return True  # every other command (new ones too) waits for the real state


async def execute(cmd: Command, control: Control, session: Session) -> Reply:
    """Run one command; never raises for a command's own failure (that is a failed Reply)."""
    if needs_state(cmd):
        problem = await control.wait_ready(STARTUP_WAIT)
        if problem is not None:
            return failed(problem)
    match cmd:
        case Help(topic):
            return Reply(lines=help_lines(topic), data={"help": help_lines(topic)})
        case History():
            entries = [f"{i:4d}  {line}" for i, line in enumerate(session.history, 1)]
            return Reply(lines=entries, data={"history": list(session.history)})
        case Format(json):
            session.json = json
            return Reply(lines=[f"format {'json' if json else 'text'}"], data={"json": json})
        case Quit():
            return Reply(lines=["bye"], data={}, close=True)
        case LogLevel(level):
            control.set_log_level(level)
            log.info("console %s: log level %d", session.name, level)
            return Reply(lines=[f"log level {level}"], data={"level": level})
        case SetHost() | SetWeight():
            return await _admin(cmd, control, session)
        case Forget():
            return await _forget(cmd, control, session)
        case Wait():
            return await _wait(cmd, control, session.gone)
        case ConfigCmd():
            return await _config(cmd, control)
        case Dump():
            return _dump(cmd, control)
        case ShowHosts():
            return _show_hosts(cmd, control)
        case ShowVs():
            return _show_vs(cmd, control)
        case ShowChecks():
            return rendered(render.show_checks(control.checks(), time.time()))
        case ShowCluster():
            return _show_cluster(control)
    return failed(f"# cannot execute {type(cmd).__name__} here", STATUS_FAILED)
