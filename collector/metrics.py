"""/metrics for journeys, built from the collector's state.

Names follow Prometheus conventions under ``parcours_``; labels are configured
names only (journey, step, location, device, agent) plus small fixed sets
(status, error_type, measure, level). ``probe_success`` and
``probe_duration_seconds`` are exported too, so that rules and dashboards
written for blackbox_exporter work unchanged. A golden test pins the names
and labels, because dashboards and alerts rely on them.

Why not prometheus-client's collector here: with 1,000 journeys x 5 steps x 3
devices its generic path took 6 s a scrape (bench/collector_throughput.py).
This renderer writes the same text format (checked by prometheus-client's
own parser in the tests), keeps each series' lines until a new result for
it arrives, and for a changed series formats its values into the layout it
kept (a %-template per family, rebuilt only when its steps or pages change),
so rendering costs about the number of values that changed. Changed series are
rendered in lulls between results (``MetricsRenderer.keep_fresh``), and a scrape
renders only what arrived since, then joins kept bytes; rendering yields to the
event loop between slices of series, so ingest keeps flowing. The collector's own
counters still use prometheus-client.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import structlog

from collector.state import CollectorState, SeriesKey, SeriesState
from probes.result import (
    NO_STEP_ERROR_TYPES,
    PAGE_MEASURES,
    STEP_ERROR_TYPES,
    AgentHeartbeat,
    RunResult,
    Status,
    first_line,
)

log = structlog.get_logger(__name__)

AGENT_STALE_SECONDS = 90.0  # three missed heartbeats at the default 30 s
SLICE = 200  # series a scrape renders between two yields to the event loop (13-50 ms)
SLICE_SECONDS = 0.005  # rendering between scrapes yields this often
QUIET_SECONDS = 0.005  # results further apart than this leave time to render them
BACKLOG_SECONDS = 5.0  # under a steady stream, render what waited at least this often
K = TypeVar("K", str, tuple[str, str])


@dataclass(frozen=True)
class Family:
    """One metric family's name, type and help."""

    name: str
    kind: str
    help: str

    def header(self) -> str:
        """The HELP and TYPE lines."""
        return f"# HELP {self.name} {self.help}\n# TYPE {self.name} {self.kind}\n"


def _gauge(name: str, text: str) -> Family:
    return Family(name, "gauge", text)


