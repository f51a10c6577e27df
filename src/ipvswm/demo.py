"""`ipvswm demo`: a live demo on a machine without IPVS (SPEC §1).

Starts small HTTP real servers on loopback addresses, runs the real daemon on the dry-run backend
with its console, prints the table whenever it changes, and plays a scripted failure, maintenance
and recovery so a newcomer sees ipvswm work in about 30 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
import time
from collections.abc import Awaitable
from collections.abc import Callable
from pathlib import Path

from ipvswm.config.parser import parse_file
from ipvswm.daemon.daemon import Daemon
from ipvswm.engine.mapping import service_key
from ipvswm.views import pair_views

WWW = ("web1", "web2", "web3")
SERVERS = {"web1": "127.0.0.2", "web2": "127.0.0.3", "web3": "127.0.0.4", "sorry": "127.0.0.5"}


class DemoServer:
    """A tiny HTTP server whose health the script switches: 200 when healthy, else 500."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.healthy = True
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.address, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            await reader.readuntil(b"\r\n\r\n")
            status = b"200 OK" if self.healthy else b"500 Internal Server Error"
            body = b"ok\n" if self.healthy else b"failing\n"
            writer.write(
                b"HTTP/1.1 "
                + status
                + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                + body
            )
            await writer.drain()
        writer.close()


def free_port(address: str) -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    directory: Path, servers: dict[str, DemoServer], console_port: int, metrics_port: int
) -> Path:
    lines = [
        f"Metrics.Listen=127.0.0.1:{metrics_port}",
        "# ipvswm demo config (dry-run backend: nothing touches a kernel)",
        "IPVS.Backend=dry-run",
        f"Management.Socket.Port={console_port}",
        f"Management.Socket.Path={directory / 'ipvswm.sock'}",
        f"Management.Fifo.Path={directory / 'ipvswm.fifo'}",
        f"Log.Path={directory / 'ipvswm.log'}",
        f"DB={directory / 'state.db'}",
        "Log.StdErr=0",
        "Config.CheckPeriod=1",
        "Check.Interval=1",
        "Check.Timeout.Connect=0.5",
        "Check.Timeout.Response=0.5",
        "Ramping.TriggerTime=4",
        "Ramping.Duration=4",
        "IPVS.ResyncPeriod=5",
        "",
        "! www 192.0.2.10:80 http://www.demo.test/health sorry_server=sorry",
        "! api 192.0.2.11:443 /health",
        "",
    ]
    weights = {"web1": "www=100 api=10", "web2": "www=100 api=10", "web3": "www=50", "sorry": ""}
    for tag, server in servers.items():
        lines.append(f"{tag} {server.address}:{server.port} {weights[tag]}".rstrip())
    path = directory / "ipvswm.conf"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def render_table(daemon: Daemon) -> str:
    """The kernel table with each destination's VS, host name and phase (pairs keyed by VS and
    destination: a host on two VSs has one state per VS)."""
    config = daemon.config
    table = daemon.kernel_table()
    vs_by_key = {service_key(vs): vs for vs in config.services}
    views = {
        (service_key(vs_by_key_tag), view.dest): view
        for view in pair_views(config, daemon.engine_snapshot(), table)
        if (vs_by_key_tag := config.service(view.vs)) is not None
    }
    host_by_address = {host.address: host.tag for host in config.hosts}
    out = []
    for key in sorted(table.services):
        entry = table.services[key]
        vs = vs_by_key.get(key)
        out.append(f"  VS {vs.tag if vs else '?'}  {key}  {entry.service.scheduler}")
        for dkey in sorted(entry.destinations):
            dest = entry.destinations[dkey]
            view = views.get((key, dkey))
            if view is None:
                tag = host_by_address.get(dkey.address, "?")
                out.append(
                    f"    -> {tag:<6} {dkey!s:<22} weight {dest.weight:>3}   SORRY SERVER "
                    "(no real server of this VS can serve: new connections go here until one is"
                    " back)"
                )
                continue
            # The decision can be a step ahead of the kernel while an apply is under way.
            pending = f" (applying {view.desired})" if view.desired != dest.weight else ""
            out.append(
                f"    -> {view.host:<6} {dkey!s:<22} weight {dest.weight:>3}   "
                f"{view.phase.value}{pending}"
            )
    return "\n".join(out)


