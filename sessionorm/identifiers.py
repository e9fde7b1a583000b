"""SQL identifiers, quoted the one way both engines read them."""

from __future__ import annotations


def q(name: str) -> str:
    """A quoted identifier: embedded quotes doubled; camelCase keeps its case on PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'
