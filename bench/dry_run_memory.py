"""Peak memory of `sessionorm migrate --dry-run` against the migration itself and raw sqlite3.

A dry run rehearses on a temporary on-disk copy, so its peak RSS must stay flat whatever
the file's size (target: <= 150 MB at 200,000 sessions; it was 312 MB when the rehearsal
copied the database into memory). Each side is a whole process on a fresh copy of the same
legacy file, measured by the same launcher as `run.py` (harness.run_process); the raw
floor is `raw_migrate.py` (the best raw SQL) on its own copy, in the same run.

    python bench/dry_run_memory.py                # 200,000 sessions (about a minute)
    python bench/dry_run_memory.py --sessions 50000 --workdir /tmp/bench
    python bench/dry_run_memory.py --legacy other-legacy.db      # any legacy file, copied
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cases.common import copy_db, legacy_db
from harness import BENCH_DIR, log, run_process, sessionorm_cli, working_directory

TARGET_MB = 150.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200_000)
    ap.add_argument("--workdir", help="keep the generated legacy file here between runs")
    ap.add_argument("--legacy", type=Path, help="measure on a copy of this legacy file instead")
    args = ap.parse_args(argv)
    with working_directory(args.workdir) as workdir:
        legacy = args.legacy or legacy_db(workdir, args.sessions)
        size_mb = legacy.stat().st_size / 2**20
        copy = workdir / "copy.db"
        sides = {
            "raw sqlite3 migration (floor)": [sys.executable, str(BENCH_DIR / "raw_migrate.py"), str(copy)],
            "sessionorm migrate": sessionorm_cli("migrate", "--db-path", str(copy)),
            "sessionorm migrate --dry-run": sessionorm_cli("migrate", "--dry-run", "--db-path", str(copy)),
        }
        peaks = {}
        for name, cmd in sides.items():
            copy_db(legacy, copy)
            measured = run_process(cmd, workdir)
            peaks[name] = measured.peak_rss_mb
            log(f"{name}: {measured.seconds:.2f} s, peak RSS {measured.peak_rss_mb:.1f} MB")
        floor = peaks["raw sqlite3 migration (floor)"]
        dry = peaks["sessionorm migrate --dry-run"]
        print(f"\n{legacy.name}: legacy file {size_mb:.0f} MB")
        print("| process | peak RSS | vs raw floor |")
        print("|---|---|---|")
        for name, peak in peaks.items():
            print(f"| {name} | {peak:.1f} MB | {peak / floor:.2f}x |")
        verdict = "ok" if dry <= TARGET_MB else "OVER TARGET"
        print(f"\ndry run peak RSS {dry:.1f} MB (target <= {TARGET_MB:.0f} MB): {verdict}")
        return 0 if dry <= TARGET_MB else 1


if __name__ == "__main__":
    sys.exit(main())
