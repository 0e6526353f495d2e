"""Assertions ops can read: ``status in [200, 204]``, ``$.items.length > 0``.

Parsed and type-checked when the config loads (a typo is a located config
error, never a run-time surprise), evaluated against a response when a check
runs, and reported with the value seen, the way Gatus does:
``status (500) in [200, 204]``.

Subjects: ``status``, ``response_time``, ``body``, ``content_type``,
``cert_days_left``, ``header.NAME``, a JSON path (``$.a.b[0].c``, with
``.length`` for the size of a list, object or string) and, for TCP checks,
``connect_time`` and ``banner``. Operators: ``== != < <= > >=``, ``in`` and
``not in`` (a list, or a range ``200..299``), ``contains``, ``not contains``,
``matches`` (a regular expression), ``exists`` and ``not exists``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from probes.config.durations import format_duration, parse_duration

OPERATORS = (
    "not exists",
    "not contains",
    "not in",
    "exists",
    "contains",
    "matches",
    "in",
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
)
_SHAPE = re.compile(
    r"^\s*(?P<subject>\S+)\s+(?P<op>" + "|".join(re.escape(o) for o in OPERATORS) + r")"
    r"(?:\s+(?P<value>.+?))?\s*$"
)
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
NUMERIC = frozenset({"status", "response_time", "cert_days_left", "connect_time"})
TEXT = frozenset({"body", "content_type", "banner"})
UNARY = frozenset({"exists", "not exists"})
TIMES = frozenset({"response_time", "connect_time"})
ORDERING = frozenset({"<", "<=", ">", ">="})
MISSING = object()  # a subject the response does not have (no such header, no such path)


class AssertionSyntaxError(ValueError):
    """An assertion that cannot be understood; the message says the expected form."""


@dataclass(frozen=True)
class Assertion:
    """One parsed assertion: what to look at, how to compare, with what."""

    text: str
    subject: str
    operator: str
    expected: Any = None
    path: tuple[str | int, ...] = ()
    length: bool = False


@dataclass(frozen=True)
class Outcome:
    """An evaluated assertion and the value it saw."""

    passed: bool
    message: str
    actual: str | None


def parse(text: str, allowed: frozenset[str] | None = None) -> Assertion:
    """Parse and type-check one assertion; raises AssertionSyntaxError saying why."""
    match = _SHAPE.match(text)
    if not match:
        raise AssertionSyntaxError(
            f"cannot read assertion {text!r}; expected SUBJECT OPERATOR VALUE, such as "
            "'status == 200', '$.status == \"ok\"' or 'response_time < 500ms'"
        )
    subject, operator, raw = match["subject"], match["op"], match["value"]
    if (raw is None) != (operator in UNARY):
        need = "no value" if operator in UNARY else "a value"
        raise AssertionSyntaxError(f"in {text!r}: '{operator}' takes {need}")
    path, length = _subject(subject, allowed, text)
    expected = None if raw is None else _expected(subject, operator, raw, text)
    return Assertion(text.strip(), subject, operator, expected, path, length)


def _subject(
    subject: str, allowed: frozenset[str] | None, text: str
) -> tuple[tuple[str | int, ...], bool]:
    if subject.startswith("$"):
        return _json_path(subject, text)
    base = subject.split(".", 1)[0] if subject.startswith("header.") else subject
    known = (allowed or NUMERIC | TEXT | {"header"}) | set()
    if base == "header" and "header" in known and len(subject) > len("header."):
        return (), False
    if base not in known:
        names = ", ".join([*sorted(known - {"header"}), "header.NAME", "$.json.path"])
        raise AssertionSyntaxError(f"in {text!r}: unknown subject '{subject}'; expected {names}")
    return (), False


def _json_path(subject: str, text: str) -> tuple[tuple[str | int, ...], bool]:
    rest, length = subject[1:], False
    if rest.endswith(".length"):
        rest, length = rest[: -len(".length")], True
    parts: list[str | int] = []
    position = 0
    for match in _PATH_PART.finditer(rest):
        if match.start() != position:
            break
        parts.append(match[1] if match[1] is not None else int(match[2]))
        position = match.end()
    if position != len(rest):
        raise AssertionSyntaxError(
            f"in {text!r}: cannot read JSON path '{subject}'; expected $.key.key[0], "
            "optionally ending in .length"
        )
    return tuple(parts), length


def _expected(subject: str, operator: str, raw: str, text: str) -> Any:
    if operator == "matches":
        try:
            return re.compile(_unquote(raw))
        except re.error as exc:
            raise AssertionSyntaxError(f"in {text!r}: invalid regular expression: {exc}") from None
    if operator in ("in", "not in"):
        return _collection(subject, raw, text)
    value = _scalar(subject, raw, text)
    if operator in ORDERING and not isinstance(value, int | float):
        raise AssertionSyntaxError(f"in {text!r}: '{operator}' compares numbers, got {raw!r}")
    return value


def _collection(subject: str, raw: str, text: str) -> tuple[Any, ...] | range:
    bounds = re.fullmatch(r"\s*(\d+)\s*\.\.\s*(\d+)\s*", raw)
    if bounds:
        low, high = int(bounds[1]), int(bounds[2])
        if low > high:
            raise AssertionSyntaxError(f"in {text!r}: the range {raw} is empty")
        return range(low, high + 1)
    stripped = raw.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        raise AssertionSyntaxError(
            f"in {text!r}: 'in' takes a list such as [200, 204] or a range such as 200..299"
        )
    items = [item for item in _split_list(stripped[1:-1]) if item]
    return tuple(_scalar(subject, item, text) for item in items)


def _split_list(inner: str) -> list[str]:
    items, current, quote = [], "", ""
    for char in inner:
        if quote:
            current += char
            quote = "" if char == quote else quote
        elif char in "\"'":
            current, quote = current + char, char
        elif char == ",":
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [*items, current.strip()]


def _scalar(subject: str, raw: str, text: str) -> Any:
    raw = raw.strip()
    if subject in ("response_time", "connect_time"):
        try:
            return parse_duration(raw)
        except ValueError:
            raise AssertionSyntaxError(
                f"in {text!r}: {subject} compares with a duration such as 500ms, got {raw!r}"
            ) from None
    if subject in ("status", "cert_days_left"):
        try:
            number = float(raw)
        except ValueError:
            raise AssertionSyntaxError(
                f"in {text!r}: {subject} compares with a number, got {raw!r}"
            ) from None
        return int(number) if number.is_integer() else number
    if subject.startswith("$") and not subject.endswith(".length"):
        return _json_value(raw)
    if subject.endswith(".length"):
        try:
            return int(raw)
        except ValueError:
            raise AssertionSyntaxError(f"in {text!r}: a length is a whole number") from None
    return _unquote(raw)


def _json_value(raw: str) -> Any:
    """``"ok"``, ``3``, ``true``, ``null`` as JSON; a bare word as text."""
    try:
        return json.loads(raw)
    except ValueError:
        return _unquote(raw)


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return raw[1:-1]
    return raw


# --- evaluation -------------------------------------------------------------------------


def evaluate(assertion: Assertion, facts: Mapping[str, Any], body_json: Any = MISSING) -> Outcome:
    """Check an assertion against what was observed; never raises for the response's sake."""
    actual = _actual(assertion, facts, body_json)
    if actual is MISSING:
        shown = "missing"
    elif assertion.subject in TIMES and _is_number(actual):
        shown = format_duration(actual)
    else:
        shown = _show(actual)
    passed = _holds(assertion, actual)
    return Outcome(passed, _message(assertion, shown), None if actual is MISSING else shown)


