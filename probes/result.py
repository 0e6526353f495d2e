"""The result contract between agent and collector.

This module is a leaf: standard library only, no import from the rest of
Parcours. The collector imports it (and nothing else of the agent), so a
change here is a protocol change: bump ``SCHEMA_VERSION`` when a field
changes meaning or disappears; adding an optional field does not need it.

Units are SI base units (seconds, bytes); a measure that could not be taken
is ``None`` with a reason in the owning object's ``missing`` map, never a
made-up zero.

Version 2 adds what checks that are not browser journeys measure: each HTTP
request or TCP connection is an ``Exchange`` (phases, status, TLS, assertions).
The collector accepts versions 1 and 2, so a fleet is upgraded agent by agent:
collectors first, then agents.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

SCHEMA_VERSION = 2
ACCEPTED_VERSIONS = (1, 2)

# The contract's limits, shared by the agent (which truncates to them before sending, so a
# run is never lost to a long URL) and the collector (which refuses anything beyond them).
NAME_MAX = 256  # journey, step, location, device, agent, kind: they become label values
TEXT_MAX = 4096  # error messages, console lines
URL_MAX = 4096
MAX_DEPTH = 12  # nesting of the free-form conditions (a device profile needs 3)
CONDITIONS_MAX_ENTRIES = 64
LIST_MAX: dict[str, int] = {
    "steps": 500,
    "pages": 500,
    "budgets": 1000,
    "artifacts": 100,
    "failed_requests": 200,
    "console_errors": 100,
    "js_exceptions": 100,
    "third_party_js_exceptions": 100,
    "cleanup": 500,
    "jobs": 10_000,
    "exchanges": 200,
    "assertions": 100,
}
MAP_MAX: dict[str, int] = {"captures": CONDITIONS_MAX_ENTRIES}
# String fields that are free text (not label values), and how long they may be.
TEXT_FIELDS: dict[str, int] = {
    "url": URL_MAX,
    "run_url": URL_MAX,
    "error_message": TEXT_MAX,
    "error": TEXT_MAX,
    "console_errors": TEXT_MAX,
    "js_exceptions": TEXT_MAX,
    "third_party_js_exceptions": TEXT_MAX,
    "message": TEXT_MAX,
    "actual": TEXT_MAX,
    "expression": TEXT_MAX,
    "request_excerpt": TEXT_MAX,
    "response_excerpt": TEXT_MAX,
    "subject": TEXT_MAX,
    "issuer": TEXT_MAX,
}
LEVELS = frozenset({"warn", "fail"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MEASURE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LEVEL = re.compile("warn|fail")
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")

_E = TypeVar("_E", bound=enum.StrEnum)
_T = TypeVar("_T")


class ResultFormatError(ValueError):
    """A result document that does not follow the contract; says where and why."""


# --- small typed readers: each names the JSON path of what it rejects -------


def _mapping(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ResultFormatError(f"{where}: expected an object, got {type(data).__name__}")
    return data


def _check_version(obj: Mapping[str, Any]) -> None:
    version = obj.get("schema_version")
    if type(version) is not int or version not in ACCEPTED_VERSIONS:  # true and 1.0 are not 1
        accepted = " or ".join(map(str, ACCEPTED_VERSIONS))
        raise ResultFormatError(f"$.schema_version: expected {accepted}, got {version!r:.60}")


def _encodable(text: str, where: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ResultFormatError(
                f"{where}: not valid Unicode text (a lone surrogate?)"
            ) from None


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _opt_str(obj, key, where)
    if not value:
        raise ResultFormatError(f"{where}.{key}: expected a non-empty string, got {value!r:.60}")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResultFormatError(f"{where}.{key}: expected a string or null, got {value!r:.60}")
    limit = TEXT_FIELDS.get(key, NAME_MAX)
    if len(value) > limit:
        raise ResultFormatError(f"{where}.{key}: longer than {limit} characters")
    _encodable(value, f"{where}.{key}")
    return value


def _name(obj: Mapping[str, Any], key: str, where: str, max_len: int = NAME_MAX) -> str:
    """A name that becomes a label value or a path: short, printable, no control characters."""
    value = _opt_name(obj, key, where, max_len)
    if not value:
        raise ResultFormatError(f"{where}.{key}: expected a non-empty string, got {value!r:.60}")
    return value


def _opt_name(obj: Mapping[str, Any], key: str, where: str, max_len: int = NAME_MAX) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ResultFormatError(f"{where}.{key}: expected a string or null, got {value!r:.60}")
    if len(value) > max_len:
        raise ResultFormatError(f"{where}.{key}: longer than {max_len} characters")
    if _CONTROL.search(value):
        raise ResultFormatError(f"{where}.{key}: control characters are not allowed in names")
    _encodable(value, f"{where}.{key}")
    return value


def _patterned(
    pattern: re.Pattern[str], expected: str, obj: Mapping[str, Any], key: str, where: str
) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ResultFormatError(f"{where}.{key}: expected {expected}, got {value!r:.60}")
    return value


def _text_item(data: object, where: str) -> str:
    if not isinstance(data, str):
        raise ResultFormatError(f"{where}: expected a string")
    if len(data) > TEXT_MAX:
        raise ResultFormatError(f"{where}: longer than {TEXT_MAX} characters")
    _encodable(data, where)
    return data


def _job_name(data: object, where: str) -> str:
    if not isinstance(data, str) or not data or len(data) > 2 * NAME_MAX:
        raise ResultFormatError(f"{where}: expected a journey@device name")
    if _CONTROL.search(data):
        raise ResultFormatError(f"{where}: control characters are not allowed in names")
    _encodable(data, where)
    return data


def _conditions(obj: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    """Free-form but small and shallow: the network and device a run was measured under."""
    raw = _mapping(obj.get(key, {}), "$.conditions")
    entries = 0
    stack: list[tuple[Mapping[str, Any] | list[Any], int]] = [(raw, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ResultFormatError(f"$.conditions: nested deeper than {MAX_DEPTH} levels")
        pairs = value.items() if isinstance(value, Mapping) else enumerate(value)
        for inner, item in pairs:
            entries += 1
            if isinstance(inner, str):
                _encodable(inner, "$.conditions (a key)")
            if isinstance(item, Mapping | list):
                stack.append((item, depth + 1))
            elif isinstance(item, str):
                if len(item) > TEXT_MAX:
                    raise ResultFormatError(f"$.conditions: a value is longer than {TEXT_MAX}")
                _encodable(item, "$.conditions")
            elif isinstance(item, float) and not math.isfinite(item):
                raise ResultFormatError("$.conditions: expected finite numbers")
    if entries > CONDITIONS_MAX_ENTRIES:
        raise ResultFormatError(
            f"$.conditions: {entries} values, more than {CONDITIONS_MAX_ENTRIES}"
        )
    return dict(raw)


def _num(obj: Mapping[str, Any], key: str, where: str) -> float:
    value = _opt_num(obj, key, where)
    if value is None:
        raise ResultFormatError(f"{where}.{key}: expected a number, got null or nothing")
    return value


def _opt_num(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    value = _opt_signed(obj, key, where)
    if value is not None and value < 0:
        raise ResultFormatError(f"{where}.{key}: expected a number >= 0, got {value}")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ResultFormatError(f"{where}.{key}: expected an integer >= 0, got {value!r:.60}")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, where: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key, where)


def _opt_signed(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    """A number that may be negative (days left on an expired certificate)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultFormatError(f"{where}.{key}: expected a finite number, got {value!r:.60}")
    return float(value)


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool:
    value = obj.get(key)
    if not isinstance(value, bool):
        raise ResultFormatError(f"{where}.{key}: expected true or false, got {value!r:.60}")
    return value


