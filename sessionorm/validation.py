"""Argument checks that run before any SQL, so a refused call writes nothing."""

from __future__ import annotations

import math
from typing import Any

import peewee

from .errors import ValidationError
from .models import ROLES

SHOWN = 80  # characters of a caller's value quoted in a message, at most


def quoted(value: object) -> str:
    """`repr(value)`, cut to about 80 characters: messages never carry unbounded input."""
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[: SHOWN - 1]}…"


def check_text(value: object, what: str, allow_empty: bool = True, nul_ok: bool = True) -> str:
    """A string; `nul_ok=False` for PostgreSQL, whose text cannot hold a NUL character."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValidationError(f"{what} must not be empty")
    if not nul_ok and "\x00" in value:
        raise ValidationError(f"{what} contains a NUL character (\\x00), which PostgreSQL text cannot store")
    return value


def check_id(value: object, what: str, model: type[peewee.Model] | None = None, nul_ok: bool = True) -> str:
    """An id string, or the id of a row of `model` (e.g. a `Thread` where a thread id goes)."""
    if model is not None and isinstance(value, peewee.Model):
        if not isinstance(value, model):
            raise ValidationError(
                f"{what} must be a {model.__name__} or its id, not a {type(value).__name__}"
            )
        value = value.__data__.get("id")
    return check_text(value, what, allow_empty=False, nul_ok=nul_ok)


def check_busy_timeout(value: Any) -> float:
    """Seconds to wait for a lock: a finite number >= 0."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValidationError(f"busy_timeout must be a finite number of seconds >= 0, not {quoted(value)}")
    return float(value)


AMP_MODES = ("production", "local-cli")  # the app's CHECK on threads.ampMode


def check_amp_mode(value: object) -> str | None:
    if value is not None and value not in AMP_MODES:
        raise ValidationError(f"amp_mode must be None or one of {', '.join(AMP_MODES)}, not {quoted(value)}")
    return value


def check_role(role: object) -> str:
    if role not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}, not {quoted(role)}")
    return role


def check_count(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{what} must be a non-negative integer, not {quoted(value)}")
    return value


def check_messages(messages: object, nul_ok: bool = True) -> list[tuple[str, str]]:
    """A non-empty batch of (role, content) pairs."""
    try:
        batch = list(messages)  # type: ignore[call-overload]
    except TypeError:
        raise ValidationError("messages must be a list of (role, content) pairs") from None
    if not batch:
        raise ValidationError("messages must not be empty")
    checked = []
    for n, item in enumerate(batch):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValidationError(f"message {n} must be a (role, content) pair, not {quoted(item)}")
        checked.append((check_role(item[0]), check_text(item[1], f"message {n} content", nul_ok=nul_ok)))
    return checked
