"""The generic record codec of the state store: a state dataclass as one JSON object and back.

Every field is stored, so fields added to the state dataclasses later need no schema change:
unknown fields are ignored on load and missing or unreadable ones fall back to their defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import types
import typing
from typing import Any
from typing import TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


class StoreError(Exception):
    """The state database cannot be used (missing directory, unreadable, corrupt, too new)."""


class _BadValue(Exception):
    """A stored value does not fit its field's type (the field falls back to its default)."""


def _encode(value: Any) -> Any:
    """A JSON-ready form of a field value: enums by value, sets as sorted lists."""
    if isinstance(value, enum.Enum):
        return _encode(value.value)
    if isinstance(value, frozenset | set):
        items = [_encode(item) for item in value]
        try:
            return sorted(items)
        except TypeError:  # mixed types: any stable order will do
            return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, tuple | list):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _encode(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _fields_to_dict(value)
    return value


def _fields_to_dict(record: Any) -> dict[str, Any]:
    return {f.name: _encode(getattr(record, f.name)) for f in dataclasses.fields(record)}


def encode_record(record: Any) -> str:
    """One dataclass record as a JSON object of all its fields."""
    return json.dumps(_fields_to_dict(record), sort_keys=True, separators=(",", ":"))


_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _hints_cache.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _hints_cache[cls] = hints
    return hints


def _decode(tp: Any, raw: Any) -> Any:
    """The value of type `tp` stored as `raw`; raises _BadValue when it does not fit."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if raw is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, raw)
            except _BadValue:
                continue
        raise _BadValue(f"{raw!r} is not a {tp}")
    if origin in (frozenset, set, tuple, list):
        if not isinstance(raw, list):
            raise _BadValue(f"{raw!r} is not a list")
        args = typing.get_args(tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(raw):
                raise _BadValue(f"{raw!r} does not have {len(args)} items")
            return tuple(_decode(arg, item) for arg, item in zip(args, raw, strict=True))
        item_type = args[0] if args else Any
        return origin(_decode(item_type, item) for item in raw)
    if origin is dict:
        if not isinstance(raw, dict):
            raise _BadValue(f"{raw!r} is not an object")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        return {_decode(key_type, k): _decode(value_type, v) for k, v in raw.items()}
    if tp is Any:
        return raw
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            try:
                return tp(raw)
            except ValueError:
                raise _BadValue(f"{raw!r} is not a {tp.__name__}") from None
        if tp is bool:
            if isinstance(raw, bool):
                return raw
        elif tp is float:
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                return float(raw)
        elif tp is int:
            if isinstance(raw, int) and not isinstance(raw, bool):
                return raw
        elif tp is str:
            if isinstance(raw, str):
                return raw
        elif dataclasses.is_dataclass(tp):
            if isinstance(raw, dict):
                return _record_from_dict(tp, raw, "")
        else:
            raise _BadValue(f"cannot decode type {tp}")
        raise _BadValue(f"{raw!r} is not a {tp.__name__}")
    raise _BadValue(f"cannot decode type {tp}")


def _record_from_dict(cls: type[R], data: dict[str, Any], where: str) -> R:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue  # written by an older version: the default applies
        try:
            kwargs[f.name] = _decode(hints[f.name], data[f.name])
        except _BadValue as exc:
            log.warning("state %s: field %s unreadable (%s); using its default", where, f.name, exc)
    return cls(**kwargs)


def decode_record(cls: type[R], text: str, where: str = "") -> R:
    """A record of `cls` from its JSON object; unknown fields are ignored, missing ones default."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"state record {where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StoreError(f"state record {where} is not a JSON object")
    return _record_from_dict(cls, data, where)
