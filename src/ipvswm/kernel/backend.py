"""The seam between the daemon and the kernel: read the table, apply operations (SPEC §5)."""

from __future__ import annotations

import enum
import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ipvswm.kernel.table import AddDestination
from ipvswm.kernel.table import AddService
from ipvswm.kernel.table import DeleteDestination
from ipvswm.kernel.table import DeleteService
from ipvswm.kernel.table import EditDestination
from ipvswm.kernel.table import EditService
from ipvswm.kernel.table import Op
from ipvswm.kernel.table import Table

# The messages ipvsadm prints for the kernel's refusals (IPVSADM.md): every backend reports a
# refusal in these words, and the simulator (kernel.simulate) refuses with them too.
SERVICE_EXISTS = "Service already exists"
NO_SCHEDULER = "Scheduler or persistence engine not found"
NO_SUCH_SERVICE = "No such service"
SERVICE_NOT_DEFINED = "Service not defined"
DEST_EXISTS = "Destination already exists"
NO_SUCH_DEST = "No such destination"
OUT_OF_RANGE = "Numerical result out of range"

# The kernel's errno for each refusal, per command, as ipvsadm words it.
_ERRNO_MESSAGES: dict[tuple[type, int], str] = {
    (AddService, errno.EEXIST): SERVICE_EXISTS,
    (AddService, errno.ENOENT): NO_SCHEDULER,
    (EditService, errno.ENOENT): NO_SCHEDULER,
    (EditService, errno.ESRCH): NO_SUCH_SERVICE,
    (DeleteService, errno.ESRCH): NO_SUCH_SERVICE,
    (AddDestination, errno.ESRCH): SERVICE_NOT_DEFINED,
    (EditDestination, errno.ESRCH): SERVICE_NOT_DEFINED,
    (DeleteDestination, errno.ESRCH): SERVICE_NOT_DEFINED,
    (AddDestination, errno.EEXIST): DEST_EXISTS,
    (EditDestination, errno.ENOENT): NO_SUCH_DEST,
    (DeleteDestination, errno.ENOENT): NO_SUCH_DEST,
    (AddDestination, errno.ERANGE): OUT_OF_RANGE,
    (EditDestination, errno.ERANGE): OUT_OF_RANGE,
}


def refusal_message(op: Op, code: int) -> str:
    """ipvsadm's words for the kernel refusing an op with this errno."""
    return _ERRNO_MESSAGES.get((type(op), code)) or os.strerror(code)


class FailureKind(enum.Enum):
    """Why a backend call failed, so the daemon can log it clearly and decide how to retry."""

    MISSING = "missing"  # the ipvsadm binary is not there / not executable
    NO_IPVS = "no-ipvs"  # "Can't initialize ipvs": no IPVS in this kernel
    ARGUMENT = "argument"  # the front end rejected an argument (a bug on our side)
    KERNEL = "kernel"  # the kernel refused an operation (e.g. "No such destination")
    TIMEOUT = "timeout"  # the call hung and was killed
    OTHER = "other"


class BackendError(Exception):
    """A backend call that failed as a whole (nothing read, or nothing known to be applied)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class OpError:
    """One operation the kernel refused, with the backend's message."""

    op: Op | None  # None when the failing line cannot be matched to an op
    kind: FailureKind
    message: str


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an apply did. After any error the caller must re-read the table before trusting it."""

    ops: int  # how many operations were sent
    errors: tuple[OpError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def must_resync(self) -> bool:
        return bool(self.errors)


class KernelBackend(Protocol):
    """A way to reach the IPVS table. Backends never decide anything: they read and apply."""

    name: str

    async def read(self) -> Table:
        """The whole current table, with connection counts. Raises BackendError."""
        ...

    async def apply(self, ops: Sequence[Op]) -> ApplyResult:
        """Apply operations in order, in one batch where the backend allows.

        Raises BackendError when nothing could be attempted (binary missing, no IPVS, timeout).
        """
        ...
