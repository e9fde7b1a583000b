"""Report objects as JSON documents: what `--json` prints, the same fields as the Python objects.

A dataclass becomes an object of its fields and its public properties (`ok`, `rows`); a
named tuple, an object of its fields; a row (a model instance), an object of its columns by
attribute name (`session_id`, `created_at`) plus the counts the store attached
(`message_count`); datetimes ISO 8601 text; paths text; bytes `{"base64": …}`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
from typing import Any

import peewee

SIMPLE = (int, float, str, type(None), dt.datetime)  # what a store attaches to rows: counts, moments


def document(value: Any) -> Any:
    """`value` as plain JSON types (dict, list, str, int, float, bool, None)."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclass_document(value)
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: document(v) for k, v in value._asdict().items()}
    if isinstance(value, peewee.Model):
        return row_document(value)
    if isinstance(value, dict):
        return {str(k): document(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [document(v) for v in value]
    return str(value)


def dataclass_document(value: Any) -> dict[str, Any]:
    doc = {
        f.name: document(getattr(value, f.name))
        for f in dataclasses.fields(value)
        if not f.name.startswith("_")
    }
    for name in dir(type(value)):
        if not name.startswith("_") and isinstance(getattr(type(value), name), property):
            doc[name] = document(getattr(value, name))
    return doc


def row_document(row: peewee.Model) -> dict[str, Any]:
    """A row's columns by attribute name (`session_id` for its session), then what the store
    attached to it (`message_count`)."""
    doc = {
        field.object_id_name if isinstance(field, peewee.ForeignKeyField) else name: document(
            row.__data__.get(name)
        )
        for name, field in row._meta.fields.items()
    }
    for name, extra in vars(row).items():
        if not name.startswith("_") and name not in doc and isinstance(extra, SIMPLE):
            doc[name] = document(extra)
    return doc


def dumps(value: Any) -> str:
    """One line of JSON for `value` (non-ASCII kept as is)."""
    return json.dumps(document(value), ensure_ascii=False)