JOURNEY_GAUGES: dict[str, tuple[Family, Callable[[RunResult], float]]] = {
    "success": (
        _gauge(
            "parcours_journey_success",
            "1 if the last scheduled run passed or was degraded (after its retries).",
        ),
        lambda r: 1.0 if r.success else 0.0,
    ),
    "degraded": (
        _gauge("parcours_journey_degraded", "1 if the last run exceeded a warn budget."),
        lambda r: 1.0 if r.status is Status.DEGRADED else 0.0,
    ),
    "duration": (
        _gauge("parcours_journey_last_duration_seconds", "Wall time of the last run."),
        lambda r: r.duration_seconds,
    ),
    "last_run": (
        _gauge("parcours_journey_last_run_timestamp_seconds", "Start of the last run (Unix time)."),
        lambda r: r.started_at,
    ),
    "attempt": (
        _gauge("parcours_journey_last_attempt", "Attempt number of the last run (2 = a retry)."),
        lambda r: float(r.attempt),
    ),
    "probe_success": (
        _gauge("probe_success", "blackbox_exporter-compatible success."),
        lambda r: 1.0 if r.success else 0.0,
    ),
    "probe_duration": (
        _gauge("probe_duration_seconds", "blackbox_exporter-compatible duration."),
        lambda r: r.duration_seconds,
    ),
}
BUDGET = _gauge("parcours_budget_exceeded", "1 for each budget the last run exceeded.")
BUDGET_MEASURED = _gauge(
    "parcours_budget_measured", "What the last run measured, for each budget it exceeded."
)
BUDGET_LIMIT = _gauge("parcours_budget_limit", "The limit of each budget the last run exceeded.")
CLICKS = _gauge("parcours_journey_clicks", "Clicks the last run used (browser journeys).")
CLICK_BUDGET = _gauge("parcours_journey_click_budget", "The journey's click budget (browser).")
FAILED_STEP = _gauge(
    "parcours_journey_failed_step",
    "1 on the step and error type that failed the last run (absent if it passed).",
)
ERROR_INFO = _gauge(
    "parcours_journey_error_info",
    "1 while the last run failed, with its step, error type and a short summary of the error "
    "(alerts read it at notification time; it is never part of an alert's identity).",
)
ERROR_SUMMARY_MAX = 160
CONSECUTIVE = _gauge(
    "parcours_journey_consecutive_failures",
    "Scheduled runs failed in a row (0 after any success); alerts use it.",
)
INTERVAL = _gauge(
    "parcours_journey_interval_seconds", "How often the journey runs; staleness alerts use it."
)
STEP_SUCCESS = _gauge(
    "parcours_step_success", "1 if the step passed in the last run, 0 if it failed."
)
STEP_DURATION = _gauge(
    "parcours_step_last_duration_seconds", "Wall time of the step in the last run."
)
# PageResult field -> family, from the catalogue of measures. Last run's value, for the
# last page each step loaded.
PAGE_GAUGES: dict[str, Family] = {m.field: _gauge(m.metric, m.help) for m in PAGE_MEASURES}
PAGE_FAILED = _gauge("parcours_page_failed_requests", "Requests with HTTP >= 400 or no response.")
PAGE_ERRORS = _gauge(
    "parcours_page_js_errors",
    "Uncaught exceptions of the site's own scripts and console errors on the page.",
)
PAGE_THIRD_PARTY_ERRORS = _gauge(
    "parcours_page_third_party_js_errors",
    "Uncaught exceptions thrown by other sites' scripts (widgets, ads) on the page.",
)
KIND_INFO = _gauge("parcours_journey_info", "1 per series, with the kind of check it runs.")
# HTTP and TCP checks: each step's last exchange.
PHASE = _gauge(
    "parcours_phase_seconds",
    "Time per phase of the step's last request or connection (dns, connect, tls, "
    "processing, transfer, total).",
)
HTTP_STATUS = _gauge("parcours_http_status_code", "HTTP status of the step's last response.")
PROBE_HTTP_STATUS = _gauge(
    "probe_http_status_code", "blackbox_exporter-compatible: status of the last response."
)
CERT_EXPIRY = _gauge(
    "parcours_tls_cert_expiry_timestamp_seconds",
    "Earliest expiry (Unix time) of the certificate chain the step's server presented.",
)
PROBE_CERT_EXPIRY = _gauge(
    "probe_ssl_earliest_cert_expiry",
    "blackbox_exporter-compatible: earliest certificate expiry of the check (Unix time).",
)
ALERT_MIN_LOCATIONS = _gauge(
    "parcours_journey_alert_min_locations",
    "Failing locations that make the journey page: a count (1 or more) or a share (below 1).",
)
RUNS = Family("parcours_journey_runs_total", "counter", "Runs by outcome (every attempt).")
SCHEDULED = Family(
    "parcours_journey_scheduled_runs_total",
    "counter",
    "Scheduled runs by the outcome of their last attempt (a passing retry is a pass).",
)
FAILURES = Family(
    "parcours_journey_failures_total", "counter", "Failed runs by step and error type."
)
DURATIONS = Family("parcours_journey_duration_seconds", "histogram", "Run wall time across runs.")

SERIES_FAMILIES: tuple[Family, ...] = (
    *(family for family, _ in JOURNEY_GAUGES.values()),
    CLICKS,
    CLICK_BUDGET,
    FAILED_STEP,
    ERROR_INFO,
    CONSECUTIVE,
    INTERVAL,
    ALERT_MIN_LOCATIONS,
    BUDGET,
    BUDGET_MEASURED,
    BUDGET_LIMIT,
    STEP_SUCCESS,
    STEP_DURATION,
    *PAGE_GAUGES.values(),
    PAGE_FAILED,
    PAGE_ERRORS,
    PAGE_THIRD_PARTY_ERRORS,
    KIND_INFO,
    PHASE,
    HTTP_STATUS,
    PROBE_HTTP_STATUS,
    CERT_EXPIRY,
    PROBE_CERT_EXPIRY,
    RUNS,
    SCHEDULED,
    FAILURES,
    DURATIONS,
)

