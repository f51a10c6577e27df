"""Console latency under a slowloris attack: the real daemon (dry-run backend), 100 TCP clients
trickling one byte a second, and an operator's well-formed command over the Unix socket.

Prints `name = value unit` lines. `--slowloris N`, `--commands N`, `--seconds S` (how long the
trickle runs before measuring).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.daemon import DaemonProcess


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while not data.endswith(marker):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed: {data[-200:]!r}")
        data += chunk
    return data


def trickle(port: int, stop: threading.Event, held: list[int], refused: list[int]) -> None:
    """One slowloris client: connect, then one byte a second, never a newline."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        refused.append(1)
        return
    with sock:
        try:
            first = sock.recv(4096)
            if first.startswith(b"# too many"):
                refused.append(1)
                return
            held.append(1)
            while not stop.wait(1.0):
                sock.sendall(b"s")
        except OSError:
            return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slowloris", type=int, default=100)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        body = "! www 192.0.2.40:80 -\n" + "".join(
            f"h{i} 127.0.0.{150 + i}:80 www=10\n" for i in range(1, 6)
        )
        daemon = DaemonProcess(Path(tmp), body, options={"IPVS.Backend": "dry-run"})
        daemon.start()
        stop = threading.Event()
        held: list[int] = []
        refused: list[int] = []
        threads = [
            threading.Thread(target=trickle, args=(daemon.tcp_port, stop, held, refused))
            for _ in range(args.slowloris)
        ]
        try:
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)  # let the trickle run: every slot it can take is taken
            latencies = []
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(30)
                sock.connect(str(daemon.sock))
                read_until(sock, b"$ ")
                for _ in range(args.commands):
                    began = time.perf_counter()
                    sock.sendall(b"show host h1\n")
                    read_until(sock, b"\n$ ")
                    latencies.append((time.perf_counter() - began) * 1000)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            daemon.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"slowloris_clients = {args.slowloris} connections")
    print(f"slowloris_holding_a_tcp_slot = {len(held)} sessions")
    print(f"slowloris_refused = {len(refused)} connections")
    print(f"unix_show_host_latency_p50 = {statistics.median(latencies):.2f} ms")
    print(f"unix_show_host_latency_p99 = {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
