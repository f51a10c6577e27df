"""How an admin command ends: applied (with a note for the operator) or refused (with why).

The one vocabulary between the engine, the daemon and the console: the engine's refusal is the
message the operator reads, and nothing tells the two apart by a leading `#`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Applied:
    """The command's state change is committed; `note` tells the operator something about it
    (e.g. "still off (kernel)", "nothing to do")."""

    note: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """Nothing was changed; `reason` says why, in the operator's words (no leading `#`)."""

    reason: str

    def __post_init__(self) -> None:
        if self.reason.startswith("#"):  # the console adds the mark; a reason never carries it
            object.__setattr__(self, "reason", self.reason.lstrip("# "))


Answer = Applied | Refused
