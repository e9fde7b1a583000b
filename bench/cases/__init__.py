"""The cases of bench/run.py, one module each, named as `--only` names them.

Each has `measure(cfg, workdir) -> harness.Outcome`, timing sessionorm against raw sqlite3
in the same run; common.py holds what they share (sizes, raw SQL, database files).
"""
