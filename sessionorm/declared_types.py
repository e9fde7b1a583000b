"""Declared column types and defaults, as SQLite and PostgreSQL spell them."""

from __future__ import annotations

import re

PG_CAST = re.compile(r"::[\w ]+$")  # PostgreSQL's trailing cast of a default: 'active'::text


def affinity(declared: str) -> str:
    """SQLite's type affinity of a declared type (section 3.1 of the datatype docs)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(k in t for k in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if not t or "BLOB" in t:
        return "BLOB"
    if any(k in t for k in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def without_cast(default: str) -> str:
    """A default as PostgreSQL shows it, without its trailing `::type` ('active'::text -> 'active')."""
    return PG_CAST.sub("", default)
