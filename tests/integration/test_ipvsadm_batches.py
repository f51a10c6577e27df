"""Large `ipvsadm -R` batches (issue 16 goal 2): the call bound grows with the batch, and a very
large batch is split into calls of at most MAX_BATCH_OPS, in order."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ipvswm.config.parser import parse_text
from ipvswm.kernel.ipvsadm import MAX_BATCH_OPS
from ipvswm.kernel.ipvsadm import OPS_PER_TIMEOUT
from ipvswm.kernel.ipvsadm import IpvsadmBackend
from ipvswm.kernel.ipvsadm import batch_timeout
from ipvswm.kernel.table import Destination
from ipvswm.kernel.table import DestKey
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import Protocol
from ipvswm.kernel.table import ServiceKey

pytestmark = pytest.mark.integration

VIP = ServiceKey(Protocol.TCP, "2001:db8::10", 80)


def edits(n: int) -> list[EditDestination]:
    return [
        EditDestination(VIP, Destination(DestKey(f"2001:db8::1:{i:x}", 80), weight=1 + i % 7))
        for i in range(n)
    ]


def fake_ipvsadm(tmp_path: Path, pause: float) -> tuple[Path, Path]:
    """An ipvsadm that logs each batch's lines (first and count) and takes `pause` s."""
    log = tmp_path / "batches.log"
    binary = tmp_path / "ipvsadm"
    binary.write_text(
        "#!/bin/sh\n"
        f'input=$(cat); printf "%s %s\\n" "$(printf "%s\\n" "$input" | wc -l)"'
        f' "$(printf "%s\\n" "$input" | head -n 1 | cut -d" " -f5)" >> {log}\n'
        f"sleep {pause}\n"
    )
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return binary, log


def test_the_bound_is_the_timeout_per_thousand_operations_begun() -> None:
    assert batch_timeout(5.0, 1) == 5.0
    assert batch_timeout(5.0, OPS_PER_TIMEOUT) == 5.0
    assert batch_timeout(5.0, OPS_PER_TIMEOUT + 1) == 10.0
    assert batch_timeout(2.0, MAX_BATCH_OPS) == 2.0 * MAX_BATCH_OPS / OPS_PER_TIMEOUT


async def test_a_batch_slower_than_the_timeout_is_not_killed_when_its_size_allows(
    tmp_path: Path,
) -> None:
    # 1.5 s for 10,000 lines: over the 1 s of IPVS.Timeout (the fixed bound killed it), well
    # within the 10 s the batch's size gives.
    binary, log = fake_ipvsadm(tmp_path, 1.5)
    backend = IpvsadmBackend(str(binary), timeout=1.0)
    result = await backend.apply(edits(MAX_BATCH_OPS))
    assert result.ok, result.errors[:3]
    assert log.read_text().split()[0] == str(MAX_BATCH_OPS)


async def test_a_very_large_batch_is_split_in_order(tmp_path: Path) -> None:
    binary, log = fake_ipvsadm(tmp_path, 0)
    backend = IpvsadmBackend(str(binary))
    ops = edits(2 * MAX_BATCH_OPS + 5)
    result = await backend.apply(ops)
    assert result.ok and result.ops == len(ops)
    calls = [line.split() for line in log.read_text().splitlines()]
    assert [int(count) for count, _ in calls] == [MAX_BATCH_OPS, MAX_BATCH_OPS, 5]
    firsts = [ops[0], ops[MAX_BATCH_OPS], ops[2 * MAX_BATCH_OPS]]
    assert [first for _, first in calls] == [f"[{op.destination.key.address}]:80" for op in firsts]


def test_ipvs_timeout_is_a_checked_option() -> None:
    body = "! www 192.0.2.1:80 /health\nweb 127.0.0.1:80 www=1\n"
    ok = parse_text("IPVS.Timeout=12\n" + body)
    assert ok.config is not None and ok.config.options.ipvs_timeout == 12.0
    assert parse_text(body).config.options.ipvs_timeout == 5.0  # type: ignore[union-attr]
    bad = parse_text("IPVS.Timeout=0\n" + body)
    assert bad.config is None
    assert any("IPVS.Timeout" in m for m in bad.messages())
