"""The console servers over real sockets and a real FIFO, with a fake Control behind them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import logging
import os
import shutil
import socket
import stat
import threading
import time
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from ipvswm.console import fifo
from ipvswm.console.client import console_main
from ipvswm.console.client import ctl_main
from ipvswm.console.command_types import ParseError
from ipvswm.console.grammar import parse
from ipvswm.console.server import ConsoleError
from ipvswm.console.server import ConsoleServer
from ipvswm.console.server import Limits
from ipvswm.events import SetHostOff
from tests.integration.test_console_fuzz import closes_session
from tests.integration.test_console_fuzz import lines_of
from tests.unit.console_control import EngineControl

pytestmark = pytest.mark.integration

HOST = "127.0.0.70"


async def start(
    control: EngineControl, limits: Limits | None = None, **kw: object
) -> ConsoleServer:
    args: dict[str, object] = {"tcp": (HOST, 0), "unix_path": None, "fifo_path": None}
    args.update(kw)
    server = ConsoleServer(control, limits=limits, **args)  # type: ignore[arg-type]
    await server.start()
    return server


@pytest.fixture
async def control() -> EngineControl:
    return EngineControl()


@pytest.fixture
async def server(control: EngineControl) -> AsyncIterator[ConsoleServer]:
    srv = await start(control)
    yield srv
    await srv.close()


OPEN: list[Client] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    """Close every test client, so that no transport is left to the garbage collector."""
    yield
    while OPEN:
        client = OPEN.pop()
        client.writer.close()
        with contextlib.suppress(Exception):
            await client.writer.wait_closed()


class Client:
    """A console client over asyncio streams (closed after each test)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        OPEN.append(self)

    @classmethod
    async def tcp(cls, server: ConsoleServer) -> tuple[Client, str]:
        assert server.tcp_port is not None
        client = cls(*await asyncio.open_connection(HOST, server.tcp_port))
        return client, await client.until_prompt()

    async def until_prompt(self) -> str:
        return (await asyncio.wait_for(self.reader.readuntil(b"\n$ "), 10)).decode()

    async def cmd(self, line: str | bytes) -> str:
        self.writer.write(line if isinstance(line, bytes) else line.encode() + b"\n")
        return (await self.until_prompt())[: -len("$ ")]

    async def rest(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(), 10)

    def close(self) -> None:
        self.writer.close()


async def test_tcp_session_help_prompt_commands(
    server: ConsoleServer, control: EngineControl
) -> None:
    client, greeting = await Client.tcp(server)
    assert greeting.startswith("ipvs-weightman console.")
    assert "  wait host H quiescent|up|down" in greeting
    assert greeting.endswith("\n$ ")
    assert (await client.cmd("  SHOW   vs  ")).startswith("www tcp:192.0.2.1:80 ")
    assert await client.cmd("set host web1 off for reasons deploy") == (
        "ok: host web1: off (reasons deploy)\n"
    )
    assert (await client.cmd("set host nosuch off")) == "# no such host 'nosuch'\n"
    assert (await client.cmd("show hots")).startswith("??? ")
    assert len(control.submitted) == 1
    client.writer.write(b"quit\n")
    assert await client.rest() == b"bye\n"


async def test_json_format_one_object_per_reply(server: ConsoleServer) -> None:
    client, _ = await Client.tcp(server)
    client.writer.write(b"format json\nshow hosts web1\nbogus\nquit\n")
    lines = (await client.rest()).decode().splitlines()
    replies = [json.loads(line) for line in lines]
    assert [r["status"] for r in replies] == [0, 0, 2, 0]
    assert replies[1]["data"]["hosts"][0]["tstatus"] == "0-DONE"
    assert replies[3]["close"] is True


async def test_eof_closes_the_session(server: ConsoleServer) -> None:
    client, _ = await Client.tcp(server)
    client.writer.write(b"show vs")  # no newline: executed at end of input
    client.writer.write_eof()
    assert (await client.rest()).startswith(b"www ")
    client.close()


async def test_ctrl_d_line_closes_the_session(server: ConsoleServer) -> None:
    client, _ = await Client.tcp(server)
    client.writer.write(b"\x04\r\n")
    assert await client.rest() == b""