def _opt_bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    return None if obj.get(key) is None else _bool(obj, key, where)


def _number_map(
    keys: tuple[str, ...], key_is: str, obj: Mapping[str, Any], key: str, where: str
) -> dict[str, float]:
    """Named measures (an exchange's phases): only the names the contract knows."""
    raw = _mapping(obj.get(key, {}), f"{where}.{key}")
    for name in raw:
        if name not in keys:
            raise ResultFormatError(f"{where}.{key}: unknown {key_is} {name!r:.40}")
    return {name: _num(raw, name, f"{where}.{key}") for name in raw}


def _enum(obj: Mapping[str, Any], key: str, where: str, *, kind: type[_E]) -> _E:
    value = obj.get(key)
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ResultFormatError(
            f"{where}.{key}: expected one of {allowed}, got {value!r:.60}"
        ) from None


def _opt_enum(obj: Mapping[str, Any], key: str, where: str, *, kind: type[_E]) -> _E | None:
    return None if obj.get(key) is None else _enum(obj, key, where, kind=kind)


def _str_map(obj: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    raw = _mapping(obj.get(key, {}), f"{where}.{key}")
    if len(raw) > CONDITIONS_MAX_ENTRIES or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= NAME_MAX and len(v) <= TEXT_MAX
        for k, v in raw.items()
    ):
        raise ResultFormatError(f"{where}.{key}: expected a small object of strings")
    for name, text in raw.items():
        _encodable(name, f"{where}.{key} (a key)")
        _encodable(text, f"{where}.{key}.{name[:40]}")
    return dict(raw)