def value_of(subject: str, facts: Mapping[str, Any], body_json: Any = MISSING) -> Any:
    """The value a subject (``$.token``, ``header.Location``) has in a response, or MISSING."""
    return _actual(parse(f"{subject} exists"), facts, body_json)


def _actual(assertion: Assertion, facts: Mapping[str, Any], body_json: Any) -> Any:
    subject = assertion.subject
    if subject.startswith("header."):
        headers: Mapping[str, str] = facts.get("headers", {})
        wanted = subject[len("header.") :].lower()
        return next((v for k, v in headers.items() if k.lower() == wanted), MISSING)
    if subject.startswith("$"):
        value = _walk(body_json, assertion.path)
        if assertion.length and value is not MISSING:
            return len(value) if isinstance(value, list | dict | str) else MISSING
        return value
    return facts.get(subject, MISSING)


def _walk(value: Any, path: tuple[str | int, ...]) -> Any:
    for part in path:
        in_list = isinstance(part, int) and isinstance(value, list) and part < len(value)
        in_object = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_object):
            return MISSING
        value = value[part]
    return value


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, e: a == e,
    "!=": lambda a, e: a != e,
    "<": lambda a, e: a < e,
    "<=": lambda a, e: a <= e,
    ">": lambda a, e: a > e,
    ">=": lambda a, e: a >= e,
    "in": lambda a, e: a in e,
    "not in": lambda a, e: a not in e,
    "contains": lambda a, e: str(e) in str(a),
    "not contains": lambda a, e: str(e) not in str(a),
    "matches": lambda a, e: e.search(str(a)) is not None,
}


def _holds(assertion: Assertion, actual: Any) -> bool:
    if assertion.operator == "exists":
        return actual is not MISSING and actual is not None
    if assertion.operator == "not exists":
        return actual is MISSING or actual is None
    if actual is MISSING:
        return assertion.operator in ("!=", "not in", "not contains")
    if assertion.operator in ORDERING and not _is_number(actual):
        return False
    try:
        return bool(_COMPARE[assertion.operator](actual, assertion.expected))
    except TypeError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, str):
        return value if len(value) <= 80 else value[:77] + "..."
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _message(assertion: Assertion, shown: str) -> str:
    """``status (500) in [200, 204]``: the expression with the value seen after its subject."""
    rest = (
        assertion.text[len(assertion.subject) :].strip()
        if assertion.text.startswith(assertion.subject)
        else f"{assertion.operator} {assertion.expected}"
    )
    return f"{assertion.subject} ({shown}) {rest}"
