"""The netlink backend vs ipvsadm at N destinations, on the real kernel in the VM (issue 11 §4).

    .venv/bin/python bench/vm/netlink.py [--dests 2000] [--services 20]

Outside the VM it boots one (tests/kernel/vm.py) and runs itself inside; inside (IPVSWM_IN_VM=1)
it loads ip_vs and, on one table of N NAT destinations spread over --services services, times:
- `netlink_apply_N`: the netlink backend adding every service and destination to an empty table;
- `ipvsadm_restore_N`: `ipvsadm -R` of the same operations (their `-R` lines), from empty;
- `netlink_read_N`: the netlink backend reading the whole table;
- `ipvsadm_save_N`: `ipvsadm -S -n`; `ipvsadm_backend_read_N`: the ipvsadm backend's whole read
  (`-S -n`, `-L -n --thresholds`, parsing);
- `netlink_edit_N` / `ipvsadm_edit_N`: every destination's weight edited (SET / `-R` of `-e`).
Each figure is the median of --repeat runs; `*_ratio` is netlink's time over ipvsadm's (<= 1:
netlink no slower). Not in `make bench` (it boots a VM; minutes under TCG).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.ipvsadm_format import render_line
from ipvswm.kernel.netlink import NetlinkBackend
from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import Forward
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import Service
from ipvswm.kernel.table import ServiceKey

REPO = Path(__file__).resolve().parents[2]
IPVSADM = "/usr/sbin/ipvsadm"


def table_ops(dests: int, services: int) -> list[Op]:
    """AddService/AddDestination ops for `dests` destinations over `services` services."""
    ops: list[Op] = []
    per = max(1, dests // services)
    for s in range(services):
        key = ServiceKey(Protocol.TCP, f"192.0.2.{s + 1}", 80)
        ops.append(AddService(Service(key, "wrr")))
        for d in range(per):
            n = s * per + d
            dest = DestKey(f"198.51.{100 + n // 250}.{n % 250 + 1}", 8080)
            ops.append(AddDestination(key, Destination(dest, Forward.MASQ, 1 + n % 100)))
    return ops


def edits(ops: list[Op]) -> list[Op]:
    """Every destination's weight, plus one."""
    return [
        EditDestination(op.service, replace(op.destination, weight=op.destination.weight + 1))
        for op in ops
        if isinstance(op, AddDestination)
    ]


def clear() -> None:
    subprocess.run([IPVSADM, "-C"], check=True)  # noqa: S603 (a fixed binary, list arguments)


def restore(lines: list[str]) -> None:
    batch = "".join(f"{x}\n" for x in lines)
    subprocess.run([IPVSADM, "-R"], input=batch, text=True, check=True)  # noqa: S603 (fixed binary)


def timed(work: Callable[[], object], before: Callable[[], object] | None, repeat: int) -> float:
    """The median wall time of `work` over `repeat` runs, `before` run untimed before each."""
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def inside(dests: int, services: int, repeat: int) -> int:
    """Measure (in the VM) and print the figures."""
    subprocess.run(["modprobe", "ip_vs"], check=True)
    subprocess.run(["modprobe", "ip_vs_wrr"], check=True)
    ops = table_ops(dests, services)
    changes = edits(ops)
    n = len(changes)
    nl = NetlinkBackend()
    ipvsadm = IpvsadmBackend(IPVSADM, 600.0)

    def nl_apply(batch: list[Op]) -> None:
        result = asyncio.run(nl.apply(batch))
        assert result.ok, result.errors[:3]

    figures = {
        f"netlink_apply_{n}": timed(lambda: nl_apply(ops), clear, repeat),
        f"ipvsadm_restore_{n}": timed(
            lambda: restore([render_line(o) for o in ops]), clear, repeat
        ),
    }
    read = asyncio.run(nl.read())
    assert sum(len(e.destinations) for e in read.services.values()) == n
    figures[f"netlink_read_{n}"] = timed(lambda: asyncio.run(nl.read()), None, repeat)
    figures[f"ipvsadm_save_{n}"] = timed(
        lambda: subprocess.run([IPVSADM, "-S", "-n"], capture_output=True, check=True),  # noqa: S603
        None,
        repeat,
    )
    figures[f"ipvsadm_backend_read_{n}"] = timed(lambda: asyncio.run(ipvsadm.read()), None, repeat)
    figures[f"netlink_edit_{n}"] = timed(lambda: nl_apply(changes), None, repeat)
    figures[f"ipvsadm_edit_{n}"] = timed(
        lambda: restore([render_line(o) for o in changes]), None, repeat
    )
    clear()
    print(f"# {n} destinations in {services} services, median of {repeat}, kernel {os.uname()[2]}")
    for name, seconds in figures.items():
        print(f"{name} = {seconds:.3f} s")
    for what, netlink, other in (
        ("apply", f"netlink_apply_{n}", f"ipvsadm_restore_{n}"),
        ("read", f"netlink_read_{n}", f"ipvsadm_save_{n}"),
        ("edit", f"netlink_edit_{n}", f"ipvsadm_edit_{n}"),
    ):
        print(f"netlink_{what}_ratio = {figures[netlink] / figures[other]:.2f} x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dests", type=int, default=2000)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.environ.get("IPVSWM_IN_VM") == "1":
        return inside(args.dests, args.services, args.repeat)
    own = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    vm = [sys.executable, str(REPO / "tests" / "kernel" / "vm.py"), "--cwd", str(REPO), "--"]
    return subprocess.run([*vm, *own], check=False).returncode  # noqa: S603 (our interpreter, our files)


if __name__ == "__main__":
    sys.exit(main())