def _list(
    obj: Mapping[str, Any], key: str, where: str, *, parse: Callable[[object, str], _T]
) -> tuple[_T, ...]:
    raw = obj.get(key, [])
    if not isinstance(raw, list | tuple):
        raise ResultFormatError(f"{where}.{key}: expected a list")
    limit = LIST_MAX.get(key)
    if limit is not None and len(raw) > limit:
        raise ResultFormatError(f"{where}.{key}: {len(raw)} entries, more than {limit}")
    return tuple(parse(item, f"{where}.{key}[{index}]") for index, item in enumerate(raw))


MAX_BUCKETS = 64


def _lag_buckets(obj: Mapping[str, Any], key: str, where: str) -> dict[str, int]:
    """Histogram buckets: each key an upper bound (a number or +Inf), each value a count."""
    buckets = _mapping(obj.get(key, {}), "$.lag_buckets")
    if len(buckets) > MAX_BUCKETS:
        raise ResultFormatError(f"$.lag_buckets: more than {MAX_BUCKETS} buckets")
    for bound, count in buckets.items():
        if not _is_bound(bound):
            raise ResultFormatError(
                f"$.lag_buckets: bucket bounds must be numbers or +Inf, got {bound!r:.40}"
            )
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ResultFormatError("$.lag_buckets: expected an object of integer counts >= 0")
    for bound in buckets:
        _encodable(bound, "$.lag_buckets (a key)")
    return dict(buckets)


def _is_bound(text: str) -> bool:
    if text == "+Inf":
        return True
    try:
        return math.isfinite(float(text)) and len(text) <= 32
    except ValueError:
        return False


class ErrorType(enum.StrEnum):
    """Why a step or run failed; a bounded set, safe as a metric label."""

    TIMEOUT = "timeout"
    ELEMENT_NOT_FOUND = "element_not_found"
    AMBIGUOUS_LOCATOR = "ambiguous_locator"  # an action's locator matched several elements
    ASSERTION_FAILED = "assertion_failed"
    HTTP_ERROR = "http_error"
    NAVIGATION_ERROR = "navigation_error"
    JS_ERROR = "js_error"
    BROWSER_ERROR = "browser_error"
    BUDGET_EXCEEDED = "budget_exceeded"
    CONFIG_ERROR = "config_error"
    DNS_ERROR = "dns_error"
    CONNECTION_ERROR = "connection_error"
    TLS_ERROR = "tls_error"
    AGENT_ERROR = "agent_error"  # Parcours itself failed (a bug), not the site or the browser


# What a step of each kind can fail with, so that the collector exports each failure
# counter at 0 before its first failure (``increase()`` misses a series' first sample).
# Any kind's first step also takes what stops a run (a timeout, Parcours' own error, a
# config the agent cannot resolve); a run failed by its budgets alone has no step ("").
_RUN_STOPPERS = (ErrorType.TIMEOUT, ErrorType.AGENT_ERROR, ErrorType.CONFIG_ERROR)
_NETWORK = (
    ErrorType.DNS_ERROR,
    ErrorType.CONNECTION_ERROR,
    ErrorType.TLS_ERROR,
    ErrorType.ASSERTION_FAILED,
)
STEP_ERROR_TYPES: dict[str, tuple[ErrorType, ...]] = {
    "browser": (
        *_RUN_STOPPERS,
        ErrorType.ELEMENT_NOT_FOUND,
        ErrorType.AMBIGUOUS_LOCATOR,
        ErrorType.ASSERTION_FAILED,
        ErrorType.HTTP_ERROR,
        ErrorType.NAVIGATION_ERROR,
        ErrorType.JS_ERROR,
        ErrorType.BROWSER_ERROR,
    ),
    "http": (*_RUN_STOPPERS, *_NETWORK, ErrorType.HTTP_ERROR),
    "tcp": (*_RUN_STOPPERS, *_NETWORK),
}
NO_STEP_ERROR_TYPES = (ErrorType.BUDGET_EXCEEDED,)  # the step label "" of a budget failure