AGENT_GAUGES: dict[str, tuple[Family, Callable[[AgentHeartbeat], float]]] = {
    "running": (
        _gauge("parcours_agent_running_journeys", "Journeys running now."),
        lambda h: float(h.running),
    ),
    "jobs": (
        _gauge("parcours_agent_scheduled_jobs", "Scheduled (journey, device) jobs."),
        lambda h: float(len(h.jobs)),
    ),
    "reload": (
        _gauge(
            "parcours_config_last_reload_successful", "1 if the last config (re)load was valid."
        ),
        lambda h: 1.0 if h.config_reload_successful else 0.0,
    ),
    "reload_at": (
        _gauge(
            "parcours_config_last_reload_success_timestamp_seconds",
            "When a config last loaded successfully.",
        ),
        lambda h: h.config_last_reload_success_at,
    ),
}
AGENT_COUNTERS: dict[str, tuple[Family, Callable[[AgentHeartbeat], float]]] = {
    "skipped": (
        Family(
            "parcours_agent_skipped_runs_total",
            "counter",
            "Runs skipped because the previous one still ran.",
        ),
        lambda h: float(h.skipped_runs),
    ),
    "missed": (
        Family(
            "parcours_agent_missed_runs_total",
            "counter",
            "Runs missed by more than the misfire grace time.",
        ),
        lambda h: float(h.missed_runs),
    ),
    "restarts": (
        Family(
            "parcours_agent_chromium_restarts_total",
            "counter",
            "Chromium relaunches after a crash.",
        ),
        lambda h: float(h.chromium_restarts),
    ),
    "dropped": (
        Family(
            "parcours_agent_results_dropped_total",
            "counter",
            "Results the agent could not deliver and dropped.",
        ),
        lambda h: float(h.results_dropped),
    ),
    "artifacts_dropped": (
        Family(
            "parcours_agent_artifacts_dropped_total",
            "counter",
            "Screenshots, HTML or traces the agent could not deliver.",
        ),
        lambda h: float(h.artifacts_dropped),
    ),
}
AGENT_UP = _gauge("parcours_agent_up", "1 if the agent sent a heartbeat in the last 90 s.")
AGENT_SEEN = _gauge(
    "parcours_agent_last_heartbeat_timestamp_seconds", "When the agent's last heartbeat arrived."
)
AGENT_LAG = Family(
    "parcours_agent_scheduler_lag_seconds", "histogram", "Actual minus planned start of runs."
)


def escape(value: str) -> str:
    """A label value as the text format wants it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels(**pairs: str) -> str:
    """``{a="x",b="y"}`` from keyword pairs, in the order given."""
    return "{" + _pairs(pairs.items()) + "}"


def _extra(**pairs: str) -> str:
    """``,a="x",b="y"``: labels to add after a series' own, every value escaped."""
    return _extra_text(tuple(pairs.items()))


@functools.lru_cache(maxsize=1 << 16)
def _extra_text(pairs: tuple[tuple[str, str], ...]) -> str:
    """The same few step names and measures come back in every series: escaped once."""
    return "," + _pairs(pairs)


