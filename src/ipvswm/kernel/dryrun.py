"""The `dry-run` backend: an in-memory table with the kernel's semantics; logs every op."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ipvswm.kernel.backend import ApplyResult
from ipvswm.kernel.backend import FailureKind
from ipvswm.kernel.backend import OpError
from ipvswm.kernel.ipvsadm_format import render_line
from ipvswm.kernel.simulate import apply_ops_report
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Table

log = logging.getLogger(__name__)


class DryRunBackend:
    """Keeps the table in memory; what ipvsadm would be told is logged at INFO."""

    name = "dry-run"

    def __init__(self, initial: Table | None = None) -> None:
        self.table = initial if initial is not None else Table()
        self.applied = 0  # ops applied without refusal, for tests and the demo

    async def read(self) -> Table:
        """The in-memory table."""
        return self.table

    async def apply(self, ops: Sequence[Op]) -> ApplyResult:
        """Apply ops like `ipvsadm -R`: refused ops are reported, the rest applied."""
        for op in ops:
            log.info("dry-run: %s", render_line(op))
        self.table, refusals = apply_ops_report(self.table, ops)
        for refusal in refusals:
            log.info("dry-run: refused %s: %s", render_line(refusal.op), refusal.message)
        self.applied += len(ops) - len(refusals)
        errors = tuple(OpError(r.op, FailureKind.KERNEL, r.message) for r in refusals)
        return ApplyResult(len(ops), errors)
