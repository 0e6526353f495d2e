"""Durations as ops write them: ``500ms``, ``3s``, ``1m``, ``1h`` (and ``1m30s``)."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
EXPECTED = "a duration like 500ms, 3s, 1m or 1m30s"
MAX_SECONDS = 24 * 3600.0  # nothing Parcours waits for or repeats is longer than a day


def parse_duration(value: object) -> float:
    """Seconds from a duration string; a bare number is refused because its unit is a guess."""
    if not isinstance(value, str):
        raise ValueError(f"expected {EXPECTED}, got {value!r}")
    text = value.strip()
    parts = list(_PART.finditer(text))
    if not text or len(text) > 32 or "".join(p.group(0) for p in parts) != text:
        raise ValueError(f"expected {EXPECTED}, got {value!r:.40}")
    seconds = sum(float(p.group(1)) * _UNITS[p.group(2)] for p in parts)
    if seconds > MAX_SECONDS:
        raise ValueError(f"expected a duration of at most 24h, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Short human form for tables and messages."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"