def _pairs(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{escape(v)}"' for k, v in pairs)


Entry = tuple[str, str, str]  # (family, suffix, extra labels) of one value
# Entries that come together, in value order. The common ones (a step's, a page's, the
# counters') are built once and kept, so a series' shape is a few dozen kept objects and
# comparing it with the last render's is mostly identity checks: building the shape value
# by value cost more than formatting the values.
Segment = tuple[Entry, ...]
Shape = tuple[Segment, ...]


@dataclass(frozen=True)
class Layout:
    """Where each value of one series goes: a %-template per family, built once for a
    shape. A series keeps its shape from run to run (same steps, same pages), so a scrape
    after every series changed formats values into kept templates, one call per family,
    instead of building each line's label text again."""

    shape: Shape
    size: int  # values the shape lays out
    families: tuple[tuple[str, bytes, Callable[[list[float]], tuple[float, ...]]], ...]

    @classmethod
    def of(cls, shape: Shape, base: str) -> Layout:
        entries = [entry for segment in shape for entry in segment]
        by_family: dict[str, list[int]] = {}
        for index, (name, _, _) in enumerate(entries):
            by_family.setdefault(name, []).append(index)
        families = []
        for name, indices in by_family.items():
            template = "".join(
                # A % in a label value (a journey named "50% off") must stay a character.
                f"{name}{entries[i][1]}{{{base}{entries[i][2]}}}".replace("%", "%%") + " %a\n"
                for i in indices
            ).encode()  # bytes: %a of a float is its repr, and the scrape need not encode
            families.append((name, template, _picker(indices)))
        return cls(shape, len(entries), tuple(families))

    def render(self, values: list[float]) -> dict[str, bytes]:
        if len(values) != self.size:  # a segment and its values disagree: a bug, said so
            raise ValueError(f"{len(values)} values for a layout of {self.size}")
        return {name: template % pick(values) for name, template, pick in self.families}


def _picker(indices: list[int]) -> Callable[[list[float]], tuple[float, ...]]:
    if len(indices) == 1:
        only = indices[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*indices)


class SeriesLines:
    """The values of one series in the order they are added, and their shape."""

    def __init__(self, result: RunResult) -> None:
        self.base = (
            f'journey="{escape(result.journey)}",location="{escape(result.location)}",'
            f'device="{escape(result.device)}"'
        )
        self.shape: list[Segment] = []
        self.values: list[float] = []

    def add(self, family: Family, suffix: str, extra: str, value: float) -> None:
        """One value, for lines that only some series have."""
        self.shape.append(((family.name, suffix, extra),))
        self.values.append(value)

    def extend(self, segment: Segment, values: Iterable[float]) -> None:
        """Values laid out by a kept segment, one entry each."""
        self.shape.append(segment)
        self.values.extend(values)

    def text(self, layout: Layout | None = None) -> tuple[dict[str, bytes], Layout]:
        """Lines by family name, through ``layout`` when the shape is still the same."""
        shape = tuple(self.shape)
        if layout is None or layout.shape != shape:
            layout = Layout.of(shape, self.base)
        return layout.render(self.values), layout


class Rendered(NamedTuple):
    """One series' lines, and what the next render of the series can reuse."""

    text: dict[str, bytes]  # lines by family name
    layout: Layout
    failure_key: tuple[object, ...]  # what ``failures`` was written from
    failures: bytes


JOURNEY_SHAPE: Segment = tuple((family.name, "", "") for family, _ in JOURNEY_GAUGES.values())
JOURNEY_READS = tuple(read for _, read in JOURNEY_GAUGES.values())
SUCCESS_INDEX = list(JOURNEY_GAUGES).index("success")
CLICKS_SHAPE: Segment = ((CLICKS.name, "", ""), (CLICK_BUDGET.name, "", ""))
PAGE_NAMES = tuple(family.name for family in PAGE_GAUGES.values())
READ_PAGE_MEASURES = operator.attrgetter(*PAGE_GAUGES)  # in PAGE_NAMES order, as a tuple
IS_SET = functools.partial(operator.is_not, None)


@functools.lru_cache(maxsize=1 << 16)
def _step_shape(step: str) -> Segment:
    label = _extra(step=step)
    return ((STEP_SUCCESS.name, "", label), (STEP_DURATION.name, "", label))


# About 1.5 KiB each with its label text: at most 24 MiB, however many step names writers invent.
@functools.lru_cache(maxsize=1 << 14)
def _page_shape(step: str, measured: tuple[bool, ...]) -> Segment:
    """A page's measures that were taken (``measured``, in ``PAGE_NAMES`` order), then
    its failed requests and script errors."""
    label = _extra(step=step)
    taken = tuple((name, "", label) for name in itertools.compress(PAGE_NAMES, measured))
    counts = (PAGE_FAILED, PAGE_ERRORS, PAGE_THIRD_PARTY_ERRORS)
    return taken + tuple((family.name, "", label) for family in counts)


@functools.lru_cache(maxsize=1 << 10)
def _label_shape(family: str, suffix: str, name: str, values: tuple[str, ...]) -> Segment:
    """One line per label value (``le`` of each bucket, ``status`` of each count)."""
    return tuple((family, suffix, _extra(**{name: value})) for value in values)


def _counts(out: SeriesLines, family: Family, counts: Mapping[str, int]) -> None:
    statuses, values = zip(*from_zero(counts, RUN_STATUSES), strict=True)
    out.extend(_label_shape(family.name, "", "status", statuses), map(float, values))


def render_series(series: SeriesState, kept: Rendered | None = None) -> Rendered:
    """Every line of one series, grouped by family name, reusing the layout and the
    failure counters' text of ``kept`` (the series' last render) where they still hold."""
    result = series.latest
    out = SeriesLines(result)
    add = out.add

    journey = [read(result) for read in JOURNEY_READS]
    if series.scheduled_success is not None:  # a retry pending keeps the last
        journey[SUCCESS_INDEX] = 1.0 if series.scheduled_success else 0.0
    out.extend(JOURNEY_SHAPE, journey)
    if result.status is Status.FAILED:
        error = result.error_type.value if result.error_type else "unknown"
        add(FAILED_STEP, "", _extra(step=result.failed_step or "", error_type=error), 1.0)
        summary = first_line(result.error_message or "", ERROR_SUMMARY_MAX)  # masked already
        labels = _extra(step=result.failed_step or "", error_type=error, summary=summary)
        add(ERROR_INFO, "", labels, 1.0)
    add(CONSECUTIVE, "", "", float(series.consecutive_failures))
    if result.interval_seconds:
        add(INTERVAL, "", "", result.interval_seconds)
    if result.alert_min_locations:
        add(ALERT_MIN_LOCATIONS, "", "", result.alert_min_locations)
    for check in result.budgets:
        labels = _extra(step=check.step or "", measure=check.measure, level=check.level)
        add(BUDGET, "", labels, 1.0)
        add(BUDGET_MEASURED, "", labels, check.value)
        add(BUDGET_LIMIT, "", labels, check.limit)
    for step in result.steps:
        if step.status is not Status.SKIPPED:
            passed = 1.0 if step.status is Status.PASSED else 0.0
            out.extend(_step_shape(step.name), (passed, step.duration_seconds))
    _browser_lines(result, out)
    add(KIND_INFO, "", _extra(kind=result.kind), 1.0)
    _exchange_lines(result, add)
    _counts(out, RUNS, series.runs)
    _counts(out, SCHEDULED, series.scheduled)
    bounds, buckets = zip(*series.durations.cumulative(), strict=True)
    out.extend(_label_shape(DURATIONS.name, "_bucket", "le", bounds), map(float, buckets))
    add(DURATIONS, "_sum", "", series.durations.total)
    add(DURATIONS, "_count", "", float(series.durations.count))
    text, layout = out.text(kept.layout if kept is not None else None)
    written_from, failures = _failures(series, kept)
    if failures:
        text[FAILURES.name] = failures
    return Rendered(text, layout, written_from, failures)


def _failures(series: SeriesState, kept: Rendered | None) -> tuple[tuple[object, ...], bytes]:
    """The failure counters' text: the kept one while the counts, kind and steps hold."""
    key = failure_key(series)
    if kept is not None and kept.failure_key == key:
        return key, kept.failures
    return key, failure_lines(series)


def failure_lines(series: SeriesState) -> bytes:
    """The failure counters, every (step, error type) the kind can fail with from 0: a
    block that changes only with a failure or a new set of steps, so a render keeps it
    (``failure_key``) rather than rewrite its fifty-odd lines on every run."""
    out = SeriesLines(series.latest)
    for (step_name, error), count in from_zero(series.failures, failure_grid(series.latest)):
        out.add(FAILURES, "", _extra(step=step_name, error_type=error), float(count))
    return out.text()[0].get(FAILURES.name, b"")


def failure_key(series: SeriesState) -> tuple[object, ...]:
    """What failure_lines depends on: the counts, the kind and the steps."""
    latest = series.latest
    return (frozenset(series.failures.items()), latest.kind, *(s.name for s in latest.steps))


RUN_STATUSES = (Status.PASSED.value, Status.DEGRADED.value, Status.FAILED.value)


def from_zero(counts: Mapping[K, int], expected: Iterable[K]) -> list[tuple[K, int]]:
    """Every expected key, at 0 until counted, then any other counted key, sorted. A counter
    whose first sample is already 1 hides that first increase from ``increase()``: the
    dashboard's failure counts and the availability came out short and fractional."""
    return sorted({**dict.fromkeys(expected, 0), **counts}.items())


def failure_grid(result: RunResult) -> list[tuple[str, str]]:
    """(step, error type) pairs the latest run's steps can fail with, by its kind; a kind
    the contract does not list (a newer agent's) gets its counters as failures come."""
    errors = STEP_ERROR_TYPES.get(result.kind, ())
    grid = [(step.name, error.value) for step in result.steps for error in errors]
    return grid + [("", error.value) for error in NO_STEP_ERROR_TYPES]


def _browser_lines(result: RunResult, out: SeriesLines) -> None:
    """What only browser journeys have: clicks against the budget, and each page's measures
    (two thirds of a browser series' values)."""
    browser = result.browser
    if browser is None:
        return
    out.extend(CLICKS_SHAPE, (float(browser.clicks), float(browser.click_budget)))
    seen: set[str] = set()
    for page in reversed(browser.pages):  # the last page a step loaded speaks for it
        if page.step in seen:
            continue
        seen.add(page.step)
        measures = READ_PAGE_MEASURES(page)
        measured = tuple(map(IS_SET, measures))
        errors = len(page.js_exceptions) + len(page.console_errors)
        counts = (len(page.failed_requests), errors, len(page.third_party_js_exceptions))
        out.extend(
            _page_shape(page.step, measured),
            (*map(float, itertools.compress(measures, measured)), *map(float, counts)),
        )


def _exchange_lines(result: RunResult, add: Callable[[Family, str, str, float], None]) -> None:
    latest = {exchange.step: exchange for exchange in result.exchanges}  # a step's last
    for step, exchange in latest.items():
        step_label = _extra(step=step)
        for phase, seconds in exchange.phases.items():
            add(PHASE, "", _extra(step=step, phase=phase), seconds)
        if exchange.status is not None:
            add(HTTP_STATUS, "", step_label, float(exchange.status))
        if exchange.tls is not None and exchange.tls.earliest_expiry is not None:
            add(CERT_EXPIRY, "", step_label, exchange.tls.earliest_expiry)
    statuses = [e.status for e in result.exchanges if e.status is not None]
    if statuses:
        add(PROBE_HTTP_STATUS, "", "", float(statuses[-1]))
    expiries = [
        e.tls.earliest_expiry
        for e in result.exchanges
        if e.tls is not None and e.tls.earliest_expiry is not None
    ]
    if expiries:
        add(PROBE_CERT_EXPIRY, "", "", min(expiries))


def render_agents(agents: Iterable[tuple[AgentHeartbeat, float]], now: float) -> str:
    """Agent health families; few agents, so rendered fresh every scrape."""
    groups: dict[Family, list[str]] = {}

    def add(family: Family, suffix: str, label_text: str, value: float) -> None:
        groups.setdefault(family, []).append(f"{family.name}{suffix}{label_text} {value!r}\n")

    for beat, received_at in agents:
        who = labels(agent=beat.agent, location=beat.location)
        add(AGENT_UP, "", who, 1.0 if now - received_at <= AGENT_STALE_SECONDS else 0.0)
        add(AGENT_SEEN, "", who, received_at)
        for family, read in AGENT_GAUGES.values():
            add(family, "", who, read(beat))
        for family, read in AGENT_COUNTERS.values():
            add(family, "", who, read(beat))
        for bound, count in sorted(beat.lag_buckets.items(), key=lambda kv: float(kv[0])):
            le = labels(agent=beat.agent, location=beat.location, le=bound)
            add(AGENT_LAG, "_bucket", le, float(count))
        add(AGENT_LAG, "_sum", who, beat.lag_sum)
        add(AGENT_LAG, "_count", who, float(beat.lag_count))
    return "".join(family.header() + "".join(lines) for family, lines in groups.items())


class MetricsRenderer:
    """Keeps every series' lines, by family, between scrapes, and renders a series again
    only when a result changed it. ``keep_fresh`` does that as results arrive, so a scrape
    joins lines already written instead of formatting every value that changed since the
    last one (with 1,000 journeys x 5 steps x 3 devices that formatting took 0.3 s of a
    core, longer than the rest of the scrape together)."""

    def __init__(self) -> None:
        # Series -> (the state object and its version when rendered, the render).
        self._rendered: dict[SeriesKey, tuple[SeriesState, int, Rendered]] = {}
        # Family name -> series -> its lines: a scrape joins each family's values in turn.
        self._families: dict[str, dict[SeriesKey, bytes]] = {
            family.name: {} for family in SERIES_FAMILIES
        }
        self._pending: dict[SeriesKey, None] = {}  # changed, in order, not rendered yet
        self._changed = asyncio.Event()
        self._waiting_since = 0.0  # when the oldest series in _pending changed

    def changed(self, keys: Iterable[SeriesKey]) -> None:
        """Results changed these series: ``keep_fresh`` renders them in the next lull."""
        if not self._pending:
            self._waiting_since = time.monotonic()
        self._pending.update(dict.fromkeys(keys))
        self._changed.set()

    async def keep_fresh(self, state: CollectorState) -> None:
        """Render changed series between scrapes, until cancelled. Results go first: it
        waits for a lull (``QUIET_SECONDS`` without a result) and stops rendering when
        results come again, unless what waits is ``BACKLOG_SECONDS`` old. A series changed
        several times while it waited renders once."""
        while True:
            await self._changed.wait()
            while self._changed.is_set() and not self._overdue():
                self._changed.clear()
                await asyncio.sleep(QUIET_SECONDS)
            self._changed.clear()
            await self._render_pending(state)

    def _overdue(self) -> bool:
        return time.monotonic() - self._waiting_since >= BACKLOG_SECONDS

    async def _render_pending(self, state: CollectorState) -> None:
        """Render the waiting series, yielding every ``SLICE_SECONDS``; back to waiting
        for a lull if results arrived meanwhile."""
        slice_began = time.monotonic()
        while self._pending:
            key = next(iter(self._pending))
            del self._pending[key]
            series = state.series.get(key)
            if series is not None:
                self._render_one(key, series)
            if time.monotonic() - slice_began >= SLICE_SECONDS:
                await asyncio.sleep(0)
                if self._changed.is_set() and not self._overdue():
                    return
                slice_began = time.monotonic()

    async def refresh(self, state: CollectorState) -> int:
        """Render every series whose version moved since its last render and drop the lines
        of forgotten series; returns how many were rendered. Scans every version rather
        than trust the pending set alone (whatever changed the state, the scrape has it),
        and yields between slices so ingest keeps flowing."""
        done = 0
        for key in self.stale(state):
            series = state.series.get(key)
            if series is not None and self._render_one(key, series):
                done += 1
                if done % SLICE == 0:
                    await asyncio.sleep(0)
        for gone in self._rendered.keys() - state.series.keys():
            self._forget(gone)
        return done

    def stale(self, state: CollectorState) -> list[SeriesKey]:
        """Series whose kept lines are not their latest result's: what a scrape would
        render now."""
        return [key for key, series in state.series.items() if not self._current(key, series)]

    def _current(self, key: SeriesKey, series: SeriesState) -> bool:
        """Whether the kept lines are this series' as it stands: the same state object (a
        series forgotten and created again starts from version 1 too) at the same version."""
        kept = self._rendered.get(key)
        return kept is not None and kept[0] is series and kept[1] == series.version

    def _render_one(self, key: SeriesKey, series: SeriesState) -> int:
        if self._current(key, series):
            return 0  # rendered since the scrape or the pass listed it
        kept = self._rendered.get(key)
        version = series.version
        try:
            fresh = render_series(series, kept[2] if kept is not None else None)
        except Exception as exc:  # noqa: BLE001 - one series never takes /metrics down
            log.error("series_render_failed", series=ascii(key)[:300], error=repr(exc))
            self._forget(key)  # left out rather than exported with values it no longer has
            return 0
        self._rendered[key] = (series, version, fresh)
        families = self._families
        for name, text in fresh.text.items():
            families[name][key] = text
        if kept is not None:
            for name in kept[2].text.keys() - fresh.text.keys():
                del families[name][key]
        return 1

    def _forget(self, key: SeriesKey) -> None:
        kept = self._rendered.pop(key, None)
        if kept is not None:
            for name in kept[2].text:
                del self._families[name][key]

    async def render(self, state: CollectorState, now: float | None = None) -> bytes:
        """The journey and agent families, every result applied before the call included."""
        return b"".join(await self.render_parts(state, now))

    async def render_parts(self, state: CollectorState, now: float | None = None) -> list[bytes]:
        """``render``'s bytes in pieces, one or two a family: a gzipped scrape compresses
        them as they are rather than copying 50 MB into one piece first. With
        ``keep_fresh`` running, what is left to render is what arrived since its last
        turn, and the rest is a join of kept bytes by family."""
        await self.refresh(state)
        parts = []
        for family in SERIES_FAMILIES:
            lines = self._families[family.name]
            if lines:
                parts.append(family.header().encode())
                parts.append(b"".join(lines.values()))
        agents = [(seen.heartbeat, seen.received_at) for seen in state.agents.values()]
        parts.append(render_agents(agents, time.time() if now is None else now).encode())
        return parts
