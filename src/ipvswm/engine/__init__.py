"""The pure decision engine (SPEC §4)."""

from ipvswm.engine.engine import Engine

__all__ = ["Engine"]