class Status(enum.StrEnum):
    """Outcome of a run or step: degraded means slow (a warn budget), not broken."""

    PASSED = "passed"
    DEGRADED = "degraded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Rating(enum.StrEnum):
    """Google's Web Vitals rating buckets."""

    GOOD = "good"
    NEEDS_IMPROVEMENT = "needs-improvement"
    POOR = "poor"


@dataclass(frozen=True)
class Measure:
    """One measure of a page: where it lives, how it is shown, budgeted, exported, rated.

    The one catalogue read by ratings, budgets, metrics, the CLI table and the run
    page, so that adding a measure is one line here.
    """

    field: str  # the PageResult field
    label: str  # how tables name it
    unit: str  # seconds, bytes, count or score
    metric: str  # the gauge the collector exports (last run, per step)
    help: str
    budget: str | None = None  # the budget's name in a config, when it has one
    thresholds: tuple[float, float] | None = None  # Google's: (good up to, poor above)


PAGE_MEASURES: tuple[Measure, ...] = (
    # Google's thresholds: web.dev/articles/vitals.
    Measure("ttfb_seconds", "TTFB", "seconds", "parcours_page_ttfb_seconds",
            "Time to first byte of the page.", "ttfb", (0.8, 1.8)),
    Measure("fcp_seconds", "FCP", "seconds", "parcours_page_fcp_seconds",
            "First contentful paint.", "fcp", (1.8, 3.0)),
    Measure("lcp_seconds", "LCP", "seconds", "parcours_page_lcp_seconds",
            "Largest contentful paint.", "lcp", (2.5, 4.0)),
    Measure("cls", "CLS", "score", "parcours_page_cls",
            "Cumulative layout shift (largest session window).", "cls", (0.1, 0.25)),
    Measure("inp_seconds", "INP", "seconds", "parcours_page_inp_seconds",
            "Slowest interaction (INP) on the page.", "inp", (0.2, 0.5)),
    Measure("dom_content_loaded_seconds", "DCL", "seconds",
            "parcours_page_dom_content_loaded_seconds",
            "DOMContentLoaded event end, from navigation start."),
    Measure("load_seconds", "load", "seconds", "parcours_page_load_seconds",
            "Load event end, from navigation start.", "page_load"),
    Measure("transfer_bytes", "weight", "bytes", "parcours_page_transfer_bytes",
            "Bytes transferred for the page.", "transfer_bytes"),
    Measure("requests", "requests", "count", "parcours_page_requests",
            "Requests the page made.", "requests"),
)  # fmt: skip
MEASURES_BY_FIELD = {m.field: m for m in PAGE_MEASURES}
TIMINGS = tuple(m.field for m in PAGE_MEASURES if m.unit in ("seconds", "score"))
VITAL_THRESHOLDS: dict[str, tuple[float, float]] = {
    m.field: m.thresholds for m in PAGE_MEASURES if m.thresholds is not None
}


def rate(vital: str, value: float | None) -> Rating | None:
    """Rate a Web Vital the way Google does; None when it was not measured."""
    if value is None:
        return None
    good, poor = VITAL_THRESHOLDS[vital]
    if value <= good:
        return Rating.GOOD
    if value <= poor:
        return Rating.NEEDS_IMPROVEMENT
    return Rating.POOR


@dataclass(frozen=True)
class FailedRequest:
    """A request that got HTTP >= 400 or never got a response."""

    url: str
    method: str
    status: int | None
    error: str | None
    resource_type: str


