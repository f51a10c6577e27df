"""Persistent engine state in SQLite (SPEC §6): the database and its record codec."""

from __future__ import annotations

from ipvswm.store.database import Store
from ipvswm.store.database import dump_file
from ipvswm.store.database import format_dump
from ipvswm.store.records import StoreError
from ipvswm.store.records import decode_record
from ipvswm.store.records import encode_record

__all__ = ["Store", "StoreError", "decode_record", "dump_file", "encode_record", "format_dump"]
