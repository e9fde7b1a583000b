"""SQLite's catalog: `sqlite_master` and the table pragmas."""

from __future__ import annotations

import re

from ..declared_types import affinity
from ..identifiers import q
from .catalog import Catalog, Column, ForeignKey, Table

KINDS = {"INTEGER": "integer", "TEXT": "text", "BLOB": "blob", "REAL": "real"}  # by affinity
CHECK = re.compile(r"\bCHECK\s*\(", re.I)


def sqlite_kind(declared: str) -> str:
    """How a SQLite column's values are carried, from its declared type (SQLite's affinity rules,
    plus BOOLEAN: 0/1 in SQLite, boolean in PostgreSQL); "" for none of them."""
    if "BOOL" in declared.upper():
        return "boolean"
    if not declared:
        return ""  # no type declared: a value's type is not the column's
    return KINDS.get(affinity(declared), "")  # NUMERIC affinity: neither


def plain_sqlite_index(keys: list[tuple]) -> bool:
    """Whether an index's key columns (PRAGMA index_xinfo rows) are all plain: no expression,
    ascending, binary collation."""
    return not any(r[1] < 0 or r[3] or r[4] != "BINARY" for r in keys)


def ddl_problems(sql: str) -> list[str]:
    """What a table's CREATE statement holds that no plain table definition says."""
    problems = []
    if re.match(r"\s*CREATE\s+VIRTUAL\b", sql, re.I):
        problems.append("it is a virtual table")
    if re.search(r"\)\s*(?:STRICT|WITHOUT\s+ROWID)\b", sql, re.I):
        problems.append("it is STRICT or WITHOUT ROWID")
    return problems


class SqliteCatalog(Catalog):
    def table_names(self) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            )
        ]

    def other_objects(self) -> list[str]:
        return [
            f"{kind} {name}"
            for kind, name in self.rows(
                "SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger') ORDER BY 1, 2"
            )
        ]

    def non_tables(self, names: list[str]) -> list[tuple[str, str]]:
        marks = ", ".join("?" * len(names))
        return [
            (kind, name)
            for kind, name in self.rows(
                f"SELECT type, name FROM sqlite_master WHERE name IN ({marks}) AND type != 'table'"
                " ORDER BY name",
                tuple(names),
            )
        ]

    def table_sql(self, name: str) -> str:
        found = self.rows("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        return (found[0][0] or "") if found else ""

    def table(self, name: str) -> Table:
        sql = self.table_sql(name)
        table = self.columns(name)
        table.foreign_keys = self.foreign_keys(name)
        self.add_indexes(table)
        table.checks = [""] if CHECK.search(sql) else []
        table.problems += ddl_problems(sql)
        return table

    def columns(self, name: str) -> Table:
        """The table's columns and primary key; a generated or hidden column is a problem."""
        columns, pk, problems = [], [], []
        for _cid, col, declared, notnull, default, pk_pos, hidden in self.rows(
            f"PRAGMA table_xinfo({q(name)})"
        ):
            if hidden:
                problems.append(f"column {col} is generated or hidden")
                continue
            columns.append(Column(col, declared or "", sqlite_kind(declared or ""), bool(notnull), default))
            if pk_pos:
                pk.append((pk_pos, col))
        return Table(name, columns, tuple(c for _, c in sorted(pk)), problems=problems)

    def foreign_keys(self, name: str) -> list[ForeignKey]:
        fks: dict[int, list[tuple]] = {}
        for fid, _seq, parent, src, dst, on_update, on_delete, _match in self.rows(
            f"PRAGMA foreign_key_list({q(name)})"
        ):
            fks.setdefault(fid, []).append((parent, src, dst, on_update, on_delete))
        found = []
        for parts in fks.values():
            parent = parts[0][0]
            dests = [p[2] for p in parts]
            if any(d is None for d in dests):  # REFERENCES parent: its primary key
                dests = self.primary_key(parent)
            found.append(
                ForeignKey(tuple(p[1] for p in parts), parent, tuple(dests), parts[0][4], parts[0][3])
            )
        return found

    def primary_key(self, name: str) -> list[str]:
        return [
            r[1]
            for r in sorted(
                (r for r in self.rows(f"PRAGMA table_info({q(name)})") if r[5]), key=lambda r: r[5]
            )
        ]

    def add_indexes(self, table: Table) -> None:
        """The table's UNIQUE constraints and indexes; one that is not plain is a problem."""
        for _seq, index, unique, origin, partial in self.rows(f"PRAGMA index_list({q(table.name)})"):
            if origin == "pk":
                continue
            keys = [r for r in self.rows(f"PRAGMA index_xinfo({q(index)})") if r[5]]
            if partial or not plain_sqlite_index(keys):
                table.problems.append(
                    f"index {index} is partial, on an expression, descending or with a collation"
                )
                continue
            cols = tuple(r[2] for r in keys)
            if origin == "u":
                table.uniques.append(cols)
            else:
                table.indexes.append((index, cols, bool(unique)))

    def check_texts(self, table: str) -> list[str]:
        sql = self.table_sql(table)
        return [sql] if sql else []

    def on_delete(self, table: str, column: str) -> str | None:
        for row in self.rows(f"PRAGMA foreign_key_list({q(table)})"):
            if row[3] == column:
                return row[6]
        return None
