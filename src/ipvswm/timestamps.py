"""The one way every reader shows a wall-clock time (issue 15 item 11): ISO 8601, UTC, `Z`.

`show`, `dump` (console and `ipvswm dump`) and the alert mails all print times through
`utc_text`, so an operator compares like with like: `2026-12-02T00:41:25.123Z`. JSON replies keep
epoch seconds (numbers are what programs want); the log file keeps its own line format.
"""

from __future__ import annotations

import datetime

TIME_SUFFIXES = ("_at", "_since", "_started", "_ended", "_deadline")
"""Record fields whose float value is a wall-clock time (e.g. `enabled_at`, `ramp_deadline`)."""

TIME_NAMES = frozenset({"started", "last_resync", "forget_at"})
"""Other field names that hold a wall-clock time (`dump status`)."""


def utc_text(stamp: float | None) -> str:
    """A wall-clock time (epoch seconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`, or `-` for none."""
    if stamp is None:
        return "-"
    try:
        moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"(not a valid time: {stamp:g})"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def is_time_field(name: str) -> bool:
    """Whether a record field of that name holds a wall-clock time."""
    return name.endswith(TIME_SUFFIXES) or name in TIME_NAMES
