"""`SessionormSession` against the OpenAI Agents SDK's own `SQLiteSession`, in the same run (issue 24).

    python bench/agent_session.py [--adds 400] [--reads 100] [--items 1000] [--rounds 5] [--json out.json]

Two things an agent does on every turn, each timed as a user calls it (`await` on a running
event loop, the items' fields read afterwards):

- **add**: `add_items([one item])` to a session that already holds 100 items, `--adds` calls;
- **read**: `get_items()` of a session holding `--items` items (a realistic mix: user and
  assistant messages, function calls and their outputs), `--reads` calls, each item's
  `type`/`role`/`content` read.

Both sessions use a fresh file in one temporary folder, as their users would pass a path:
`SQLiteSession(id, path)` and `SessionormSession(id, path)`. Rounds alternate which one runs
first; the table gives the median per-call time over rounds and the ratio (target ≤ 1.2×).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agents import SQLiteSession

from sessionorm.agents import SessionormSession


def conversation(n: int) -> list[dict[str, Any]]:
    """`n` items as an agent run makes them: a user turn, a tool call, its output, an answer."""
    items: list[dict[str, Any]] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            items.append({"role": "user", "content": f"Question {i}: what is the status of ticket {i}?"})
        elif kind == 1:
            items.append(
                {
                    "type": "function_call",
                    "call_id": f"call_{i}",
                    "name": "lookup_ticket",
                    "arguments": json.dumps({"ticket": i}),
                    "id": f"fc_{i}",
                    "status": "completed",
                }
            )
        elif kind == 2:
            items.append(
                {"type": "function_call_output", "call_id": f"call_{i - 1}", "output": "open, assigned"}
            )
        else:
            items.append(
                {
                    "id": f"msg_{i}",
                    "type": "message",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": f"Ticket {i} is open.", "annotations": []}],
                }
            )
    return items


def read_fields(items: list[Any]) -> int:
    """What a caller does with the items: look at each one's type, role and content."""
    seen = 0
    for item in items:
        seen += bool(item.get("type")) + bool(item.get("role")) + bool(item.get("content"))
    return seen


async def time_adds(session: Any, n: int) -> float:
    await session.add_items(conversation(100))
    one = conversation(4)[0]
    began = time.perf_counter()
    for _ in range(n):
        await session.add_items([one])
    return (time.perf_counter() - began) / n


async def time_reads(session: Any, n: int, items: int) -> float:
    await session.add_items(conversation(items))
    assert len(await session.get_items()) == items
    began = time.perf_counter()
    for _ in range(n):
        read_fields(await session.get_items())
    return (time.perf_counter() - began) / n


def run_case(kind: str, folder: Path, which: str, args: argparse.Namespace, round_: int) -> float:
    path = folder / f"{which}-{kind}-{round_}.db"
    session = SQLiteSession("bench", path) if which == "sdk" else SessionormSession("bench", path)
    try:
        if kind == "add":
            return asyncio.run(time_adds(session, args.adds))
        return asyncio.run(time_reads(session, args.reads, args.items))
    finally:
        session.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=400)
    parser.add_argument("--reads", type=int, default=100)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        "add": {"sdk": [], "sessionorm": []},
        "read": {"sdk": [], "sessionorm": []},
    }
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as tmp:
        folder = Path(tmp)
        for round_ in range(args.rounds):
            order = ("sdk", "sessionorm") if round_ % 2 == 0 else ("sessionorm", "sdk")
            for kind in ("add", "read"):
                for which in order:
                    results[kind][which].append(run_case(kind, folder, which, args, round_))
    print(f"{'case':<40} {'SQLiteSession':>14} {'SessionormSession':>18} {'ratio':>7}")
    summary = {}
    for kind, label in (("add", "add_items([1 item])"), ("read", f"get_items() of {args.items} items")):
        sdk, ours = (statistics.median(results[kind][w]) for w in ("sdk", "sessionorm"))
        pairs = [o / s for s, o in zip(results[kind]["sdk"], results[kind]["sessionorm"], strict=True)]
        summary[kind] = {"sdk_s": sdk, "sessionorm_s": ours, "ratio": ours / sdk, "pairs": pairs}
        print(f"{label:<40} {sdk * 1e6:>11.0f} µs {ours * 1e6:>15.0f} µs {ours / sdk:>6.2f}×")
        print(f"{'':<40} pairs: {', '.join(f'{p:.2f}' for p in pairs)}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
