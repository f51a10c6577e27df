"""An agent of HAProxy's agent-check protocol on a loopback address, for tests and benchmarks.

Each connection gets the current answer line and is closed; in `hold` mode it gets nothing and
stays open until the client closes it (so a test can see how many polls overlap). It counts every
connection it accepts and the most it held open at once. `stop()` closes the listening socket:
from then on the agent refuses connections (unreachable). Runs in its own thread; ready once
`start()` returns (it listens before that).
"""

from __future__ import annotations

import selectors
import socket
import threading


class AgentServer:
    """One agent on (address, port); port 0 picks a free one."""

    def __init__(self, address: str, port: int = 0, answer: str = "up") -> None:
        self.address = address
        self.port = port
        self._answer = answer.encode() + b"\n"
        self._hold = False
        self._lock = threading.Lock()
        self.connections = 0  # accepted in all
        self.max_open = 0  # most connections open at once
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._stop = False

    def start(self) -> AgentServer:
        """Listen (ready when this returns) and serve in a thread."""
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.address, self.port))
        listener.listen(256)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._serve, name=f"agent {self.port}", daemon=True)
        self._thread.start()
        return self

    def answer(self, line: str) -> None:
        """What every later connection gets (and leave `hold` mode)."""
        with self._lock:
            self._answer = line.encode() + b"\n"
            self._hold = False

    def answer_bytes(self, data: bytes) -> None:
        """Send exactly these bytes (no newline added) to every later connection."""
        with self._lock:
            self._answer = data
            self._hold = False

    def hold(self) -> None:
        """Answer nothing: keep each connection open until the client closes it."""
        with self._lock:
            self._hold = True

    def count(self) -> tuple[int, int]:
        """(connections accepted, most open at once)."""
        with self._lock:
            return self.connections, self.max_open

    def stop(self) -> None:
        """Close the listener (connections are refused from now on) and end the thread."""
        self._stop = True
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> AgentServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        if not self._stop:
            self.stop()

    def _serve(self) -> None:
        assert self._listener is not None
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ, "accept")
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop:
                for key, _ in sel.select():
                    if key.data == "accept":
                        self._accept(sel)
                    elif key.data == "held":
                        self._read_held(sel, key.fileobj)  # type: ignore[arg-type]
        finally:
            for conn in list(self._open):
                conn.close()
            self._listener.close()
            sel.close()

    def _accept(self, sel: selectors.BaseSelector) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except BlockingIOError:
            return
        with self._lock:
            self.connections += 1
            hold, answer = self._hold, self._answer
            if hold:
                self._open.add(conn)
                self.max_open = max(self.max_open, len(self._open))
        if hold:
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ, "held")
            return
        try:
            conn.sendall(answer)
        except OSError:
            pass
        finally:
            conn.close()

    def _read_held(self, sel: selectors.BaseSelector, conn: socket.socket) -> None:
        try:
            data = conn.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client gave up (its deadline): the poll is over
            sel.unregister(conn)
            with self._lock:
                self._open.discard(conn)
            conn.close()