@dataclass(frozen=True)
class PageResult:
    """Measures of one document load (one navigation of the main frame)."""

    step: str
    url: str
    ttfb_seconds: float | None = None
    fcp_seconds: float | None = None
    lcp_seconds: float | None = None
    cls: float | None = None
    inp_seconds: float | None = None
    dom_content_loaded_seconds: float | None = None
    load_seconds: float | None = None
    transfer_bytes: int | None = None
    requests: int = 0
    failed_requests: tuple[FailedRequest, ...] = ()
    console_errors: tuple[str, ...] = ()
    js_exceptions: tuple[str, ...] = ()  # thrown by the site's own scripts
    third_party_js_exceptions: tuple[str, ...] = ()  # by other sites' (widgets, ads)
    ratings: Mapping[str, str] = field(default_factory=dict)
    missing: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BudgetCheck:
    """One budget that was exceeded: which, where, its limit and the measure."""

    measure: str = field(metadata={"pattern": _MEASURE, "expected": "a measure name (a-z, 0-9, _)"})
    level: str = field(metadata={"pattern": _LEVEL, "expected": "warn or fail"})
    limit: float
    value: float
    step: str | None = None


@dataclass(frozen=True)
class Artifact:
    """Evidence kept with a run; its bytes travel separately (``PUT .../artifacts/NAME``)."""

    name: str = field(metadata={"max": 64})  # it becomes a file name in the store
    kind: str  # screenshot, html, trace
    content_type: str
    size: int
    step: str | None = None


@dataclass(frozen=True)
class AssertionResult:
    """One assertion of an API check, with the value it saw: ``status (500) in [200, 204]``."""

    expression: str
    passed: bool
    message: str
    actual: str | None = None


@dataclass(frozen=True)
class TlsInfo:
    """The certificate a server presented; expiry as Unix time, days left from the run."""

    earliest_expiry: float | None
    days_left: float | None = field(metadata={"signed": True})  # negative once expired
    version: str | None = None
    subject: str | None = None
    issuer: str | None = None
    chain_length: int = 0


# Phases of an exchange, in the order they happen; each in seconds, absent if not reached.
PHASES = ("dns", "connect", "tls", "processing", "transfer", "total")


@dataclass(frozen=True)
class Exchange:
    """One HTTP request and its response, or one TCP connection, of a step."""

    step: str
    url: str
    method: str | None = None  # None for a TCP connection
    status: int | None = None
    phases: Mapping[str, float] = field(
        default_factory=dict, metadata={"keys": PHASES, "key_is": "phase"}
    )
    response_bytes: int | None = None
    tls: TlsInfo | None = None
    assertions: tuple[AssertionResult, ...] = ()
    request_excerpt: str | None = None  # masked, cut: what on-call needs to replay it
    response_excerpt: str | None = None


@dataclass(frozen=True)
class StepResult:
    """One named step: what it did, how long, and why it failed if it did."""

    name: str
    action: str
    status: Status
    started_at: float
    duration_seconds: float
    error_type: ErrorType | None = None
    error_message: str | None = None
    interaction_seconds: float | None = None


