"""Choosing a kernel backend by name (`IPVS.Backend`, `ipvswm run --backend`)."""

from __future__ import annotations

from ipvswm.kernel.backend import KernelBackend
from ipvswm.kernel.dryrun import DryRunBackend
from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.netlink import NetlinkBackend

BACKENDS = ("ipvsadm", "netlink", "dry-run")


def make_backend(name: str, ipvsadm: str, timeout: float = 5.0) -> KernelBackend:
    """The backend called `name`; `ipvsadm` is the binary for the ipvsadm backend."""
    if name == "ipvsadm":
        return IpvsadmBackend(ipvsadm, timeout)
    if name == "netlink":
        return NetlinkBackend()
    if name == "dry-run":
        return DryRunBackend()
    raise ValueError(f"unknown IPVS backend {name!r} (expected one of {', '.join(BACKENDS)})")
