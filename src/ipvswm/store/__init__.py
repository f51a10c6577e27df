"""Persistent engine state in SQLite (SPEC §6): the database and its record codec."""

from __future__ import annotations

from ipvswm.store.database import Store, dump_file, format_dump
from ipvswm.store.records import StoreError, decode_record, encode_record

__all__ = ["Store", "StoreError", "decode_record", "dump_file", "encode_record", "format_dump"]
