"""The legacy orchestrator database of bench/legacy_gen.py, loaded into PostgreSQL.

The same `pre`-flavour rows (same generator, same seed), with the camelCase column names
quoted as the orchestrator spells them, written with COPY into a database of their own on
the server (created here; it must not exist). Benchmarks use it as a TEMPLATE, so every
run starts from a byte-identical copy.

    python bench/pg_legacy.py SERVER_URL DBNAME N [--fraction 0.5] [--seed 1]
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse

import legacy_gen

DDL = """
CREATE TABLE sessions (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, "ampPrompt" TEXT NOT NULL, "followUpPrompts" TEXT,
  "repoRoot" TEXT NOT NULL, "baseBranch" TEXT NOT NULL, "branchName" TEXT NOT NULL,
  "worktreePath" TEXT NOT NULL, status TEXT NOT NULL, "scriptCommand" TEXT,
  "modelOverride" TEXT, "threadId" TEXT, "createdAt" TEXT NOT NULL, "lastRun" TEXT, notes TEXT);
ALTER TABLE sessions ADD COLUMN "contextIncluded" BOOLEAN;
CREATE TABLE iterations (
  id TEXT PRIMARY KEY, "sessionId" TEXT NOT NULL, "startTime" TEXT NOT NULL, "endTime" TEXT,
  "commitSha" TEXT, "changedFiles" INTEGER NOT NULL DEFAULT 0, "testResult" TEXT, output TEXT,
  FOREIGN KEY("sessionId") REFERENCES sessions(id));
"""


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def make_legacy_pg(server: str, name: str, n: int, fraction: float = 0.5, seed: int = 1) -> str:
    """Create database `name` holding `n` legacy sessions; return its URL."""
    import psycopg

    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    columns = ", ".join(f'"{c}"' for c in legacy_gen.COLUMNS)
    with psycopg.connect(url) as con:
        con.execute(DDL)
        with con.cursor().copy(f"COPY sessions ({columns}) FROM STDIN") as copy:
            for row in legacy_gen.rows(n, fraction, seed):
                copy.write_row(row[:-1] + (bool(row[-1]),))
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("VACUUM ANALYZE")  # a legacy database that has lived: statistics, hint bits
    return url


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", help="URL of a database on the server (its user may CREATE DATABASE)")
    ap.add_argument("name")
    ap.add_argument("n", type=int)
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    make_legacy_pg(args.server, args.name, args.n, args.fraction, args.seed)
    print(f"created {args.name}: {args.n} sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
