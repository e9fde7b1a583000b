"""PostgreSQL's catalog: `pg_catalog`, in the connection's current schema."""

from __future__ import annotations

from ..identifiers import q
from .catalog import Catalog, Column, ForeignKey, Table

PG_KINDS = {
    "text": "text",
    "varchar": "text",
    "bpchar": "text",
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "bool": "boolean",
    "float4": "real",
    "float8": "real",
    "bytea": "blob",
}
FK_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
IN_SCHEMA = "relnamespace = current_schema()::regnamespace"


class PostgresCatalog(Catalog):
    def table_names(self) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                f"SELECT relname FROM pg_catalog.pg_class WHERE relkind IN ('r', 'p') AND {IN_SCHEMA}"
                " ORDER BY 1"
            )
        ]

    def other_objects(self) -> list[str]:
        return [
            f"{kind} {name}"
            for kind, name in self.rows(
                "SELECT CASE relkind WHEN 'S' THEN 'sequence' ELSE 'view' END, relname"
                f" FROM pg_catalog.pg_class WHERE relkind IN ('v', 'm', 'S') AND {IN_SCHEMA}"
                " UNION ALL SELECT 'trigger', t.tgname FROM pg_catalog.pg_trigger t"
                " JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                f" AND c.{IN_SCHEMA} ORDER BY 1, 2"
            )
        ]

    def tables_elsewhere(self) -> list[str]:
        """Tables (any kind of relation holding rows) in the other schemas users can make."""
        return [
            r[0]
            for r in self.rows(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relkind IN ('r', 'p', 'f', 'm') AND n.oid <> current_schema()::regnamespace"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " AND n.nspname !~ '^pg_(toast|temp_)'"
                " ORDER BY 1"
            )
        ]

    def non_tables(self, names: list[str]) -> list[tuple[str, str]]:
        return [
            (kind, name)
            for kind, name in self.rows(
                "SELECT CASE relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'"
                " WHEN 'f' THEN 'foreign table' WHEN 'S' THEN 'sequence' WHEN 'i' THEN 'index'"
                " ELSE 'relation of kind ' || relkind::text"
                f" END, relname FROM pg_catalog.pg_class WHERE {IN_SCHEMA}"
                " AND relname = ANY(%s) AND relkind NOT IN ('r', 'p') ORDER BY relname",
                (names,),
            )
        ]

    def table(self, name: str) -> Table:
        oid = self.rows(f"SELECT oid FROM pg_catalog.pg_class WHERE relname = %s AND {IN_SCHEMA}", (name,))[
            0
        ][0]
        table, by_num = self.columns(name, oid)
        self.add_constraints(table, oid, by_num)
        self.add_indexes(table, oid, by_num)
        return table

    def columns(self, name: str, oid: int) -> tuple[Table, dict[int, str]]:
        """The table (its columns; an identity or generated one is a problem) and column number -> name."""
        columns, problems, by_num = [], [], {}
        for num, col, typname, declared, notnull, default, identity, generated in self.rows(
            "SELECT a.attnum, a.attname, t.typname, format_type(a.atttypid, a.atttypmod),"
            " a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated"
            " FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid"
            " LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (oid,),
        ):
            by_num[num] = col
            if identity or generated:
                problems.append(f"column {col} is an identity or generated column")
            columns.append(Column(col, declared, PG_KINDS.get(typname, ""), notnull, default))
        return Table(name, columns, (), problems=problems), by_num

    def add_constraints(self, table: Table, oid: int, by_num: dict[int, str]) -> None:
        """Primary key, UNIQUE, foreign keys and CHECKs; any other kind of constraint is a problem."""
        for kind, conname, keys, parent, parent_keys, upd, dele in self.rows(
            "SELECT c.contype, c.conname, c.conkey, p.relname, c.confkey, c.confupdtype,"
            " c.confdeltype FROM pg_catalog.pg_constraint c LEFT JOIN pg_catalog.pg_class p"
            " ON p.oid = c.confrelid WHERE c.conrelid = %s ORDER BY c.conname",
            (oid,),
        ):
            cols = tuple(by_num[k] for k in keys or ())
            if kind == "p":
                table.primary_key = cols
            elif kind == "u":
                table.uniques.append(cols)
            elif kind == "f":
                table.foreign_keys.append(
                    ForeignKey(
                        cols, parent, self.key_names(parent, parent_keys), FK_ACTIONS[dele], FK_ACTIONS[upd]
                    )
                )
            elif kind == "c":
                table.checks.append(conname)
            elif kind != "n":
                table.problems.append(f"it has a constraint of kind {kind!r} ({conname})")

    def key_names(self, table: str, numbers: list[int]) -> tuple[str, ...]:
        """The names of `table`'s columns numbered `numbers`, in that order."""
        return tuple(
            r[0]
            for r in self.rows(
                "SELECT attname FROM pg_catalog.pg_attribute a JOIN unnest(%s::int2[])"
                " WITH ORDINALITY k(num, pos) ON a.attnum = k.num"
                " WHERE a.attrelid = %s::regclass ORDER BY k.pos",
                (numbers, q(table)),
            )
        )

    def add_indexes(self, table: Table, oid: int, by_num: dict[int, str]) -> None:
        """The indexes no constraint owns; a partial or expression index is a problem."""
        for index, unique, keys, expression, partial in self.rows(
            "SELECT i.relname, x.indisunique, x.indkey::int2[], x.indexprs IS NOT NULL,"
            " x.indpred IS NOT NULL FROM pg_catalog.pg_index x"
            " JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s"
            " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c"
            " WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid) ORDER BY 1",
            (oid,),
        ):
            if expression or partial or 0 in keys:
                table.problems.append(f"index {index} is partial or on an expression")
                continue
            table.indexes.append((index, tuple(by_num[k] for k in keys), unique))

    def check_texts(self, table: str) -> list[str]:
        return [
            r[0]
            for r in self.rows(
                "SELECT pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c"
                " WHERE c.contype = 'c' AND c.conrelid = to_regclass(%s)",
                (table,),
            )
        ]

    def on_delete(self, table: str, column: str) -> str | None:
        found = self.rows(
            "SELECT rc.delete_rule FROM information_schema.referential_constraints rc"
            " JOIN information_schema.key_column_usage k ON k.constraint_name = rc.constraint_name"
            " WHERE k.table_name = %s AND k.column_name = %s",
            (table, column),
        )
        return found[0][0] if found else None

    def constraint_indexes(self) -> frozenset[str]:
        return frozenset(
            r[0]
            for r in self.rows(
                "SELECT i.relname FROM pg_catalog.pg_constraint c"
                " JOIN pg_catalog.pg_class i ON i.oid = c.conindid"
                " WHERE c.contype IN ('u', 'p', 'x') AND c.connamespace = current_schema()::regnamespace"
            )
        )

    def column_types(self, table: str) -> dict[str, str]:
        return dict(
            self.rows(
                "SELECT a.attname, t.typname FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t"
                " ON t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attnum > 0"
                " AND NOT a.attisdropped ORDER BY a.attnum",
                (q(table),),
            )
        )
