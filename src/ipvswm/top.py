"""`ipvswm top`: the dashboard's view in a terminal, refreshing (issue 15 item 2).

It reads the daemon's `/status` document (the `Metrics.Listen` address of the config, or --url)
once per interval and draws every VS with its pairs with curses (the standard library's: enough
for a table, no extra dependency). Keys: `f` filter by VS (empty: all), `s` next sort key,
`q` or Ctrl-C quits. Read-only, like the dashboard.
"""

from __future__ import annotations

import contextlib
import curses
import json
import time
import urllib.request
from typing import Any

SORT_KEYS = ("config", "host", "phase", "weight", "conns", "check")
PHASE_ORDER = {"DISABLED": 0, "AWAIT_PASS": 1, "RAMPING": 2, "ENABLED": 3}


def status_url(config_path: str) -> str | None:
    """The /status URL from the config's Metrics.Listen, or None when it is not set."""
    from ipvswm.config.parser import parse_file

    result = parse_file(config_path, resolver=lambda name: [])
    if result.config is None:
        return None
    listen = result.config.options.metrics_listen
    if not listen:
        return None
    host, _, port = str(listen).rpartition(":")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"http://{host}:{port}/status"


def fetch(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=3) as response:
        document: dict[str, Any] = json.loads(response.read())
        return document


def _sort_key(key: str) -> Any:
    if key == "host":
        return lambda p: p["host"]
    if key == "phase":
        return lambda p: PHASE_ORDER.get(p["phase"], 9)
    if key == "weight":
        return lambda p: -(p["kernel"] or 0)
    if key == "conns":
        return lambda p: -p.get("active", 0)
    if key == "check":
        return lambda p: (p["check"] != "fail", p["host"])
    return None


def render_lines(document: dict[str, Any], vs_filter: str = "", sort: str = "config") -> list[str]:
    """The screen as text lines (pure: the curses loop only draws them)."""
    lines: list[str] = []
    header = f"{'HOST':<12} {'ADDRESS':<22} {'PHASE':<10} {'DESIRED':>7} {'KERNEL':>7} "
    header += f"{'OVR':>5} {'CHECK':<6} {'MS':>6} {'CONNS':>6}  REASONS / RAMP / CAUSE"
    key = _sort_key(sort)
    for vs in document.get("services", []):
        if vs_filter and vs["vs"] != vs_filter:
            continue
        sorry = vs["sorry"]["on"]
        name = vs.get("sorry_server")
        if sorry:
            sorry_text = (
                f"sorry server {name} IN" if name else "nothing can serve (no sorry server)"
            )
        else:
            sorry_text = f"sorry server {name}: standby" if name else ""
        lines.append(f"VS {vs['vs']}  {vs['service']}  {sorry_text}".rstrip())
        lines.append(header)
        pairs = list(vs["pairs"])
        if key is not None:
            pairs.sort(key=key)
        for p in pairs:
            kernel = "-" if p["kernel"] is None else str(p["kernel"])
            override = "-" if p["override"] is None else str(p["override"])
            latency = p.get("check_latency")
            ms = "-" if latency is None else f"{latency * 1000:.0f}"
            extra = ",".join(p["reasons"])
            if p.get("ramp_duration"):
                extra += f" ramp {p['ramp_duration']:g}s"
            if p["cause"]:
                extra += f" ({p['cause']})"
            address = f"{p['address']}:{p['port']}"
            lines.append(
                f"{p['host']:<12} {address:<22} {p['phase']:<10} {p['desired']:>7} {kernel:>7} "
                f"{override:>5} {p['check']:<6} {ms:>6} {p.get('active', 0):>6}  {extra.strip()}"
            )
        lines.append("")
    return lines


def _loop(screen: Any, url: str, interval: float, vs_filter: str) -> None:
    curses.curs_set(0)
    screen.timeout(100)
    sort_index = 0
    document: dict[str, Any] = {}
    error = ""
    next_fetch = 0.0
    while True:
        now = time.monotonic()
        if now >= next_fetch:
            try:
                document, error = fetch(url), ""
            except (OSError, ValueError) as exc:
                error = f"cannot read {url}: {exc}"
            next_fetch = now + interval
        sort = SORT_KEYS[sort_index]
        title = f"ipvswm top  {url}  filter: {vs_filter or 'all'}  sort: {sort}"
        title += "   [f]ilter [s]ort [q]uit"
        lines = [title, error, *render_lines(document, vs_filter, sort)]
        screen.erase()
        height, width = screen.getmaxyx()
        for row, text in enumerate(lines[: height - 1]):
            with contextlib.suppress(curses.error):
                screen.addnstr(row, 0, text, width - 1, curses.A_BOLD if row == 0 else 0)
        screen.refresh()
        key = screen.getch()
        if key in (ord("q"), ord("Q")):
            return
        if key == ord("s"):
            sort_index = (sort_index + 1) % len(SORT_KEYS)
        elif key in (ord("f"), ord("/")):
            vs_filter = _prompt(screen, "filter by VS (empty: all): ")
            next_fetch = 0.0


def _prompt(screen: Any, text: str) -> str:
    height, _ = screen.getmaxyx()
    screen.timeout(-1)
    curses.echo()
    try:
        screen.move(height - 1, 0)
        screen.clrtoeol()
        screen.addstr(height - 1, 0, text)
        answer: bytes = screen.getstr(height - 1, len(text), 40)
        return answer.decode("utf-8", "replace").strip()
    finally:
        curses.noecho()
        screen.timeout(100)


def top_main(config_path: str, url: str | None, interval: float, vs_filter: str) -> int:
    """Run the terminal view until q or Ctrl-C; 2 when there is no /status to read."""
    import sys

    target = url or status_url(config_path)
    if target is None:
        print(
            f"ipvswm top: no Metrics.Listen in {config_path}: set it (e.g. Metrics.Listen="
            "127.0.0.1:9100) or pass --url http://HOST:PORT/status",
            file=sys.stderr,
        )
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        curses.wrapper(_loop, target, interval, vs_filter)
    return 0
