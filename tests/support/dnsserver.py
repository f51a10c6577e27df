"""A real DNS responder on loopback UDP for dns-check tests, built with dnspython.

Modes (set at run time, applying to the next query):
  answer     NOERROR with one A (or AAAA) record for any name
  nxdomain   NXDOMAIN, no answer
  nodata     NOERROR, no answer
  servfail   SERVFAIL
  silent     reads the query, never answers
  garbage    answers bytes that are no DNS message
  wrong-id   a well-formed answer with another ID
  closed     the socket is closed: queries meet an ICMP port unreachable

Every query read is recorded (`queries`: the parsed messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType
from typing import Self

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

MODES = ("answer", "nxdomain", "nodata", "servfail", "silent", "garbage", "wrong-id", "closed")


class DnsResponder(asyncio.DatagramProtocol):
    """A UDP DNS server on one loopback address (port 0: any free port)."""

    def __init__(self, address: str, port: int = 0, mode: str = "answer") -> None:
        self.address = address
        self.port = port
        self.mode = mode
        self.queries: list[dns.message.Message] = []
        self._transport: asyncio.DatagramTransport | None = None
        self._changed = asyncio.Event()
        self._lost = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.address, self.port), family=family
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    async def stop(self) -> None:
        """Close the socket and wait until it is closed (the port then answers ICMP)."""
        if self._transport is not None:
            self._lost = asyncio.Event()
            self._transport.close()
            self._transport = None
            await self._lost.wait()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    async def set_mode(self, mode: str) -> None:
        """Switch mode; `closed` closes the socket, another mode reopens it on the same port."""
        assert mode in MODES, mode
        self.mode = mode
        if mode == "closed":
            await self.stop()
        elif self._transport is None:
            await self.start()

    async def wait_queries(self, n: int, timeout: float = 5.0) -> list[dns.message.Message]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while len(self.queries) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.queries[:n]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        self.queries.append(query)
        self._changed.set()
        reply = self._reply(query)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def _reply(self, query: dns.message.Message) -> bytes | None:
        mode = self.mode
        if mode == "silent":
            return None
        if mode == "garbage":
            return b"\x00\x01 this is no dns message"
        response = dns.message.make_response(query)
        if mode == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif mode in ("answer", "wrong-id"):
            question = query.question[0]
            rdtype = question.rdtype
            value = "2001:db8::53" if rdtype == dns.rdatatype.AAAA else "192.0.2.53"
            if rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, value))
        if mode == "wrong-id":
            response.id = (query.id + 1) % 65536
        return response.to_wire()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            await self.stop()
