"""Argument checks that run before any SQL, so a refused call writes nothing."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import peewee

from .declared_types import affinity
from .errors import ValidationError
from .models import ROLES, JSONListField, TimestampField
from .values import format_timestamp, parse_timestamp

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
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: no database can store it
            raise ValidationError(
                f"{what} is not valid Unicode text: {quoted(exc.object[exc.start : exc.end])} at "
                f"character {exc.start} is a lone surrogate"
            ) from None
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


MAX_BUSY_TIMEOUT = 2_147_483  # seconds: SQLite keeps the busy timeout in milliseconds, in a C int
INTEGER_RANGE = (-(2**63), 2**63 - 1)  # what an integer column holds, on either engine


def check_busy_timeout(value: Any) -> float:
    """Seconds to wait for a lock: a finite number from 0 to about 24 days."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= MAX_BUSY_TIMEOUT
    ):
        too_long = isinstance(value, (int, float)) and math.isfinite(value) and value > MAX_BUSY_TIMEOUT
        raise ValidationError(
            f"busy_timeout must be a finite number of seconds >= 0, not {quoted(value)}"
            + (f" (at most {MAX_BUSY_TIMEOUT:,}: SQLite keeps it in milliseconds)" if too_long else "")
        )
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
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INTEGER_RANGE[1]:
        raise ValidationError(f"{what} must be a non-negative integer below 2**63, not {quoted(value)}")
    return value


def column_kind(data_type: str) -> str:
    """boolean, integer, real, text or other: how a column's values are checked, by its declared
    type (SQLite's affinity rules, BOOLEAN apart), the same on every engine."""
    declared = data_type.upper()
    if "BOOL" in declared:
        return "boolean"
    return {"INTEGER": "integer", "REAL": "real", "TEXT": "text"}.get(affinity(declared), "other")


def check_column_value(value: Any, what: str, data_type: str, nul_ok: bool = True) -> Any:
    """A value a column of `data_type` takes as it is, or `ValidationError`: the same answer on
    SQLite and PostgreSQL (SQLite's affinity would keep `'yes'` in a BOOLEAN column, turn NaN
    into NULL, or fail on 2**70, where PostgreSQL refuses or stores text)."""
    if value is None:
        return None
    kind = column_kind(data_type)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{what} must be a finite number, not {quoted(value)}")
    if isinstance(value, int) and not isinstance(value, bool):
        if not INTEGER_RANGE[0] <= value <= INTEGER_RANGE[1]:
            raise ValidationError(f"{what} does not fit a 64-bit integer: {quoted(value)}")
    if isinstance(value, str):
        check_text(value, what, nul_ok=nul_ok)
    if kind == "boolean" and not (isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))):
        raise ValidationError(f"{what} is a boolean column: pass True or False, not {quoted(value)}")
    if kind == "integer" and (isinstance(value, str) or isinstance(value, float) and not value.is_integer()):
        raise ValidationError(f"{what} is an integer column, not {quoted(value)}")
    if kind == "real" and isinstance(value, str):
        raise ValidationError(f"{what} is a number column, not {quoted(value)}")
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


def check_model_row(instance: peewee.Model, names: list[str], nul_ok: bool = True) -> None:
    """The values of a model row that a `.save()` writes (`names`), checked as the store checks
    its own writes, before any SQL: NOT NULL, each column's type (`check_column_value`), a
    message's role, a thread's amp_mode."""
    fields = instance._meta.fields
    for name in names:
        field = fields.get(name)
        if field is None:  # a selected expression (`.alias(...)`), which no save writes
            continue
        value = instance.__data__.get(name)
        if value is None:
            if not field.null:
                raise ValidationError(f"{name} must not be None")
            continue
        if name == "role":
            check_role(value)
        if name == "amp_mode":
            check_amp_mode(value)
        if isinstance(field, (TimestampField, JSONListField)):
            value = field.db_value(value)  # a datetime or a list, as the column stores it
        if field.field_type == "TEXT":
            check_text(value, name, nul_ok=nul_ok)  # a model's text field holds str, as the store's do
        check_column_value(value, name, field.field_type, nul_ok)


def check_since(value: object) -> str:
    """A moment to compare `createdAt` with, as the app stores it: ISO-8601 UTC text with `Z`."""
    if isinstance(value, str):
        parsed = parse_timestamp(check_text(value, "since", allow_empty=False))
        if not isinstance(parsed, dt.datetime):
            raise ValidationError(f"since must be a datetime or ISO-8601 text, not {quoted(value)}")
        value = parsed
    if not isinstance(value, dt.datetime):
        raise ValidationError(f"since must be a datetime or ISO-8601 text, not {quoted(value)}")
    return format_timestamp(value)
