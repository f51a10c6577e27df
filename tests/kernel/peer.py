"""A real server or a client inside a VM network namespace (run with `ip netns exec NS python`).

peer.py serve NAME PORT [FAILFILE]
                            HTTP server (IPv4 and IPv6) answering NAME on every request, or
                            status 500 while FAILFILE exists; prints "ready"
peer.py count VIP PORT N    N requests, each on a new connection; prints {NAME: count} as JSON
peer.py hold VIP PORT       opens one connection, prints "held", closes it when stdin closes
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections import Counter
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer


class DualStackServer(ThreadingHTTPServer):
    """Listens on `::` for IPv6 and (v4-mapped) IPv4 alike."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(name: str, port: int, failfile: str = "") -> None:
    """Answer every GET with this server's name (status 500 while `failfile` exists)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(500 if failfile and os.path.exists(failfile) else 200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = DualStackServer(("::", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


def fetch(vip: str, port: int) -> str:
    """One GET on a new connection: the name of the server that answered."""
    with socket.create_connection((vip, port), timeout=30) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode() if b"\r\n\r\n" in data else "?"


def main() -> None:
    mode = sys.argv[1]
    if mode == "serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
    elif mode == "count":
        vip, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(dict(Counter(fetch(vip, port) for _ in range(n)))), flush=True)
    elif mode == "client":
        vip = sys.argv[2]
        held: list[socket.socket] = []
        for line in sys.stdin:
            words = line.split()
            if words[0] == "count":  # count PORT N [ADDRESS]: ADDRESS defaults to the VIP
                port, n = int(words[1]), int(words[2])
                to = words[3] if len(words) > 3 else vip
                print(json.dumps(dict(Counter(fetch(to, port) for _ in range(n)))), flush=True)
            elif words[0] == "hold":
                held.append(socket.create_connection((vip, int(words[1])), timeout=30))
                print("held", flush=True)
            elif words[0] == "release":
                for sock in held:
                    sock.close()
                held.clear()
                print("released", flush=True)


if __name__ == "__main__":
    main()
