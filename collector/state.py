"""What the collector knows now: per series, the latest result, its counters and histogram.

Plain data, owned by one collector instance, mutated only on the event loop.
Each series carries a version that grows with every result, so /metrics can
reuse the lines it rendered for a series until that series changes. A
journey that an agent stopped running is forgotten, and so stops being
exported.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from dataclasses import dataclass, field

from probes.result import AgentHeartbeat, RunResult, Status

SeriesKey = tuple[str, str, str]  # journey, location, device

JOURNEY_BUCKETS = (0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)


@dataclass
class Histogram:
    """Observations (seconds) per bucket; cumulative when exported."""

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
class SeriesState:
    """One journey on one device at one location."""

    latest: RunResult
    version: int = 0
    runs: Counter[str] = field(default_factory=Counter)  # by status
    failures: Counter[tuple[str, str]] = field(default_factory=Counter)  # (step, error type)
    durations: Histogram = field(default_factory=lambda: Histogram(JOURNEY_BUCKETS))
    consecutive_failures: int = 0  # scheduled runs failed in a row (after their retries)
    _retry_pending: bool = False  # the last attempt failed and says a retry follows
    # Scheduled runs by the outcome of their last attempt, and whether the latest worked:
    # availability is about scheduled runs, not attempts (a passing retry is a pass).
    scheduled: Counter[str] = field(default_factory=Counter)
    scheduled_success: bool | None = None
    _last_final_at: float = float("-inf")

    def count(self, result: RunResult) -> None:
        """Count a run (every attempt) and keep it if it is the newest."""
        if result.started_at >= self.latest.started_at:
            self.latest = result
        if result.success:
            self.consecutive_failures = 0  # a passing retry ends the streak too
            self._retry_pending = False
        elif not result.final:
            self._retry_pending = True  # the scheduled run is not over: its retry decides
        elif result.attempt == 1 or self._retry_pending:
            # A scheduled run failed, retries included. (Agents that do not say ``final``
            # count on their first attempt, their retries being the same scheduled run.)
            self.consecutive_failures += 1
            self._retry_pending = False
        self.runs[result.status.value] += 1
        if result.final:
            self.scheduled[result.status.value] += 1
            if result.started_at >= self._last_final_at:
                self._last_final_at = result.started_at
                self.scheduled_success = result.success
        if result.status is Status.FAILED:
            error = result.error_type.value if result.error_type else "unknown"
            self.failures[(result.failed_step or "", error)] += 1
        self.durations.observe(result.duration_seconds)
        self.version += 1


@dataclass
class AgentSeen:
    """The last heartbeat of an agent and when it arrived."""

    heartbeat: AgentHeartbeat
    received_at: float


QUIET_INTERVALS = 2  # a series unscheduled by its agent goes once quiet this many intervals
QUIET_DEFAULT_SECONDS = 300.0  # for one-off runs, which carry no interval


@dataclass
class CollectorState:
    """Everything /metrics is built from."""

    series: dict[SeriesKey, SeriesState] = field(default_factory=dict)
    agents: dict[tuple[str, str], AgentSeen] = field(default_factory=dict)
    _per_agent: Counter[str] = field(default_factory=Counter)
    _per_location: Counter[str] = field(default_factory=Counter)
    _owner: dict[SeriesKey, str] = field(default_factory=dict)  # the agent that created it

    def apply(self, result: RunResult) -> SeriesKey:
        """Count a run into its series, creating the series on its first run; returns the
        series' key."""
        key = (result.journey, result.location, result.device)
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = SeriesState(result)
            self._owner[key] = result.agent
            self._per_agent[result.agent] += 1
            self._per_location[result.location] += 1
        series.count(result)
        return key

    def restore(self, results: list[RunResult]) -> None:
        """Where each series stood before a restart (its latest run, the failed scheduled runs
        in a row, the last scheduled outcome), from history, oldest first. Counters are not
        replayed: they restart from 0 as after any restart, which Prometheus handles."""
        for result in results:
            self.apply(result)
        for series in self.series.values():
            series.runs.clear()
            series.scheduled.clear()
            series.failures.clear()
            series.durations = Histogram(JOURNEY_BUCKETS)

    def series_count(self, *, agent: str | None = None, location: str | None = None) -> int:
        """How many series an agent created, or a location has (for cardinality limits)."""
        if agent is not None:
            return self._per_agent[agent]
        return self._per_location[location or ""]

    def apply_heartbeat(self, heartbeat: AgentHeartbeat, now: float | None = None) -> None:
        """Record an agent's health; forget journeys it no longer runs once they went quiet."""
        now = time.time() if now is None else now
        self.agents[(heartbeat.agent, heartbeat.location)] = AgentSeen(heartbeat, now)
        running = set(heartbeat.jobs)
        gone = [
            key
            for key, series in self.series.items()
            if series.latest.agent == heartbeat.agent
            and series.latest.location == heartbeat.location
            and f"{key[0]}@{key[2]}" not in running
            and now - series.latest.finished_at > _quiet_after(series.latest)
        ]
        for key in gone:
            self._forget(key)

    def _forget(self, key: SeriesKey) -> None:
        del self.series[key]
        self._per_agent[self._owner.pop(key)] -= 1
        self._per_location[key[1]] -= 1


def _quiet_after(result: RunResult) -> float:
    return QUIET_INTERVALS * (result.interval_seconds or QUIET_DEFAULT_SECONDS)