async def console_command(port: int, line: str) -> list[str]:
    """Send one line to the daemon's real TCP console, as an operator would; its reply lines."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readuntil(b"$ ")  # the greeting
        writer.write(line.encode() + b"\n")
        await writer.drain()
        reply = await reader.readuntil(b"$ ")
        return reply.decode("utf-8", "replace").removesuffix("$ ").splitlines()
    finally:
        writer.close()


async def play(
    console_port: int, servers: dict[str, DemoServer], say: Callable[[str], None]
) -> None:
    """The scripted story: failure, recovery with ramp, maintenance, sorry server."""

    def health(healthy: bool, *tags: str) -> Callable[[], Awaitable[None]]:
        async def apply() -> None:
            for tag in tags:
                servers[tag].healthy = healthy

        return apply

    def admin(line: str) -> Callable[[], Awaitable[None]]:
        async def apply() -> None:
            print(f"$ {line}", flush=True)  # the console command, echoed before its effect
            for reply in await console_command(console_port, line):
                print(f"  {reply}", flush=True)

        return apply

    story: list[tuple[float, str, Callable[[], Awaitable[None]]]] = [
        (4, "web2 starts failing its health check (HTTP 500)", health(False, "web2")),
        (6, "web2 recovers: back after a fresh passing check", health(True, "web2")),
        (8, "operator: web1 goes into maintenance", admin("set host web1 off reason maintenance")),
        (
            4,
            "operator: maintenance done, web1 ramps back up over 5 s",
            admin("set host web1 on reason maintenance in 5"),
        ),
        (
            8,
            "every www server fails: with nothing left to serve www, its sorry server 'sorry'"
            " (a static 'we are down' page) is added to the VS until one recovers",
            health(False, *WWW),
        ),
        (6, "they all recover: the sorry server leaves", health(True, *WWW)),
    ]
    for delay, text, action in story:
        await asyncio.sleep(delay)
        say(text)
        await action()


async def run_demo(duration: float | None) -> int:
    servers = {tag: DemoServer(address) for tag, address in SERVERS.items()}
    for server in servers.values():
        await server.start()
    with tempfile.TemporaryDirectory(prefix="ipvswm-demo-") as tmp:
        directory = Path(tmp)
        console_port = free_port("127.0.0.1")
        metrics_port = free_port("127.0.0.1")
        path = write_config(directory, servers, console_port, metrics_port)
        result = parse_file(str(path))
        if result.config is None:
            for error in result.errors:
                print(error)
            return 1
        daemon = Daemon(str(path), result.config, foreground=True)
        started = time.monotonic()

        def say(text: str) -> None:
            print(f"\n[{time.monotonic() - started:5.1f}s] >>> {text}", flush=True)

        print(f"ipvswm demo: config {path}")
        print(
            f"console: socat - TCP:127.0.0.1:{console_port}   (or telnet 127.0.0.1 {console_port})"
        )
        print(f"         ipvswm ctl -c {path} show hosts")
        print(f"dashboard: http://127.0.0.1:{metrics_port}/   (a live view in your browser)")
        print(f"top:     ipvswm top -c {path}   (the same view in a terminal)")
        print(f"log:     {directory / 'ipvswm.log'}   (Ctrl-C to stop)")
        run = asyncio.create_task(daemon.run())
        watch = asyncio.create_task(_watch(daemon, started))
        story = asyncio.create_task(play(console_port, servers, say))
        try:
            if duration is not None:
                await asyncio.wait({run}, timeout=duration)
            else:
                await run
        finally:
            daemon.stop("demo finished")
            await asyncio.gather(run, return_exceptions=True)
            for task in (watch, story):
                task.cancel()
            await asyncio.gather(watch, story, return_exceptions=True)
            for server in servers.values():
                await server.close()
    print("\nipvswm demo finished: the daemon left the (dry-run) table as it was.")
    return 0


async def _watch(daemon: Daemon, started: float) -> None:
    """Print the kernel table when it changes, at most once a second (ramps change it often)."""
    last = ""
    while True:
        await daemon.changed.wait()
        text = render_table(daemon)
        if text != last:
            stamp = f"[{time.monotonic() - started:5.1f}s]"
            print(f"\n{stamp} IPVS table (dry-run):\n{text}", flush=True)
            last = text
        await asyncio.sleep(1.0)


def demo_main(duration: float | None = None) -> int:
    """Entry point of `ipvswm demo`."""
    try:
        return asyncio.run(run_demo(duration))
    except KeyboardInterrupt:
        return 0