@dataclass(frozen=True)
class BrowserSection:
    """What only a browser journey has: the clicks it took against its budget, its pages."""

    clicks: int
    click_budget: int
    pages: tuple[PageResult, ...] = ()
    # Values the steps captured (an order number), secrets among them masked.
    captures: Mapping[str, str] = field(default_factory=dict)
    # The journey's clean-up steps, run after it whatever happened; never in the verdict.
    cleanup: tuple[StepResult, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """One run of one journey on one device at one location."""

    run_id: str = field(
        metadata={"pattern": _RUN_ID, "expected": "1-128 letters, digits, '_' or '-'"}
    )
    journey: str
    kind: str
    device: str
    location: str
    agent: str
    started_at: float
    finished_at: float
    status: Status
    steps: tuple[StepResult, ...]
    budgets: tuple[BudgetCheck, ...] = ()
    error_type: ErrorType | None = None
    error_message: str | None = None
    failed_step: str | None = None
    attempt: int = 1
    conditions: Mapping[str, Any] = field(default_factory=dict, metadata={"read": _conditions})
    interval_seconds: float = 0.0  # the journey's schedule; 0 for one-off runs
    artifacts: tuple[Artifact, ...] = ()
    run_url: str | None = None  # the collector's page for this run
    browser: BrowserSection | None = None  # browser journeys (version 2; top-level in 1)
    exchanges: tuple[Exchange, ...] = ()  # HTTP and TCP checks (version 2)
    # False when a retry of the same scheduled run follows this attempt: availability
    # counts scheduled runs (a retry that passes makes its scheduled run a pass).
    final: bool = True
    # When the check pages, from its config: N locations, or a share of those that run it
    # (below 1); 0 from agents that do not say (the rules then use medium sensitivity).
    alert_min_locations: float = 0.0
    schema_version: int = field(default=SCHEMA_VERSION, metadata={"skip": True})

    @property
    def duration_seconds(self) -> float:
        """Wall time of the whole run, to the microsecond (two epoch times a few seconds
        apart carry float noise below it)."""
        return round(self.finished_at - self.started_at, 6)

    @property
    def success(self) -> bool:
        """A degraded run still worked for the customer; only failed is down."""
        return self.status is not Status.FAILED


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names (empty for anything else), looked up once per type."""
    return tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()


def to_dict(result: RunResult) -> dict[str, Any]:
    """Serialise a result to JSON-ready plain data (enum members are str already)."""
    data: dict[str, Any] = _plain(result)
    data["duration_seconds"] = result.duration_seconds
    return data


def _plain(value: Any) -> Any:
    """Field by field, without deep copies: ``dataclasses.asdict`` was 70% of ingest time."""
    names = _field_names(type(value))  # type: ignore[arg-type]
    if names:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, str | int | float) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def fit_document(document: dict[str, Any]) -> dict[str, Any]:
    """A result document (``to_dict``'s form) cut to the contract's limits."""
    fitted: dict[str, Any] = _fit(document, None)
    return fitted


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_line(text: str, limit: int = 300) -> str:
    """A message's first line, bounded: Playwright's carry call logs, and a page or an
    alert shows one line. Agent and collector cut error text the same way."""
    lines = text.strip().splitlines()
    return shorten(lines[0] if lines else "", limit)


def _fit(value: Any, key: str | None) -> Any:
    if isinstance(value, str):
        limit = TEXT_FIELDS.get(key or "", NAME_MAX)
        text = value.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
        return shorten(text, limit)
    if isinstance(value, list):
        kept = value[: LIST_MAX.get(key or "", len(value))]
        return [_fit(item, key) for item in kept]
    if isinstance(value, dict):
        # Maps that steps fill (a python step may return any number of captures) keep their
        # first entries, so that a result is always within what a collector accepts.
        items = list(value.items())[: MAP_MAX.get(key or "", len(value))]
        return {k: _fit(v, k) for k, v in items}
    return value


def from_dict(data: object) -> RunResult:
    """Parse and validate a result document received over the wire (version 1 or 2)."""
    obj = _mapping(data, "$")
    _check_version(obj)
    result = _decode(RunResult, obj, "$")
    if obj["schema_version"] == 1:  # clicks and pages were at the top, where errors name them
        result = dataclasses.replace(result, browser=_decode(BrowserSection, obj, "$"))
    if result.finished_at < result.started_at:
        raise ResultFormatError(
            f"$.finished_at: {result.finished_at} is before started_at ({result.started_at})"
        )
    return result


def heartbeat_from_dict(data: object) -> AgentHeartbeat:
    """Parse and validate a heartbeat received over the wire."""
    obj = _mapping(data, "$")
    _check_version(obj)
    return _decode(AgentHeartbeat, obj, "$")


# --- the decoder: each dataclass's own fields, types and metadata say what is valid ------
#
# A field's type picks its reader: str (a name: short, no control characters; or free text
# when its name is in TEXT_FIELDS), int (>= 0), float (finite, >= 0 unless ``signed``),
# bool, an enum, a nested contract dataclass, a tuple of them (at most LIST_MAX entries),
# or a small map. Metadata refines it: ``pattern`` and ``expected`` (the form a string must
# match whole), ``max`` (a shorter name), ``keys`` and ``key_is`` (the keys a map may have,
# and what they are called in errors), ``item`` (how to read each string of a tuple),
# ``read`` (a reader of its own), ``skip`` (not read).
# A field with a default may be absent; one without may not, unless it is optional.

_Reader = Callable[[Mapping[str, Any], str, str], Any]


def _decode(cls: type[_T], data: object, where: str) -> _T:
    obj = _mapping(data, where)
    values = {}
    for name, read, has_default in _plan(cls):  # type: ignore[arg-type]  # types hash
        if has_default and name not in obj:
            continue
        values[name] = read(obj, name, where)
    return cls(**values)


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, _Reader, bool], ...]:
    """How to read each field of ``cls``, worked out once per type from its annotations."""
    hints = typing.get_type_hints(cls)
    plan = []
    for spec in dataclasses.fields(cls):
        if spec.metadata.get("skip"):
            continue
        has_default = (
            spec.default is not dataclasses.MISSING
            or spec.default_factory is not dataclasses.MISSING
        )
        read = spec.metadata.get("read") or _reader(spec.name, hints[spec.name], spec.metadata)
        plan.append((spec.name, read, has_default))
    return tuple(plan)


def _reader(name: str, hint: Any, meta: Mapping[str, Any]) -> _Reader:
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        (hint,) = (arg for arg in args if arg is not type(None))
    pair = _scalar_readers(name, hint, meta) or _compound_readers(name, hint, meta)
    return pair[0] if optional else pair[1]


_ReaderPair = tuple[_Reader, _Reader]  # (when the field may be null, when it is required)
_SCALARS: dict[Any, _ReaderPair] = {
    bool: (_opt_bool, _bool),
    int: (_opt_int, _int),
    float: (_opt_num, _num),
}


def _scalar_readers(name: str, hint: Any, meta: Mapping[str, Any]) -> _ReaderPair | None:
    if "pattern" in meta:
        checked = functools.partial(_patterned, meta["pattern"], meta["expected"])
        return (checked, checked)
    if hint is str and name in TEXT_FIELDS:
        return (_opt_str, _str)
    if hint is str:
        limit = meta.get("max", NAME_MAX)
        return (
            functools.partial(_opt_name, max_len=limit),
            functools.partial(_name, max_len=limit),
        )
    if hint is float and meta.get("signed"):
        return (_opt_signed, _opt_signed)
    if isinstance(hint, type) and issubclass(hint, enum.StrEnum):
        return (functools.partial(_opt_enum, kind=hint), functools.partial(_enum, kind=hint))
    return _SCALARS.get(hint)


def _compound_readers(name: str, hint: Any, meta: Mapping[str, Any]) -> _ReaderPair:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return (functools.partial(_section, hint), functools.partial(_section, hint, required=True))
    if origin is tuple:
        item = args[0]
        is_section = isinstance(item, type) and dataclasses.is_dataclass(item)
        parse = _decode_as(item) if is_section else meta.get("item", _text_item)
        return (functools.partial(_list, parse=parse),) * 2
    if origin is Mapping and args == (str, str):
        return (_str_map, _str_map)
    if origin is Mapping and args == (str, float):
        return (functools.partial(_number_map, meta["keys"], meta["key_is"]),) * 2
    raise TypeError(f"no reader for field {name!r} of type {hint!r}: give it metadata 'read'")


def _decode_as(cls: type) -> Callable[[object, str], Any]:
    return lambda item, where: _decode(cls, item, where)


def _section(
    cls: type, obj: Mapping[str, Any], key: str, where: str, required: bool = False
) -> Any:
    value = obj.get(key)
    if value is None and not required:
        return None
    return _decode(cls, value, f"{where}.{key}")


@dataclass(frozen=True)
class AgentHeartbeat:
    """An agent's own health, sent periodically so the collector can export it.

    Counters are cumulative since ``started_at`` (Prometheus handles the reset
    when an agent restarts). ``jobs`` lists the ``journey@device`` the agent
    runs now, so the collector stops exporting journeys that were removed.
    """

    agent: str
    location: str
    started_at: float
    sent_at: float
    jobs: tuple[str, ...] = field(metadata={"item": _job_name})
    running: int
    skipped_runs: int
    missed_runs: int
    chromium_restarts: int
    results_dropped: int
    config_reload_successful: bool
    config_last_reload_success_at: float
    lag_buckets: Mapping[str, int] = field(metadata={"read": _lag_buckets})
    lag_sum: float
    lag_count: int
    artifacts_dropped: int = 0
    schema_version: int = field(default=SCHEMA_VERSION, metadata={"skip": True})


def heartbeat_to_dict(heartbeat: AgentHeartbeat) -> dict[str, Any]:
    """Serialise a heartbeat to JSON-ready plain data."""
    data: dict[str, Any] = _plain(heartbeat)
    return data
