"""What a parse gives: a config, or the errors found, each at its line (SPEC §2)."""

from __future__ import annotations

from dataclasses import dataclass

from ipvswm.config.model import Config

MAX_ERRORS = 100
"""Errors kept (the first by line); the rest are only counted: a garbage file of millions of
lines must not cost millions of messages in memory and in the log."""


@dataclass(frozen=True, slots=True)
class ConfigError:
    """One problem in a config file, at a line (0 when it concerns the whole file)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ParseResult:
    """A parsed config, or (config None) the first MAX_ERRORS errors and how many more there are."""

    config: Config | None
    errors: tuple[ConfigError, ...]
    more: int = 0  # errors found beyond those kept

    def messages(self) -> list[str]:
        """Every kept error as `FILE:LINE: message`, then `... and N more error(s)` if any."""
        lines = [str(e) for e in self.errors]
        if self.more:
            lines.append(
                f"... and {self.more} more error(s) (only the first {len(self.errors)} shown)"
            )
        return lines

    def error_count(self) -> int:
        """How many errors were found in all."""
        return len(self.errors) + self.more
