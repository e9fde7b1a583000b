"""An agent's conversation item as the orchestrator shows it, and as sessionorm keeps it exactly.

An item (an OpenAI Agents SDK `TResponseInputItem`: a dict of JSON values) is stored twice:
exactly, as JSON text in `sessionorm_agent_items`, and readably, as a thread message whose
`role` the orchestrator accepts and whose `content` is the text a person would read.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import ValidationError

# Item types the model produces (the orchestrator's `assistant`); other items without a role
# (tool outputs, items of types added later) are `system` lines.
MODEL_TYPES_SUFFIX = "_call"
MODEL_TYPES = frozenset({"reasoning", "message", "compaction"})
ROLE_OF = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
NUL_SHOWN = "\N{SYMBOL FOR NULL}"  # the readable line never holds NUL (PostgreSQL's text cannot)


def item_json(item: Any, n: int = 0) -> str:
    """The exact item as JSON text; `ValidationError` (also a `TypeError`) for what is not a
    dict of JSON values, before anything is written."""
    if not isinstance(item, dict):
        raise ItemError(f"item {n} must be a dict, not {type(item).__name__}")
    try:
        return json.dumps(item)  # ensure_ascii: NUL and lone surrogates become \u escapes
    except (TypeError, ValueError) as exc:
        raise ItemError(f"item {n} is not JSON: {exc}") from None


class ItemError(ValidationError, TypeError):
    """An item that cannot be stored: not a dict of JSON values (as `json.dumps` refuses it)."""


def readable(item: dict[str, Any]) -> tuple[str, str]:
    """(role, content) of the thread message that shows `item` in the orchestrator."""
    kind = item.get("type")
    role = item.get("role")
    if isinstance(role, str):
        shown_role = ROLE_OF.get(role, "system")
    elif isinstance(kind, str) and (kind in MODEL_TYPES or kind.endswith(MODEL_TYPES_SUFFIX)):
        shown_role = "assistant"
    else:
        shown_role = "system"
    text = line(item, kind).replace("\x00", NUL_SHOWN)
    return shown_role, text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogate either


def line(item: dict[str, Any], kind: Any) -> str:
    """The text a person reads for `item`."""
    if "content" in item and (kind in (None, "message") or "role" in item):
        return text_of(item["content"])
    if kind == "function_call":
        return f"{item.get('name', '?')}({text_of(item.get('arguments', ''))})"
    if kind == "function_call_output" or (isinstance(kind, str) and "output" in item):
        return text_of(item.get("output", ""))
    if kind == "reasoning":
        summary = text_of(item.get("summary", []))
        return f"(reasoning) {summary}" if summary else "(reasoning)"
    return f"({kind if isinstance(kind, str) else 'item'}) {compact(item)}"


def text_of(value: Any) -> str:
    """Text of a content value: a string, or the text of each part of a list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (part_text(part) for part in value) if t)
    return compact(value)


def part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return text_of(part)
    for key in ("text", "refusal", "output"):
        if isinstance(part.get(key), str):
            return part[key]
    kind = part.get("type", "part")
    name = part.get("filename") or part.get("file_id") or part.get("image_url") or ""
    return f"[{kind}{': ' + name if isinstance(name, str) and name else ''}]"


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
