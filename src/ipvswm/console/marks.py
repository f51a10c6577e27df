"""`show hosts` with a cluster store: mark what this director changed with `local` (issue 12)."""

from __future__ import annotations

from ipvswm.console.render import Rendered

LOCAL = "local (this director only, not shared)"


def with_local_marks(rendered: Rendered, view: dict[str, object] | None) -> Rendered:
    """After each host's summary line, one line naming its `local` changes; `local` in its data.

    `view` is the cluster store's view (`show cluster`), None without a cluster store.
    """
    lines, data = rendered
    marks = view.get("local_marks") if view is not None else None
    if not isinstance(marks, dict) or not marks:
        return rendered
    hosts = data.get("hosts")
    for item in hosts if isinstance(hosts, list) else []:
        item["local"] = list(marks.get(item["host"], []))
    out: list[str] = []
    for line in lines:
        out.append(line)
        host = line.split(" ", 1)[0]
        if host in marks and line.startswith(f"{host} Total.ActiveConn="):
            out.append(f"{host} {LOCAL}: {', '.join(marks[host])}")
    return out, data
