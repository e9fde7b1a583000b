"""`export --format markdown`: one transcript per session, in the layout of the orchestrator
app's own session export (README, "Export and import", says where it differs).

A transcript is the title, the session's details as a list, the initial prompt in a fence,
then each thread with its messages (role and time as headings, the text as it is stored).
Transcripts follow each other, separated by a `---` line. Nothing in it depends on when it
was written, so the same rows give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TextIO

ROLES = {"user": "🧑‍💻 User", "assistant": "🤖 Assistant", "system": "🔧 System"}
BACKTICKS = re.compile(r"`{3,}")


def fenced(text: str) -> str:
    """`text` in a code fence longer than any run of backticks inside it."""
    longest = max((len(run) for run in BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def shown(value: Any) -> str:
    return "" if value is None else str(value)


def session_header(session: dict[str, Any]) -> str:
    """The title, the details list and the initial prompt, as the app writes them."""
    lines = [
        f"# Session Export: {shown(session.get('name'))}",
        "",
        "## Session Details",
        f"- **Session ID**: {shown(session.get('id'))}",
        f"- **Repository**: {shown(session.get('repoRoot'))}",
        f"- **Base Branch**: {shown(session.get('baseBranch'))}",
        f"- **Branch**: {shown(session.get('branchName'))}",
        f"- **Status**: {shown(session.get('status'))}",
        f"- **Mode**: {shown(session.get('mode') or 'async')}",
        f"- **Created**: {shown(session.get('createdAt'))}",
        f"- **Last Run**: {shown(session.get('lastRun') or 'Never')}",
    ]
    if session.get("modelOverride"):
        lines.append(f"- **Model Override**: {session['modelOverride']}")
    if session.get("scriptCommand"):
        lines.append(f"- **Test Command**: {session['scriptCommand']}")
    prompt = session.get("ampPrompt") or "No prompt provided"
    lines += ["", "## Initial Prompt", fenced(shown(prompt))]
    return "\n".join(lines) + "\n"


def thread_header(thread: dict[str, Any]) -> str:
    """A thread's heading (the app's one "Conversation History" becomes one per thread)."""
    return (
        f"## Thread: {shown(thread.get('name'))}\n"
        f"- **Thread ID**: {shown(thread.get('id'))}\n"
        f"- **Created**: {shown(thread.get('createdAt'))}\n"
        f"- **Status**: {shown(thread.get('status'))}\n\n"
    )


def message_text(message: dict[str, Any]) -> str:
    role = ROLES.get(message.get("role") or "", shown(message.get("role")))
    return f"### {role} ({shown(message.get('createdAt'))})\n\n{shown(message.get('content'))}\n\n"


def write_markdown(records: Iterable[tuple[str, dict[str, Any], Any]], out: TextIO) -> None:
    """The transcripts of `records` (kind, row, item), in their order, into `out`."""
    write = out.write
    first = True
    for kind, row, _item in records:
        if kind == "session":
            if not first:
                write("---\n\n")
            first = False
            write(session_header(row) + "\n")
        elif kind == "thread":
            write(thread_header(row))
        elif kind == "message":
            write(message_text(row))
