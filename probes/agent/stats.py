"""The agent's own health, sent to the collector in heartbeats."""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field

from probes.result import AgentHeartbeat

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class AgentStats:
    """Cumulative counters since the agent started; one instance per agent."""

    skipped_runs: int = 0
    missed_runs: int = 0
    results_dropped: int = 0
    artifacts_dropped: int = 0
    running: int = 0
    config_reload_successful: bool = True
    config_last_reload_success_at: float = 0.0
    lag_counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    lag_sum: float = 0.0
    lag_count: int = 0
    # The last lags, (at firing, at start once a browser slot was free): benchmarks read them.
    recent_lags: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=1000))

    def observe_lag(self, seconds: float, at_fire: float | None = None) -> None:
        """Record how late a run started against its planned time."""
        seconds = max(seconds, 0.0)
        self.recent_lags.append((max(at_fire if at_fire is not None else seconds, 0.0), seconds))
        self.lag_counts[bisect.bisect_left(LAG_BUCKETS, seconds)] += 1
        self.lag_sum += seconds
        self.lag_count += 1

    def lag_buckets(self) -> dict[str, int]:
        """Cumulative bucket counts keyed by upper bound, ``+Inf`` last."""
        running, buckets = 0, {}
        for bound, count in zip((*map(str, LAG_BUCKETS), "+Inf"), self.lag_counts, strict=True):
            running += count
            buckets[bound] = running
        return buckets

    def heartbeat(
        self,
        agent: str,
        location: str,
        *,
        started_at: float,
        jobs: tuple[str, ...],
        chromium_restarts: int,
    ) -> AgentHeartbeat:
        """The agent's health now, as both kinds of agent report it."""
        return AgentHeartbeat(
            agent=agent,
            location=location,
            started_at=started_at,
            sent_at=time.time(),
            jobs=jobs,
            running=self.running,
            skipped_runs=self.skipped_runs,
            missed_runs=self.missed_runs,
            chromium_restarts=chromium_restarts,
            results_dropped=self.results_dropped,
            config_reload_successful=self.config_reload_successful,
            config_last_reload_success_at=self.config_last_reload_success_at,
            lag_buckets=self.lag_buckets(),
            lag_sum=self.lag_sum,
            lag_count=self.lag_count,
            artifacts_dropped=self.artifacts_dropped,
        )
