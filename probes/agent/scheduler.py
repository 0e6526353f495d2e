"""One APScheduler job per (journey, device), each in a stable slot of its interval.

The slot is an offset within the interval derived from a hash of the job's
name, spread so that jobs sharing an interval do not start together
(``probes.slots``): a hundred journeys spread over the interval instead of all
starting at second 0, and a restarted agent keeps each journey's slot instead
of running it early. ``max_instances=1`` means a slow run never overlaps the next; the
skipped run is counted, as is a run missed past its grace time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from probes.agent.stats import AgentStats
from probes.config.spec import JourneySpec
from probes.slots import kept_next_run, slot_job, spread_by_interval

log = structlog.get_logger(__name__)

RunJob = Callable[[JourneySpec, str, datetime | None], Awaitable[None]]


def job_id(journey: str, device: str) -> str:
    """``journey@device``: the job's name, also what heartbeats list."""
    return f"{journey}@{device}"


@dataclass(frozen=True)
class ScheduleChange:
    """What a new config did to the jobs."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


class JourneyScheduler:
    """Keeps one job per (journey, device) in line with the current config."""

    def __init__(self, run_job: RunJob, stats: AgentStats) -> None:
        self._run_job = run_job
        self._stats = stats
        self._specs: dict[str, tuple[JourneySpec, str]] = {}
        self._planned: dict[str, datetime] = {}
        self._offsets: dict[str, float] = {}  # each job's slot within its interval
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_listener(
            self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_SUBMITTED
        )

    @property
    def job_ids(self) -> tuple[str, ...]:
        """The jobs scheduled now."""
        return tuple(self._specs)

    def start(self) -> None:
        """Start firing jobs (needs a running event loop)."""
        self._scheduler.start()

    def pause(self) -> None:
        """Fire no new runs; running ones go on (what a graceful stop needs)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop firing new runs; running ones are the agent's to finish or cancel."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def apply(self, journeys: Sequence[JourneySpec]) -> ScheduleChange:
        """Add, remove and replace jobs; unchanged journeys keep their job untouched."""
        wanted = {job_id(j.name, d): (j, d) for j in journeys for d in j.devices}
        offsets = spread_by_interval((name, spec.interval) for name, (spec, _) in wanted.items())
        removed = [name for name in self._specs if name not in wanted]
        added = [name for name in wanted if name not in self._specs]
        changed = [
            n
            for n in wanted
            if n in self._specs
            and (self._specs[n][0] != wanted[n][0] or self._offsets.get(n) != offsets[n])
        ]
        for name in removed:
            self._scheduler.remove_job(name)
            del self._specs[name]
            self._offsets.pop(name, None)
        for name in [*added, *changed]:
            spec, device = wanted[name]
            was = self._specs[name][0].interval if name in self._specs else None
            next_run = kept_next_run(self._scheduler, name, offsets[name], spec.interval, was)
            self._specs[name] = (spec, device)
            self._offsets[name] = offsets[name]
            job = slot_job(name, spec.interval, offsets[name], next_run)
            self._scheduler.add_job(self._fire, args=[name], **job)
        unchanged = [n for n in wanted if n not in added and n not in changed]
        change = ScheduleChange(tuple(added), tuple(removed), tuple(changed), tuple(unchanged))
        log.info(
            "schedule_applied",
            added=len(added),
            removed=len(removed),
            changed=len(changed),
            unchanged=len(unchanged),
        )
        return change

    def next_run_time(self, name: str) -> datetime | None:
        """When a job fires next (tests and the status page)."""
        job = self._scheduler.get_job(name)
        return job.next_run_time if job is not None else None

    async def _fire(self, name: str) -> None:
        entry = self._specs.get(name)
        if entry is None:
            return  # removed between firing and running
        spec, device = entry
        try:
            await self._run_job(spec, device, self._planned.pop(name, None))
        except asyncio.CancelledError:
            # Only the agent's own shutdown cancels runs; APScheduler would log it as a crash.
            log.info("run_cancelled", job=name, reason="agent stopping")

    def _on_event(self, event: Any) -> None:
        if event.code == EVENT_JOB_SUBMITTED and isinstance(event, JobSubmissionEvent):
            self._planned[event.job_id] = event.scheduled_run_times[-1]
        elif event.code == EVENT_JOB_MAX_INSTANCES and isinstance(event, JobEvent):
            self._stats.skipped_runs += 1
            log.warning("run_skipped", job=event.job_id, reason="previous run still running")
        elif event.code == EVENT_JOB_MISSED and isinstance(event, JobEvent):
            self._stats.missed_runs += 1
            log.warning("run_missed", job=event.job_id)
