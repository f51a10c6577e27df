"""The daemon's own log levels (SPEC §8), as plain numbers: importing this configures nothing.

`ipvswm.logs` names them and maps `Log.Level` onto them; modules that only log at one of them
(the kernel sync, the owner) import them from here.
"""

from __future__ import annotations

CHECK_STATUS = 19  # check status changes: shown at Log.Level >= 5
CHECK_RESULT = 18  # every check result: shown at Log.Level >= 6
KERNEL_OP = 10  # every kernel op and its output: shown at Log.Level >= 10
