"""No client can lock the operators out of the console (issue 10 item 7), over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ipvswm.console.command_types import MAX_WAIT_TIMEOUT
from ipvswm.console.command_types import ParseError
from ipvswm.console.command_types import Wait
from ipvswm.console.command_types import WaitFor
from ipvswm.console.grammar import parse
from ipvswm.console.server import ConsoleServer
from ipvswm.console.server import Limits
from tests.unit.console_control import EngineControl

pytestmark = pytest.mark.integration

HOST = "127.0.0.71"


@contextlib.asynccontextmanager
async def serving(
    control: EngineControl, limits: Limits, unix_path: str | None = None
) -> AsyncIterator[ConsoleServer]:
    server = ConsoleServer(
        control, tcp=(HOST, 0), unix_path=unix_path, fifo_path=None, limits=limits
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def greeted(
    opened: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, _ = opened
    await asyncio.wait_for(reader.readuntil(b"\n$ "), 10)
    return opened


async def until_sessions(server: ConsoleServer, count: int) -> None:
    for _ in range(1000):  # 10 s at most: generous, the sessions end within milliseconds
        if server.session_count == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{server.session_count} sessions, not {count}")


async def test_tcp_clients_cannot_take_the_unix_sockets_slots(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")
    async with serving(EngineControl(), Limits(max_sessions=3), unix_path=path) as server:
        assert server.tcp_port is not None
        held = [await greeted(await asyncio.open_connection(HOST, server.tcp_port))]
        held += [await greeted(await asyncio.open_connection(HOST, server.tcp_port))]
        held += [await greeted(await asyncio.open_connection(HOST, server.tcp_port))]
        reader, writer = await asyncio.open_connection(HOST, server.tcp_port)
        assert await asyncio.wait_for(reader.read(), 10) == b"# too many console sessions\n"
        writer.close()
        # every TCP slot is taken: the operator on the Unix socket still gets in
        reader, writer = await greeted(await asyncio.open_unix_connection(path))
        writer.write(b"show vs\n")
        assert (await asyncio.wait_for(reader.readuntil(b"\n$ "), 10)).startswith(b"www ")
        writer.close()
        for _, held_writer in held:
            held_writer.close()


async def test_a_line_trickled_byte_by_byte_is_cut_at_its_deadline() -> None:
    # The idle timeout alone never fires for a client sending a byte more often than it.
    limits = Limits(idle_timeout=600, line_timeout=1.0)
    async with serving(EngineControl(), limits) as server:
        assert server.tcp_port is not None
        reader, writer = await greeted(await asyncio.open_connection(HOST, server.tcp_port))
        closed = asyncio.ensure_future(reader.read())
        async with asyncio.timeout(30):  # generous: the deadline is 1 s
            for byte in b"show vs and more and more and more and more":
                if closed.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.wait({closed}, timeout=0.2)
            farewell = await closed
        assert farewell == b"\n# a line must be complete within 1s of its first byte, bye\n"
        await until_sessions(server, 0)
        writer.close()


async def test_whole_lines_are_not_cut_by_the_line_deadline() -> None:
    async with serving(EngineControl(), Limits(idle_timeout=600, line_timeout=0.3)) as server:
        assert server.tcp_port is not None
        reader, writer = await greeted(await asyncio.open_connection(HOST, server.tcp_port))
        for _ in range(3):  # each line complete at once, with pauses longer than the deadline
            await asyncio.sleep(0.4)
            writer.write(b"show vs\n")
            assert (await asyncio.wait_for(reader.readuntil(b"\n$ "), 10)).startswith(b"www ")
        writer.close()


async def test_a_wait_whose_client_has_gone_frees_its_slot() -> None:
    control = EngineControl()
    control.set_kernel("www", "web1", active=4)  # never quiescent
    async with serving(control, Limits()) as server:
        assert server.tcp_port is not None
        for _ in range(5):
            _, writer = await greeted(await asyncio.open_connection(HOST, server.tcp_port))
            writer.write(b"wait host web1 quiescent timeout 3600\n")
            await writer.drain()
            await asyncio.sleep(0)
            writer.close()
        await until_sessions(server, 0)  # not after the hour of their timeouts


async def test_a_wait_keeps_going_while_its_client_sends_more() -> None:
    control = EngineControl()
    control.set_kernel("www", "web1", active=4)
    async with serving(control, Limits()) as server:
        assert server.tcp_port is not None
        reader, writer = await greeted(await asyncio.open_connection(HOST, server.tcp_port))
        writer.write(b"wait host web1 quiescent timeout 60\nshow vs\n")
        await asyncio.sleep(0.3)
        control.set_kernel("www", "web1", active=0)
        first = await asyncio.wait_for(reader.readuntil(b"\n$ "), 10)
        assert first.startswith(b"ok: host web1 is quiescent"), first
        second = await asyncio.wait_for(reader.readuntil(b"\n$ "), 10)
        assert second.startswith(b"www "), second  # the line read ahead was kept
        writer.close()


def test_wait_timeouts_are_capped_at_a_day() -> None:
    ok = parse("wait host web1 up timeout 86400")
    assert ok == Wait("web1", WaitFor.UP, None, MAX_WAIT_TIMEOUT)
    refused = parse("wait host web1 up timeout 999999999")
    assert isinstance(refused, ParseError)
    assert refused.message == "timeout: at most 86400 seconds (1 day)"