async def test_long_line_and_non_utf8_do_not_end_the_session(server: ConsoleServer) -> None:
    client, _ = await Client.tcp(server)
    out = await client.cmd(b"show vs " + b"x" * 5000 + b"\n")
    assert out.startswith("??? line too long (max 4096 bytes)")
    # a long line in pieces: only one error, and the tail is discarded, not executed
    client.writer.write(b"y" * 3000)
    await client.writer.drain()
    client.writer.write(b"y" * 3000 + b" quit")
    await client.writer.drain()
    out = await client.cmd(b"\n")
    assert out.count("???") == 1
    assert (await client.cmd(b"show \xff\xfe vs\n")).startswith("??? input is not UTF-8")
    assert (await client.cmd("x" * 4096)).startswith("??? unknown command")  # exactly the limit
    assert (await client.cmd("show vs")).startswith("www ")


async def test_unix_socket_mode_and_single_instance(tmp_path: Path, control: EngineControl) -> None:
    path = str(tmp_path / "c.sock")
    srv = await start(control, tcp=None, unix_path=path)
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(path)
        client = Client(reader, writer)
        await client.until_prompt()
        assert (await client.cmd("show vs www")).startswith("www ")
        with pytest.raises(ConsoleError, match="another ipvswm daemon is listening"):
            await start(EngineControl(), tcp=None, unix_path=path)
        assert (await client.cmd("show checks")).startswith("127.0.0.2:80")  # still served
        client.close()
    finally:
        await srv.close()
    with pytest.raises(FileNotFoundError):
        os.stat(path)  # removed on close


