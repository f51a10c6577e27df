"""How a config maps onto the kernel's table: a VS's service key, a pair's destination port, the
forwarding method, a VS's sorry server. Pure; the engine builds its desired table with it, and
every reader that finds a pair or a sorry server in the kernel (views, console, demo) uses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ipvswm.config.model import Config
from ipvswm.config.model import Host
from ipvswm.config.model import Method
from ipvswm.config.model import VirtualService
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey

FORWARD = {Method.NAT: Forward.MASQ, Method.DR: Forward.ROUTE, Method.TUN: Forward.TUNNEL}
"""The kernel's forwarding method of each configured method."""


@dataclass(frozen=True, slots=True)
class SorryTarget:
    """Where a VS's sorry server is: a host (by tag) or the fallback address."""

    label: str  # the host tag, or the fallback title (else its IP)
    dest: DestKey  # where the kernel holds it (dr/tun: on the VS port)
    port: int  # its configured port (its own, else the VS's real-server port)


def service_key(vs: VirtualService) -> ServiceKey:
    """The kernel identity of a VS."""
    return ServiceKey(Protocol(vs.proto.value), vs.address, vs.port)


def dest_port(vs: VirtualService, port: int) -> int:
    """With dr/tun the kernel forces the destination port to the VS port; follow it, or the
    reconciler would fight the kernel forever."""
    return port if vs.method is Method.NAT else vs.port


def resolve_sorry(
    config: Config, vs: VirtualService, hosts: Mapping[str, Host] | None = None
) -> SorryTarget | None:
    """The VS's `sorry_server` host, else SorryServer.Default, else the fallback IP, else none.

    A sorry server of the other address family than the VS is skipped (IPVS cannot mix them).
    `hosts` (tag -> host) saves a scan of the config when the caller has it.
    """
    opts = config.options
    for tag in (vs.sorry_server, opts.sorry_server_default):
        host = (hosts.get(tag) if hosts is not None else config.host(tag)) if tag else None
        if host is not None and _same_family(host.address, vs.address):
            port = host.port if host.port is not None else vs.rs_port
            return SorryTarget(host.tag, DestKey(host.address, dest_port(vs, port)), port)
    ip = opts.sorry_server_fallback_ip
    if ip and _same_family(ip, vs.address):
        label = opts.sorry_server_fallback_title or ip
        return SorryTarget(label, DestKey(ip, dest_port(vs, vs.rs_port)), vs.rs_port)
    return None


def _same_family(a: str, b: str) -> bool:
    return (":" in a) == (":" in b)
