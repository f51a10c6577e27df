"""Logging per SPEC §8 (placeholder constants; the full module is being written)."""

CHECK_STATUS = 19  # check status changes: shown at Log.Level >= 5
CHECK_RESULT = 18  # every check result: shown at Log.Level >= 6
KERNEL_OP = 10  # every kernel op and its output: shown at Log.Level >= 10