async def test_stale_unix_socket_is_replaced_and_other_files_kept(
    tmp_path: Path, control: EngineControl
) -> None:
    path = str(tmp_path / "stale.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens: a crashed daemon's socket
    srv = await start(control, tcp=None, unix_path=path)
    await srv.close()
    regular = tmp_path / "regular"
    regular.write_text("keep me")
    with pytest.raises(ConsoleError, match="not a socket"):
        await start(control, tcp=None, unix_path=str(regular))
    assert regular.read_text() == "keep me"


class Records(logging.Handler):
    """Collects console log messages and wakes a waiter on each."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.event.set()

    async def wait_for(self, text: str) -> None:
        async with asyncio.timeout(10):
            while not any(text in m for m in self.messages):
                self.event.clear()
                await self.event.wait()


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("ipvswm.console")
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def write_fifo(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # our reader is open: never blocks
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


async def test_fifo_commands_are_executed_and_logged(
    tmp_path: Path, control: EngineControl, records: Records
) -> None:
    path = str(tmp_path / "fifo")
    srv = await start(control, tcp=None, fifo_path=path)
    try:
        assert stat.S_ISFIFO(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        write_fifo(path, b"set host web1 off for reasons deploy\nshow host nosuch\n")
        await records.wait_for("fifo: # no such host 'nosuch'")
        assert "fifo: ok: host web1: off (reasons deploy)" in records.messages
        # the writer closed: the FIFO is reopened for the next one, without a busy loop
        cpu = time.process_time()
        await asyncio.sleep(0.2)
        assert time.process_time() - cpu < 0.1
        write_fifo(path, b"bad \xff\nset host web2 off")  # last line unterminated
        await records.wait_for("fifo: ok: host web2: off (reasons default)")
        assert any(m.startswith("fifo: ??? input is not UTF-8") for m in records.messages)
        assert len(control.submitted) == 2
    finally:
        await srv.close()


def refusals(records: Records) -> list[str]:
    return [m for m in records.messages if m.startswith("console FIFO") and " not used: " in m]


def nobody_reads(path: str) -> bool:
    """Whether no process has the FIFO open for reading (a non-blocking writer gets ENXIO)."""
    try:
        write_fifo(path, b"set host web1 off\n")
    except OSError as exc:
        return exc.errno == errno.ENXIO
    return False


RECREATE = "remove it (rm {}) and restart ipvswm, which creates it with mode 0600"


async def test_fifo_writable_by_others_is_refused(
    tmp_path: Path, control: EngineControl, records: Records
) -> None:
    path = str(tmp_path / "fifo")
    os.mkfifo(path)
    os.chmod(path, 0o666)  # what `mkfifo -m 666 /tmp/fifo` by another user leaves
    srv = await start(control, fifo_path=path)  # starts: the TCP console is still served
    try:
        assert refusals(records) == [
            f"console FIFO {path} not used: it is writable by group or others (mode 0666), so "
            f"any local user could send commands; chmod 600 {path} (or {RECREATE.format(path)}); "
            "carrying on without the FIFO"
        ]
        assert nobody_reads(path)
        client, _ = await Client.tcp(srv)
        assert (await client.cmd("show vs")).startswith("www ")
        assert control.submitted == []
    finally:
        await srv.close()


async def test_fifo_through_a_symbolic_link_is_refused(
    tmp_path: Path, control: EngineControl, records: Records
) -> None:
    target = str(tmp_path / "real-fifo")
    os.mkfifo(target, 0o600)  # a good FIFO, but reached through a link someone else may own
    path = str(tmp_path / "fifo")
    os.symlink(target, path)
    srv = await start(control, tcp=None, fifo_path=path)
    try:
        assert refusals(records) == [
            f"console FIFO {path} not used: it is a symbolic link; {RECREATE.format(path)}; "
            "carrying on without the FIFO"
        ]
        assert nobody_reads(target)
        assert stat.S_ISLNK(os.lstat(path).st_mode)  # left as it is
    finally:
        await srv.close()


async def test_fifo_of_another_user_or_not_a_fifo_is_refused(
    tmp_path: Path, control: EngineControl, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "fifo")
    os.mkfifo(path, 0o600)
    owner = os.stat(path).st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1)  # as if the daemon ran as another user
    srv = await start(control, tcp=None, fifo_path=path)
    await srv.close()
    monkeypatch.undo()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    srv = await start(control, tcp=None, fifo_path=str(regular))
    await srv.close()
    assert regular.read_text() == "keep me"
    srv = await start(control, tcp=None, fifo_path=str(tmp_path / "no-dir" / "fifo"))
    await srv.close()
    assert refusals(records) == [
        f"console FIFO {path} not used: it is owned by uid {owner}, not by uid {owner + 1} that "
        f"ipvswm runs as; {RECREATE.format(path)}; carrying on without the FIFO",
        f"console FIFO {regular} not used: it is not a FIFO; remove it or set "
        "Management.Fifo.Path to another path; carrying on without the FIFO",
        f"console FIFO {tmp_path}/no-dir/fifo not used: cannot create it: No such file or "
        "directory; carrying on without the FIFO",
    ]
    assert control.submitted == []


async def test_fifo_made_unsafe_while_in_use_is_dropped_at_the_next_writer(
    tmp_path: Path, control: EngineControl, records: Records
) -> None:
    path = str(tmp_path / "fifo")
    srv = await start(control, tcp=None, fifo_path=path)
    try:
        assert refusals(records) == []
        os.chmod(path, 0o622)
        write_fifo(path, b"set host web1 off\n")  # read; then the reopen checks it again
        await records.wait_for("fifo: ok: host web1: off (reasons default)")
        await records.wait_for(" not used: it is writable by group or others (mode 0622)")
        assert nobody_reads(path)
        assert len(control.submitted) == 1
    finally:
        await srv.close()


async def test_fifo_loses_no_command_of_many_short_writers_in_a_row(
    tmp_path: Path, control: EngineControl, records: Records
) -> None:
    """As `for i in ...; do echo "..." > fifo; done` does: each writer opens, writes, closes.

    A writer may come just as the reader sees the previous one's end of input; its line must
    still be read (the reader is replaced with the pipe kept open, never closed first).
    """
    path = str(tmp_path / "fifo")
    srv = await start(control, tcp=None, fifo_path=path)
    count = 300

    def writers() -> None:
        for i in range(count):
            fd = os.open(path, os.O_WRONLY)  # blocking, as the shell's: waits for a reader
            try:
                os.write(fd, f"set host web1 off for reasons r{i}\n".encode())
            finally:
                os.close(fd)

    try:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.to_thread(writers), 30)
        with contextlib.suppress(TimeoutError):  # the count below says what went missing
            async with asyncio.timeout(10):
                while len(control.submitted) < count:
                    records.event.clear()
                    await records.event.wait()  # each command executed logs lines
        assert len(control.submitted) == count
        assert time.monotonic() - started < 30
        reasons = sorted(
            r for e in control.submitted if isinstance(e, SetHostOff) for r in e.reasons
        )
        assert reasons == sorted(f"r{i}" for i in range(count))
    finally:
        await srv.close()


async def test_fifo_writer_arriving_while_the_reader_is_replaced_is_read(
    tmp_path: Path, control: EngineControl, records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between one writer's end of input and the new reader, made deterministic."""
    path = str(tmp_path / "fifo")
    srv = await start(control, tcp=None, fifo_path=path)
    real_open = fifo.open_fifo
    arrivals = [b"set host web2 off for reasons late", b"set host web1 off for reasons third\n"]

    def open_after_a_writer(where: str) -> int:
        if arrivals:  # a writer comes and goes just before the reader is replaced
            write_fifo(where, arrivals.pop(0))  # ENXIO here if the old reader were closed
        return real_open(where)

    monkeypatch.setattr(fifo, "open_fifo", open_after_a_writer)
    try:
        write_fifo(path, b"set host web1 off\n")
        await records.wait_for("fifo: ok: host web1: off (reasons third)")
        # The unterminated line of the writer in the window was not held back for the next one.
        assert "fifo: ok: host web2: off (reasons late)" in records.messages
        assert [e.host for e in control.submitted if isinstance(e, SetHostOff)] == [
            "web1",
            "web2",
            "web1",
        ]
        cpu = time.process_time()  # and the new reader does not spin
        await asyncio.sleep(0.2)
        assert time.process_time() - cpu < 0.1
    finally:
        await srv.close()


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
async def test_socat_over_tcp_and_unix(tmp_path: Path, control: EngineControl) -> None:
    path = str(tmp_path / "s.sock")
    srv = await start(control, tcp=(HOST, 0), unix_path=path)
    try:
        for address in (f"TCP:{HOST}:{srv.tcp_port}", f"UNIX-CONNECT:{path}"):
            proc = await asyncio.create_subprocess_exec(
                "socat", "-", address, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(proc.communicate(b"show vs\nquit\n"), 10)
            assert proc.returncode == 0
            assert b"\n$ www tcp:192.0.2.1:80 " in out
            assert out.endswith(b"bye\n")
    finally:
        await srv.close()


async def test_idle_timeout_and_max_sessions(control: EngineControl) -> None:
    srv = await start(control, Limits(idle_timeout=0.2, max_sessions=2))
    try:
        first, _ = await Client.tcp(srv)
        second, _ = await Client.tcp(srv)
        assert srv.tcp_port is not None
        third = Client(*await asyncio.open_connection(HOST, srv.tcp_port))
        assert await third.rest() == b"# too many console sessions\n"
        assert await first.rest() == b"\n# idle timeout, bye\n"
        assert await second.rest() == b"\n# idle timeout, bye\n"
    finally:
        await srv.close()


async def test_a_client_that_never_reads_is_dropped(control: EngineControl) -> None:
    srv = await start(control, Limits(max_pending=64 * 1024, write_timeout=0.3))
    try:
        assert srv.tcp_port is not None
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((HOST, srv.tcp_port))
        sock.setblocking(False)
        silent = Client(*await asyncio.open_connection(sock=sock))
        silent.writer.write(b"dump hosts\n" * 3000)  # megabytes of replies, never read
        other, _ = await Client.tcp(srv)
        # Generous: the silent client is dropped once the kernel's buffers for it are full,
        # after thousands of replies (seconds on a loaded machine); a bug never drops it.
        async with asyncio.timeout(60):
            while srv.session_count > 1:
                assert (await other.cmd("show vs")).startswith("www ")
        assert (await other.cmd("show vs")).startswith("www ")
    finally:
        await srv.close()


async def test_wait_timeout_does_not_block_another_session(
    server: ConsoleServer, control: EngineControl
) -> None:
    control.set_kernel("www", "web1", active=4)
    waiter, _ = await Client.tcp(server)
    other, _ = await Client.tcp(server)
    waiter.writer.write(b"wait host web1 quiescent timeout 3\n")
    started = time.monotonic()
    assert (await other.cmd("show hosts web1")).count("Proc.ActiveConn=4") == 1
    assert time.monotonic() - started < 2.5  # answered, not after the waiter's 3 s
    assert await waiter.until_prompt() == "# timeout: host web1 not quiescent after 3s\n$ "
    waiter.writer.write(b"wait host web1 up timeout 1\n")
    assert (await waiter.until_prompt()).startswith("ok: host web1 is up")


# --- fuzzing over a real socket ---------------------------------------------------------------

VALID = [
    "set host web1 off for vs www,api for reasons deploy,kernel",
    "set host web1 on in vs www reasons *",
    "set host web2 weight 10 for vs www",
    "show hosts web1 for www",
    "dump host web1",
    "config reload",
    "log level 5",
]


@st.composite
def near_miss(draw: st.DrawFn) -> bytes:
    """A valid command with one mutation, kept only if it no longer parses."""
    words = draw(st.sampled_from(VALID)).split()
    i = draw(st.integers(0, len(words) - 1))
    op = draw(st.sampled_from(["drop", "dup", "swap", "typo", "junk"]))
    if op == "drop":
        del words[i]
    elif op == "dup":
        words.insert(i, words[i])
    elif op == "swap" and i + 1 < len(words):
        words[i], words[i + 1] = words[i + 1], words[i]
    elif op == "typo":
        words[i] = words[i][:-1] + draw(st.sampled_from(["x", ",", "*", "é", "9"]))
    else:
        words.insert(i, draw(st.text(min_size=1, max_size=6).filter(lambda t: "\n" not in t)))
    line = " ".join(words)
    assume(isinstance(parse(line), ParseError))
    return line.encode("utf-8", "surrogatepass")


class Threaded:
    """A console server on its own event loop thread, for hypothesis' synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.control = self.call(self._make_control())
        limits = Limits(idle_timeout=5)
        self.server = self.call(start(self.control, limits, tcp=("127.0.0.71", 0)))
        self.port = self.server.tcp_port
        self.snap = self.control.snapshot()
        self.tried = 0

    @staticmethod
    async def _make_control() -> EngineControl:
        return EngineControl()

    def call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)  # type: ignore[arg-type]

    def close(self) -> None:
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    """Read until `marker` or end of stream."""
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture(scope="module")
def threaded() -> Iterator[Threaded]:
    server = Threaded()
    yield server
    print(f"\nconsole fuzz: {server.tried} inputs tried over the socket")
    server.close()


def talk(server: Threaded, payload: bytes) -> None:
    """Send one fuzz input; the session must answer (or close), and the others keep working.

    Whether it may close is decided from the input (a line that parses as `quit`/`exit`, or ^D),
    never from the output: a session that drops on anything else must fail the test.
    """
    server.tried += 1
    closing = any(line is not None and closes_session(line) for line in lines_of(payload))
    with socket.create_connection(("127.0.0.71", server.port), timeout=10) as sock:
        recv_until(sock, b"\n$ ")
        sock.sendall(payload + b"\ndump status\n")
        try:
            out = recv_until(sock, b"4242")
        except ConnectionResetError:
            out = b""  # closed with the later lines unread: only after a quit or ^D
            assert closing, f"connection reset on {payload!r}"
        if closing:
            # It said goodbye (text or JSON) and answered nothing after it.
            assert out == b"" or b"bye" in out, (payload, out)
            assert b"4242" not in out.partition(b"bye")[2], (payload, out)
        else:
            assert b"4242" in out, f"no answer to dump status after {payload!r}: {out!r}"
    with socket.create_connection(("127.0.0.71", server.port), timeout=10) as other:
        recv_until(other, b"\n$ ")
        other.sendall(b"show vs\n")
        assert b"www tcp:192.0.2.1:80" in recv_until(other, b"Sorry=off\n")
    assert server.control.submitted == []
    assert server.control.snapshot() == server.snap


FUZZ = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(payload=st.binary(max_size=300).filter(lambda b: b"wait" not in b.lower()))
def test_fuzz_random_bytes(threaded: Threaded, payload: bytes) -> None:
    talk(threaded, payload)


@FUZZ
@given(payload=near_miss())
def test_fuzz_near_miss_commands(threaded: Threaded, payload: bytes) -> None:
    talk(threaded, payload)


@FUZZ
@given(payload=st.lists(near_miss(), min_size=2, max_size=5))
def test_fuzz_pipelined_near_misses(threaded: Threaded, payload: list[bytes]) -> None:
    talk(threaded, b"\n".join(payload))


# --- the client: `ipvswm ctl` and `ipvswm console` ----------------------------------------------


def write_config(tmp_path: Path, sock: str, port: int) -> str:
    path = tmp_path / "ipvswm.conf"
    path.write_text(
        f"Management.Socket.Path={sock}  # the Unix socket\n"
        f"Management.Socket.IP=127.0.0.72\nManagement.Socket.Port={port}\n"
    )
    return str(path)


@pytest.fixture
async def both(tmp_path: Path, control: EngineControl) -> AsyncIterator[tuple[ConsoleServer, str]]:
    """A server on a Unix socket and TCP, and a config file naming both."""
    sock = str(tmp_path / "ctl.sock")
    srv = await start(control, tcp=("127.0.0.72", 0), unix_path=sock)
    assert srv.tcp_port is not None
    yield srv, write_config(tmp_path, sock, srv.tcp_port)
    await srv.close()


async def ctl(config: str, line: str, json_out: bool = False) -> int:
    return await asyncio.to_thread(ctl_main, config, line.split(), json_out)


async def test_ctl_exit_codes_and_output(
    both: tuple[ConsoleServer, str], control: EngineControl, capsys: pytest.CaptureFixture[str]
) -> None:
    _, config = both
    assert await ctl(config, "show vs www") == 0
    out, err = capsys.readouterr()
    assert out.startswith("www tcp:192.0.2.1:80 ") and "sorry server: sorry" in out
    assert err == ""
    assert await ctl(config, "set host web1 off for reason deploy") == 0
    assert capsys.readouterr().out == "ok: host web1: off (reasons deploy)\n"
    assert await ctl(config, "set host nosuch off") == 1
    assert capsys.readouterr().err == "# no such host 'nosuch'\n"
    assert await ctl(config, "sett host web1 off") == 2
    assert capsys.readouterr().err.startswith("??? ")
    control.set_kernel("api", "web1", active=2)
    assert await ctl(config, "wait host web1 quiescent timeout 0.2") == 3
    assert capsys.readouterr().err == "# timeout: host web1 not quiescent after 0.2s\n"
    assert await ctl(config, "show hosts web1", json_out=True) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["data"]["hosts"][0]["total_active"] == 2
    assert reply["command"] == "show hosts web1"


async def test_ctl_falls_back_to_tcp_and_reports_unreachable(
    tmp_path: Path, control: EngineControl, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = await start(control, tcp=("127.0.0.72", 0))
    try:
        assert srv.tcp_port is not None
        config = write_config(tmp_path, str(tmp_path / "absent.sock"), srv.tcp_port)
        assert await ctl(config, "show checks") == 0
        assert capsys.readouterr().out.startswith("127.0.0.2:80 http://")
    finally:
        await srv.close()
    assert await ctl(config, "show checks") == 2
    assert capsys.readouterr().err.startswith("ipvswm: cannot reach the daemon: ")
    assert await ctl(str(tmp_path / "missing.conf"), "show vs") == 2
    assert await ctl(config, " ") == 2


async def test_console_with_piped_stdin(
    both: tuple[ConsoleServer, str],
    control: EngineControl,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, config = both
    script = "show vs\n\nset host web2 off\nformat json\nshow host nosuch\nquit\nshow vs\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    assert await asyncio.to_thread(console_main, config) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("www tcp:")
    assert "ok: host web2: off (reasons default)" in lines
    assert lines[-3] == "format json"
    assert json.loads(lines[-2])["lines"] == ["# no such host 'nosuch'"]
    assert json.loads(lines[-1])["close"] is True  # nothing is sent after quit
    assert control.submitted == [SetHostOff("web2")]
