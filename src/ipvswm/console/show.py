"""The console commands that only show: `show …` and `dump …`, rendered from the Control's
read-only views (SPEC §7)."""

from __future__ import annotations

import time

from ipvswm.console import render
from ipvswm.console.command_types import Dump
from ipvswm.console.command_types import DumpWhat
from ipvswm.console.command_types import ShowHosts
from ipvswm.console.command_types import ShowVs
from ipvswm.console.control import Control
from ipvswm.console.marks import with_local_marks
from ipvswm.console.reply import Reply
from ipvswm.console.reply import failed
from ipvswm.console.reply import rendered
from ipvswm.views import pair_views
from ipvswm.vocabulary import config_refusal


def dump(cmd: Dump, control: Control) -> Reply:
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
        error = config_refusal(config, hosts=names or ())
        if error is not None:
            return failed(error)
        tags = names or [h.tag for h in config.hosts]
        return rendered(render.dump_hosts(config, control.snapshot(), tags))
    error = config_refusal(config, vss=names or ())
    if error is not None:
        return failed(error)
    tags = names or [vs.tag for vs in config.services]
    return rendered(render.dump_vss(config, control.snapshot(), tags))


def show_hosts(cmd: ShowHosts, control: Control) -> Reply:
    config = control.config()
    snap = control.snapshot()
    # A removed host whose admin state is kept is shown by name too (its kept line only).
    named = [h for h in cmd.hosts or () if not (config.host(h) is None and h in snap.kept)]
    kept = [h for h in cmd.hosts or () if h not in named]
    error = config_refusal(config, named, cmd.vss or ())
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


def show_vs(cmd: ShowVs, control: Control) -> Reply:
    config = control.config()
    if cmd.vss is None:
        return rendered(render.show_vs_list(config, control.snapshot(), control.kernel()))
    error = config_refusal(config, vss=cmd.vss)
    if error is not None:
        return failed(error)
    snap, table = control.snapshot(), control.kernel()
    return rendered(render.show_vs_detail(config, cmd.vss, snap, table, time.time()))


def show_cluster(control: Control) -> Reply:
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


def show_checks(control: Control) -> Reply:
    return rendered(render.show_checks(control.checks(), time.time()))
