"""The collector schedules; agents work: one job per (check, device, location) and slot.

Each job fires in a stable slot of its interval (the hash includes the
location, so locations do not all fire in the same second) and is published
to the location's work queue with a message id made of check, device,
location and slot: two collectors running the same config publish each job
once, JetStream dropping the second copy within its duplicate window.

The config is the collector's: validated at load (hot reload, last good kept),
read with no environment at all, so that parameters and secrets travel
unresolved and each agent resolves them from its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry, Counter, Gauge

from collector.bus import Bus
from collector.state import CollectorState
from probes.bus import contract as c
from probes.config import ConfigError
from probes.config.loader import LoadedConfig, load_config_sources, read_config_sources
from probes.config.spec import JourneySpec
from probes.config.watch import config_signature, in_daemon_thread
from probes.slots import kept_next_run, slot_job, slot_start, spread_by_interval

log = structlog.get_logger(__name__)
JobKey = tuple[str, str, str]  # check, device, location


@dataclass(frozen=True)
class DispatchSettings:
    """The config the collector schedules, and how it follows agents coming and going."""

    paths: tuple[str, ...]
    watch_interval: float = 2.0
    live_agent_seconds: float = 60.0  # a location counts while one agent beat this recently
    refresh_interval: float = 5.0  # live locations and queue metrics, this often


@dataclass(frozen=True)
class LoadedSources:
    """A validated config and the unresolved texts its jobs carry."""

    config: LoadedConfig
    files: tuple[tuple[str, str], ...]
    config_id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config_id", c.config_id(self.files))


def load_sources(paths: Sequence[str]) -> LoadedSources:
    """Read and validate with no environment: every variable stays as written."""
    sources, problems = read_config_sources(paths)
    if problems:
        raise ConfigError(problems)
    config = load_config_sources(sources, env={}, missing="warn")
    return LoadedSources(config, tuple(sources))


class Dispatcher:
    """Keeps one APScheduler job per (check, device, location) in line with config and
    live agents, publishes each fired job, and exports the queues' depth and age."""

    def __init__(
        self,
        bus: Bus,
        settings: DispatchSettings,
        state: CollectorState,
        registry: CollectorRegistry,
    ) -> None:
        self._bus = bus
        self._settings = settings
        self._state = state
        self._loaded: LoadedSources | None = None
        self._specs: dict[JobKey, JourneySpec] = {}
        self._offsets: dict[JobKey, float] = {}  # each job's slot within its interval
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()
        self.published = Counter(
            "parcours_collector_jobs_published",
            "Jobs published to a location's work queue, by outcome (published; duplicate: "
            "another collector published it first; failed).",
            ["location", "outcome"],
            registry=registry,
        )
        self.config_ok = Gauge(
            "parcours_collector_config_reload_successful",
            "1 if the collector's last config load worked (the last good one is kept).",
            registry=registry,
        )
        self.queue_waiting = Gauge(
            "parcours_location_jobs_waiting",
            "Jobs queued for a location's agents and not yet taken: the signal to add agents.",
            ["location"],
            registry=registry,
        )
        self.queue_running = Gauge(
            "parcours_location_jobs_running",
            "Jobs a location's agents took and have not finished.",
            ["location"],
            registry=registry,
        )
        self.queue_age = Gauge(
            "parcours_location_oldest_job_age_seconds",
            "Age of the oldest job waiting for a location's agents (0 when none waits).",
            ["location"],
            registry=registry,
        )

    @property
    def job_keys(self) -> tuple[JobKey, ...]:
        """What is scheduled now (tests read it)."""
        return tuple(self._specs)

    async def start(self) -> None:
        """Load the config (it must be valid to start) and begin scheduling."""
        signature = await in_daemon_thread(lambda: config_signature(self._settings.paths))
        self._loaded = await in_daemon_thread(lambda: load_sources(self._settings.paths))
        self.config_ok.set(1)
        self._scheduler.start()
        await self._reschedule()
        self._tasks.append(asyncio.create_task(self._watch(signature), name="config-watch"))
        self._tasks.append(asyncio.create_task(self._refresh(), name="dispatch-refresh"))
        log.info("dispatcher_started", jobs=len(self._specs), config=self._loaded.config_id)

    async def stop(self) -> None:
        """Stop firing; nothing is lost (the queue holds what was published)."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def live_locations(self, now: float | None = None) -> set[str]:
        """Locations with an agent whose heartbeat is recent."""
        now = time.time() if now is None else now
        horizon = now - self._settings.live_agent_seconds
        return {loc for (_, loc), seen in self._state.agents.items() if seen.received_at > horizon}

    async def _reschedule(self) -> None:
        """Add, remove and replace jobs; unchanged ones keep their APScheduler job."""
        async with self._lock:
            assert self._loaded is not None
            live = self.live_locations()
            wanted: dict[JobKey, JourneySpec] = {}
            for spec in self._loaded.config.journeys:
                for location in spec.locations or sorted(live):
                    for device in spec.devices:
                        wanted[(spec.name, device, location)] = spec
            for location in {key[2] for key in wanted}:
                try:
                    await self._bus.ensure_location(location)
                except Exception as exc:  # noqa: BLE001 - retried at the next refresh
                    log.error("location_setup_failed", location=location, error=str(exc)[:300])
                    wanted = {k: v for k, v in wanted.items() if k[2] != location}
            offsets: dict[JobKey, float] = {}
            for location in {key[2] for key in wanted}:  # each location's agents apart
                here = [k for k in wanted if k[2] == location]
                spread = spread_by_interval((_job_name(k), wanted[k].interval) for k in here)
                offsets.update((k, spread[_job_name(k)]) for k in here)
            for key in [k for k in self._specs if k not in wanted]:
                self._scheduler.remove_job(_job_name(key))
                del self._specs[key]
                self._offsets.pop(key, None)
            changed = [
                k
                for k in wanted
                if self._specs.get(k) != wanted[k] or self._offsets.get(k) != offsets[k]
            ]
            for key in changed:
                was = self._specs[key].interval if key in self._specs else None
                spec = self._specs[key] = wanted[key]
                self._offsets[key] = offsets[key]
                name = _job_name(key)
                next_run = kept_next_run(self._scheduler, name, offsets[key], spec.interval, was)
                job = slot_job(name, spec.interval, offsets[key], next_run)
                self._scheduler.add_job(self._fire, args=[key], **job)
            if changed:
                log.info("schedule_applied", jobs=len(self._specs), changed=len(changed))

    async def _fire(self, key: JobKey) -> None:
        spec, loaded = self._specs.get(key), self._loaded
        if spec is None or loaded is None:
            return
        check, device, location = key
        planned = slot_start(self._offsets[key], spec.interval, time.time())
        job = c.Job(
            check=check,
            device=device,
            location=location,
            planned_at=planned,
            deadline=planned + spec.interval,
            config_id=loaded.config_id,
            files=loaded.files,
        )
        try:
            ack = await self._bus.js.publish(
                c.jobs_subject(location),
                job.to_bytes(),
                headers={c.MSG_ID: job.message_id},
                timeout=5,
            )
        except Exception as exc:  # noqa: BLE001 - counted and logged; the next slot tries again
            self.published.labels(location, "failed").inc()
            log.error("job_publish_failed", job=job.message_id, error=str(exc)[:300])
            return
        self.published.labels(location, "duplicate" if ack.duplicate else "published").inc()

    async def _watch(self, seen: tuple[tuple[str, int, int], ...]) -> None:
        """Reload on file change; a bad config keeps the last good one, loudly."""
        while True:
            await asyncio.sleep(self._settings.watch_interval)
            try:
                now = await in_daemon_thread(lambda: config_signature(self._settings.paths))
                if now == seen:
                    continue
                seen = now
                self._loaded = await in_daemon_thread(lambda: load_sources(self._settings.paths))
                self.config_ok.set(1)
                log.info("config_reloaded", journeys=len(self._loaded.config.journeys))
                await self._reschedule()
            except ConfigError as exc:
                self.config_ok.set(0)
                log.error(
                    "config_reload_failed",
                    problems=[str(p) for p in exc.problems],
                    kept="last good",
                )
            except Exception as exc:  # noqa: BLE001 - the watcher outlives any error
                self.config_ok.set(0)
                log.error("config_watch_failed", error=repr(exc)[:300])

    async def _refresh(self) -> None:
        """Follow agents coming and going; export each location's queue."""
        while True:
            await asyncio.sleep(self._settings.refresh_interval)
            try:
                await self._reschedule()
                for location in {key[2] for key in self._specs}:
                    waiting, running, age = await self._bus.queue(location)
                    self.queue_waiting.labels(location).set(waiting)
                    self.queue_running.labels(location).set(running)
                    self.queue_age.labels(location).set(age or 0.0)
            except Exception as exc:  # noqa: BLE001 - metrics go stale, scheduling goes on
                log.warning("dispatch_refresh_failed", error=str(exc)[:300] or type(exc).__name__)


def _job_name(key: JobKey) -> str:
    return "@".join(key)
