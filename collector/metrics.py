"""/metrics, built at scrape time from the collector's state (never module-level gauges).

Names follow Prometheus conventions under ``parcours_``; labels are configured
names only (journey, step, location, device, agent) plus small fixed sets
(status, error_type, vital, rating, measure, level). ``probe_success`` and
``probe_duration_seconds`` are exported too, so that rules and dashboards
written for blackbox_exporter work unchanged. The catalogue of names and
labels is pinned by a golden test because dashboards and alerts rely on it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from collector.state import CollectorState, Histogram
from probes.result import AgentHeartbeat, RunResult, Status

SERIES = ["journey", "location", "device"]
STEP = [*SERIES, "step"]
AGENT = ["agent", "location"]

# PageResult field -> (metric name, help). Last run's value, per step that loaded the page.
PAGE_GAUGES = {
    "ttfb_seconds": ("parcours_page_ttfb_seconds", "Time to first byte of the page."),
    "fcp_seconds": ("parcours_page_fcp_seconds", "First contentful paint."),
    "lcp_seconds": ("parcours_page_lcp_seconds", "Largest contentful paint."),
    "cls": ("parcours_page_cls", "Cumulative layout shift (largest session window)."),
    "inp_seconds": ("parcours_page_inp_seconds", "Slowest interaction (INP) on the page."),
    "dom_content_loaded_seconds": (
        "parcours_page_dom_content_loaded_seconds",
        "DOMContentLoaded event end, from navigation start.",
    ),
    "load_seconds": ("parcours_page_load_seconds", "Load event end, from navigation start."),
    "transfer_bytes": ("parcours_page_transfer_bytes", "Bytes transferred for the page."),
}
VITALS = {
    "ttfb_seconds": "ttfb",
    "fcp_seconds": "fcp",
    "lcp_seconds": "lcp",
    "cls": "cls",
    "inp_seconds": "inp",
}
AGENT_STALE_SECONDS = 90.0  # three missed heartbeats


@dataclass(frozen=True)
class Snapshot:
    """A consistent copy of the state, taken on the event loop, rendered anywhere."""

    latest: list[RunResult]
    runs_total: list[tuple[tuple[str, ...], int]]
    failures_total: list[tuple[tuple[str, ...], int]]
    journey_durations: list[tuple[tuple[str, ...], Histogram]]
    step_durations: list[tuple[tuple[str, ...], Histogram]]
    agents: list[tuple[tuple[str, str], AgentHeartbeat, float]]

    @classmethod
    def of(cls, state: CollectorState) -> Snapshot:
        """Copy what rendering reads; cheap next to rendering itself."""
        return cls(
            latest=list(state.latest.values()),
            runs_total=list(state.runs_total.items()),
            failures_total=list(state.failures_total.items()),
            journey_durations=[(k, _copy(h)) for k, h in state.journey_durations.items()],
            step_durations=[(k, _copy(h)) for k, h in state.step_durations.items()],
            agents=[(k, seen.heartbeat, seen.received_at) for k, seen in state.agents.items()],
        )


def _copy(histogram: Histogram) -> Histogram:
    return Histogram(histogram.bounds, list(histogram.counts), histogram.total, histogram.count)


class StateCollector(Collector):
    """A prometheus-client collector over one snapshot of the state."""

    def __init__(self, snapshot: Snapshot, now: float | None = None) -> None:
        self._snapshot = snapshot
        self._now = time.time() if now is None else now

    def collect(self) -> Iterator[Metric]:
        """Every family, journeys first, then agents."""
        yield from self._journey_families()
        yield from self._step_families()
        yield from self._page_families()
        yield from self._counter_families()
        yield from self._histogram_families()
        yield from self._agent_families()

    def _journey_families(self) -> Iterator[Metric]:
        gauges = {
            "success": GaugeMetricFamily(
                "parcours_journey_success",
                "1 if the last run passed or was degraded.",
                labels=SERIES,
            ),
            "degraded": GaugeMetricFamily(
                "parcours_journey_degraded",
                "1 if the last run exceeded a warn budget.",
                labels=SERIES,
            ),
            "duration": GaugeMetricFamily(
                "parcours_journey_last_duration_seconds",
                "Wall time of the last run.",
                labels=SERIES,
            ),
            "clicks": GaugeMetricFamily(
                "parcours_journey_clicks", "Clicks the last run used.", labels=SERIES
            ),
            "budget": GaugeMetricFamily(
                "parcours_journey_click_budget", "The journey's click budget.", labels=SERIES
            ),
            "last_run": GaugeMetricFamily(
                "parcours_journey_last_run_timestamp_seconds",
                "Start of the last run (Unix time).",
                labels=SERIES,
            ),
            "attempt": GaugeMetricFamily(
                "parcours_journey_last_attempt",
                "Attempt number of the last run (2 = a retry).",
                labels=SERIES,
            ),
            "probe_success": GaugeMetricFamily(
                "probe_success", "blackbox_exporter-compatible success.", labels=SERIES
            ),
            "probe_duration": GaugeMetricFamily(
                "probe_duration_seconds", "blackbox_exporter-compatible duration.", labels=SERIES
            ),
        }
        budgets = GaugeMetricFamily(
            "parcours_budget_exceeded",
            "1 for each budget the last run exceeded.",
            labels=[*STEP, "measure", "level"],
        )
        for result in self._snapshot.latest:
            labels = [result.journey, result.location, result.device]
            success = 1.0 if result.success else 0.0
            values = {
                "success": success,
                "degraded": 1.0 if result.status is Status.DEGRADED else 0.0,
                "duration": result.duration_seconds,
                "clicks": float(result.clicks),
                "budget": float(result.click_budget),
                "last_run": result.started_at,
                "attempt": float(result.attempt),
                "probe_success": success,
                "probe_duration": result.duration_seconds,
            }
            for name, family in gauges.items():
                family.add_metric(labels, values[name])
            for check in result.budgets:
                budgets.add_metric([*labels, check.step or "", check.measure, check.level], 1.0)
        yield from gauges.values()
        yield budgets

    def _step_families(self) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "parcours_step_success",
            "1 if the step passed in the last run, 0 if it failed.",
            labels=STEP,
        )
        duration = GaugeMetricFamily(
            "parcours_step_last_duration_seconds",
            "Wall time of the step in the last run.",
            labels=STEP,
        )
        for result in self._snapshot.latest:
            for step in result.steps:
                if step.status is Status.SKIPPED:
                    continue
                labels = [result.journey, result.location, result.device, step.name]
                success.add_metric(labels, 1.0 if step.status is Status.PASSED else 0.0)
                duration.add_metric(labels, step.duration_seconds)
        yield success
        yield duration

    def _page_families(self) -> Iterator[Metric]:
        gauges = {
            field: GaugeMetricFamily(name, text, labels=STEP)
            for field, (name, text) in PAGE_GAUGES.items()
        }
        requests = GaugeMetricFamily(
            "parcours_page_requests", "Requests the page made.", labels=STEP
        )
        failed = GaugeMetricFamily(
            "parcours_page_failed_requests",
            "Requests with HTTP >= 400 or no response.",
            labels=STEP,
        )
        errors = GaugeMetricFamily(
            "parcours_page_js_errors",
            "Uncaught exceptions and console errors on the page.",
            labels=STEP,
        )
        ratings = GaugeMetricFamily(
            "parcours_page_vital_rating",
            "1 for the Web Vital's Google rating in the last run.",
            labels=[*STEP, "vital", "rating"],
        )
        for result in self._snapshot.latest:
            seen: set[str] = set()
            for page in reversed(result.pages):  # the last page a step loaded speaks for it
                if page.step in seen:
                    continue
                seen.add(page.step)
                labels = [result.journey, result.location, result.device, page.step]
                for field, family in gauges.items():
                    value = getattr(page, field)
                    if value is not None:
                        family.add_metric(labels, float(value))
                requests.add_metric(labels, float(page.requests))
                failed.add_metric(labels, float(len(page.failed_requests)))
                errors.add_metric(labels, float(len(page.js_exceptions) + len(page.console_errors)))
                for field, rating in page.ratings.items():
                    ratings.add_metric([*labels, VITALS.get(field, field), rating], 1.0)
        yield from gauges.values()
        yield from (requests, failed, errors, ratings)

    def _counter_families(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "parcours_journey_runs", "Runs by outcome (every attempt).", labels=[*SERIES, "status"]
        )
        for key, count in self._snapshot.runs_total:
            runs.add_metric(list(key), float(count))
        failures = CounterMetricFamily(
            "parcours_journey_failures",
            "Failed runs by step and error type.",
            labels=[*STEP, "error_type"],
        )
        for key, count in self._snapshot.failures_total:
            failures.add_metric(list(key), float(count))
        yield runs
        yield failures

    def _histogram_families(self) -> Iterator[Metric]:
        for name, text, labels, items in (
            (
                "parcours_journey_duration_seconds",
                "Run wall time across runs.",
                SERIES,
                self._snapshot.journey_durations,
            ),
            (
                "parcours_step_duration_seconds",
                "Step wall time across runs.",
                STEP,
                self._snapshot.step_durations,
            ),
        ):
            family = HistogramMetricFamily(name, text, labels=labels)
            for key, histogram in items:
                family.add_metric(list(key), histogram.cumulative(), histogram.total)
            yield family

    def _agent_families(self) -> Iterator[Metric]:
        families = {
            "up": GaugeMetricFamily(
                "parcours_agent_up",
                "1 if the agent sent a heartbeat in the last 90 s.",
                labels=AGENT,
            ),
            "seen": GaugeMetricFamily(
                "parcours_agent_last_heartbeat_timestamp_seconds",
                "When the agent's last heartbeat arrived.",
                labels=AGENT,
            ),
            "running": GaugeMetricFamily(
                "parcours_agent_running_journeys", "Journeys running now.", labels=AGENT
            ),
            "jobs": GaugeMetricFamily(
                "parcours_agent_scheduled_jobs", "Scheduled (journey, device) jobs.", labels=AGENT
            ),
            "reload": GaugeMetricFamily(
                "parcours_config_last_reload_successful",
                "1 if the last config (re)load was valid.",
                labels=AGENT,
            ),
            "reload_at": GaugeMetricFamily(
                "parcours_config_last_reload_success_timestamp_seconds",
                "When a config last loaded successfully.",
                labels=AGENT,
            ),
        }
        counters = {
            "skipped": CounterMetricFamily(
                "parcours_agent_skipped_runs",
                "Runs skipped because the previous one still ran.",
                labels=AGENT,
            ),
            "missed": CounterMetricFamily(
                "parcours_agent_missed_runs",
                "Runs missed by more than the misfire grace time.",
                labels=AGENT,
            ),
            "restarts": CounterMetricFamily(
                "parcours_agent_chromium_restarts",
                "Chromium relaunches after a crash.",
                labels=AGENT,
            ),
            "dropped": CounterMetricFamily(
                "parcours_agent_results_dropped",
                "Results the agent could not deliver and dropped.",
                labels=AGENT,
            ),
        }
        lag = HistogramMetricFamily(
            "parcours_agent_scheduler_lag_seconds",
            "Actual minus planned start of runs.",
            labels=AGENT,
        )
        for (agent, location), hb, received_at in self._snapshot.agents:
            labels = [agent, location]
            fresh = self._now - received_at <= AGENT_STALE_SECONDS
            families["up"].add_metric(labels, 1.0 if fresh else 0.0)
            families["seen"].add_metric(labels, received_at)
            families["running"].add_metric(labels, float(hb.running))
            families["jobs"].add_metric(labels, float(len(hb.jobs)))
            families["reload"].add_metric(labels, 1.0 if hb.config_reload_successful else 0.0)
            families["reload_at"].add_metric(labels, hb.config_last_reload_success_at)
            counters["skipped"].add_metric(labels, float(hb.skipped_runs))
            counters["missed"].add_metric(labels, float(hb.missed_runs))
            counters["restarts"].add_metric(labels, float(hb.chromium_restarts))
            counters["dropped"].add_metric(labels, float(hb.results_dropped))
            buckets = sorted(hb.lag_buckets.items(), key=lambda kv: float(kv[0]))
            lag.add_metric(labels, buckets, hb.lag_sum)
        yield from families.values()
        yield from counters.values()
        yield lag
