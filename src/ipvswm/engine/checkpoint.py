"""Copies of the engine's working state, to undo a step whose commit failed.

The engine's values (PairState, HostState, TargetCheck, ...) are immutable, so a copy only has
to duplicate the containers that hold them (dicts, lists, sets, and the small schedule/notice
objects), never the values, and never the Layout, which no event mutates.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from ipvswm.engine.builder import RampSchedule, StepBuilder
from ipvswm.engine.sorry import SorryNotices

T = TypeVar("T")

_HOLDERS = (RampSchedule, SorryNotices, StepBuilder)


def copy_state(value: Any) -> Any:
    """Containers copied all the way down, values shared."""
    if isinstance(value, dict):
        return {key: copy_state(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_state(item) for item in value]
    if isinstance(value, set):
        return set(value)  # elements are hashable, hence immutable here
    if isinstance(value, _HOLDERS):
        return copy_attributes(value)
    return value


def copy_attributes(obj: T) -> T:
    """A shallow copy of `obj` whose attributes are copied with `copy_state`."""
    twin = copy.copy(obj)
    for name, item in vars(obj).items():
        setattr(twin, name, copy_state(item))
    return twin
