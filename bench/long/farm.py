"""A farm of real HTTP servers for the long benches: many addresses, one process.

    python bench/long/farm.py --first 127.77.0.1 --count 25000 --ports 8080

Listens on `--count` consecutive addresses from `--first` (skipping .0 and .255) on each of
`--ports`; every GET is answered `200 OK` and the connection closed, or `500` while its address is
failing. Prints `ready` once every socket listens; then reads commands on stdin, one a line,
answering `ok` to each: `fail ADDR`, `heal ADDR`. Exits when stdin closes. Its open-files limit is
raised to what the kernel allows (one socket per address and port, plus the checks in flight).
The benches start it through `Farm`, one process per `PER_FARM` addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import resource
import subprocess
import sys
from collections.abc import Iterator

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nOK\n"
FAILING = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
failing: set[str] = set()


def addresses(first: str, count: int) -> Iterator[str]:
    """`count` IPv4 addresses from `first` on, skipping those ending in .0 and .255."""
    address = ipaddress.IPv4Address(first)
    made = 0
    while made < count:
        if address.packed[3] not in (0, 255):
            yield str(address)
            made += 1
        address += 1


def raise_fd_limit() -> int:
    """Raise this process's open-files limit (soft and hard) as far as the kernel allows."""
    try:
        with open("/proc/sys/fs/nr_open") as f:
            ceiling = int(f.read())
    except OSError:
        ceiling = 1 << 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (ceiling, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return limit
        except (ValueError, OSError):
            continue
    return soft


class Answer(asyncio.Protocol):
    """Answers one request (200, or 500 while its address fails) and closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            local = self.transport.get_extra_info("sockname")[0]
            self.transport.write(FAILING if local in failing else OK)
            self.transport.close()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for address in addresses(args.first, args.count):
        for port in args.ports:
            servers.append(await loop.create_server(Answer, address, port, backlog=1024))
    print("ready", flush=True)
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        words = line.split()
        if len(words) == 2 and words[0] == "fail":
            failing.add(words[1])
        elif len(words) == 2 and words[0] == "heal":
            failing.discard(words[1])
        print("ok", flush=True)
    for server in servers:
        server.close()


PER_FARM = 8000  # addresses per farm process: its sockets stay under a 20,000 open-files limit


class Farm:
    """Farm processes for `hosts` addresses on one port; fail() and heal() an address.

    One process while the addresses fit its open-files limit (here the hard limit is 20,000 and
    not raisable), else one per PER_FARM addresses.
    """

    def __init__(self, hosts: list[str], port: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.owner: dict[str, subprocess.Popen[str]] = {}
        for k in range(0, len(hosts), PER_FARM):
            part = hosts[k : k + PER_FARM]
            where = ["--first", part[0], "--count", str(len(part)), "--ports", str(port)]
            proc = subprocess.Popen(  # noqa: S603 (this script, arguments as a list)
                [sys.executable, __file__, *where],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.procs.append(proc)
            self.owner.update(dict.fromkeys(part, proc))
        for proc in self.procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit("a farm process did not start")

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs]

    def tell(self, verb: str, address: str) -> None:
        proc = self.owner[address]
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{verb} {address}\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ok"

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--first", required=True, help="first address")
    parser.add_argument("--count", type=int, required=True, help="how many addresses")
    parser.add_argument(
        "--ports", type=lambda s: [int(p) for p in s.split(",")], default=[8080], help="P,P..."
    )
    args = parser.parse_args()
    raise_fd_limit()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
