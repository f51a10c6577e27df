"""The pure decision engine (SPEC §4).

Its modules, bottom up: `state` (records), `rules` (one pair), `layout` (one config indexed),
`admin` and `kept` (operator state), `agent`, `depool`, `sorry`, `builder`/`outputs` (a step),
`core` (the working state), `reload` (a new config), `engine` (the public `Engine`).
"""

from ipvswm.engine.engine import Engine

__all__ = ["Engine"]
