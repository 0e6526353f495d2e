"""What the collector knows now: the latest result per series, counters, histograms, agents.

Plain data, owned by one collector instance, mutated only on the event loop.
/metrics is built from a snapshot of it at scrape time, so a journey that an
agent stopped running stops being exported.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field

from probes.result import AgentHeartbeat, RunResult, Status

SeriesKey = tuple[str, str, str]  # journey, location, device
StepKey = tuple[str, str, str, str]  # journey, location, device, step

JOURNEY_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
STEP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    """Cumulative-on-export histogram of observations (seconds)."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        """Count one observation in its bucket."""
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs as Prometheus wants them, +Inf last."""
        running, pairs = 0, []
        counts = self.counts or [0] * (len(self.bounds) + 1)
        for bound, count in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass
class AgentSeen:
    """The last heartbeat of an agent and when it arrived."""

    heartbeat: AgentHeartbeat
    received_at: float


@dataclass
class CollectorState:
    """Everything /metrics is built from."""

    latest: dict[SeriesKey, RunResult] = field(default_factory=dict)
    runs_total: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    failures_total: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    journey_durations: dict[SeriesKey, Histogram] = field(default_factory=dict)
    step_durations: dict[StepKey, Histogram] = field(default_factory=dict)
    agents: dict[tuple[str, str], AgentSeen] = field(default_factory=dict)

    def apply(self, result: RunResult) -> None:
        """Count a run and keep it as latest if it is the newest of its series."""
        key = (result.journey, result.location, result.device)
        current = self.latest.get(key)
        if current is None or result.started_at >= current.started_at:
            self.latest[key] = result
        self.runs_total[(*key, result.status.value)] += 1
        if result.status is Status.FAILED:
            step = result.failed_step or ""
            error = result.error_type.value if result.error_type else "unknown"
            self.failures_total[(*key, step, error)] += 1
        self.journey_durations.setdefault(key, Histogram(JOURNEY_BUCKETS)).observe(
            result.duration_seconds
        )
        for step_result in result.steps:
            if step_result.status is not Status.SKIPPED:
                histogram = self.step_durations.setdefault(
                    (*key, step_result.name), Histogram(STEP_BUCKETS)
                )
                histogram.observe(step_result.duration_seconds)

    def apply_heartbeat(self, heartbeat: AgentHeartbeat, now: float | None = None) -> None:
        """Record an agent's health and forget journeys it no longer runs."""
        self.agents[(heartbeat.agent, heartbeat.location)] = AgentSeen(
            heartbeat, time.time() if now is None else now
        )
        running = set(heartbeat.jobs)
        gone = [
            key
            for key, result in self.latest.items()
            if result.agent == heartbeat.agent
            and result.location == heartbeat.location
            and f"{key[0]}@{key[2]}" not in running
        ]
        for key in gone:
            self.forget(key)

    def forget(self, key: SeriesKey) -> None:
        """Stop exporting a series (its journey was removed from the config)."""
        self.latest.pop(key, None)
        self.journey_durations.pop(key, None)
        for counter in (self.runs_total, self.failures_total):
            for counted in [k for k in counter if k[:3] == key]:
                del counter[counted]
        for step_key in [k for k in self.step_durations if k[:3] == key]:
            del self.step_durations[step_key]
