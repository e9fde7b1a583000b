"""Progress: what receives one-line progress messages (engines report through their backend's
`reporting`)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str], None] | None  # receives one-line progress messages
