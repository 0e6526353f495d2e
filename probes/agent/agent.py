"""The agent: keeps the schedule in line with the config, runs journeys, reports health.

A bad config never takes a running agent down: the last good one keeps
running, the errors are logged with file:line, and the heartbeat says
``config_reload_successful: false`` until a good one arrives.

Stopping is graceful: scheduling stops, runs in flight get ``shutdown_grace``
to finish and deliver their results, then Chromium closes. ``hurry`` (a second
signal) cuts the grace short. Configs are read in daemon threads, so a load
stuck on hostile input can neither delay a reload's caller nor hold the
process at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import structlog

from probes.agent.scheduler import JourneyScheduler
from probes.agent.shipper import ResultSink
from probes.agent.stats import AgentStats
from probes.browser import BrowserManager
from probes.config import ConfigError, LoadedConfig
from probes.config.spec import JourneySpec
from probes.config.watch import config_signature, in_daemon_thread
from probes.logs import SecretScrubber
from probes.result import AgentHeartbeat
from probes.runners.dispatch import run_attempts
from probes.runners.outcome import RunRequest

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class AgentSettings:
    """Who and where the agent is, and how hard it may work."""

    name: str = field(default_factory=socket.gethostname)
    location: str = "local"
    max_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    heartbeat_interval: float = 15.0
    watch_paths: tuple[str, ...] = ()  # config files/directories to watch for changes
    watch_interval: float = 2.0
    shutdown_grace: float = 10.0
    collector_url: str | None = None  # where run pages are, for each result's run_url


class Agent:
    """Runs the current config's journeys on schedule and ships every attempt."""

    def __init__(
        self,
        settings: AgentSettings,
        load: Callable[[], LoadedConfig],
        sink: ResultSink,
        browsers: BrowserManager,
        *,
        scrubber: SecretScrubber | None = None,
        stats: AgentStats | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats or AgentStats()
        self._load = load
        self._sink = sink
        self._browsers = browsers
        self._scrubber = scrubber or SecretScrubber()
        self._scheduler = JourneyScheduler(self.run_job, self.stats)
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._config: LoadedConfig | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._warming: asyncio.Task[None] | None = None
        self._started_at = time.time()
        self._reload_lock = asyncio.Lock()
        self._stopping = False
        self._hurry = asyncio.Event()

    @property
    def browsers(self) -> BrowserManager:
        """The agent's Chromium (tests read whether it is up)."""
        return self._browsers

    @property
    def scheduler(self) -> JourneyScheduler:
        """The schedule (tests read next run times from it)."""
        return self._scheduler

    async def start(self) -> None:
        """Load the config (it must be valid to start), schedule, begin heartbeats."""
        # Taken before loading, so that an edit made while we load is still seen as a change.
        signature = await in_daemon_thread(lambda: config_signature(self.settings.watch_paths))
        config = await in_daemon_thread(self._load)
        self._use(config)
        self._scheduler.start()
        self._background.append(asyncio.create_task(self._heartbeats(), name="heartbeats"))
        if self.settings.watch_paths:
            watch = self._watch(signature)
            self._background.append(asyncio.create_task(watch, name="config-watch"))
        log.info(
            "agent_started",
            agent=self.settings.name,
            location=self.settings.location,
            jobs=len(self._scheduler.job_ids),
        )

    def _use(self, config: LoadedConfig) -> None:
        """Switch to a config as a whole: if scheduling it fails, the old jobs are put back."""
        previous = self._config
        try:
            self._scheduler.apply(config.journeys)
        except Exception:
            if previous is not None:
                self._scheduler.apply(previous.journeys)
            raise
        self._config = config
        self._scrubber.masker = config.masker
        self.stats.config_reload_successful = True
        self.stats.config_last_reload_success_at = time.time()
        self._warm_for(config)

    def _warm_for(self, config: LoadedConfig) -> None:
        """Launch Chromium while the first slots come, at start or when a reload brings the
        first browser journey: a launch takes a second or two, which the first run and the
        runs due behind it would otherwise wait. An agent of API checks never launches it."""
        if not any(journey.kind == "browser" for journey in config.journeys):
            return
        if self._browsers.launched or (self._warming is not None and not self._warming.done()):
            return
        self._warming = asyncio.create_task(self._browsers.warm(), name="browser-warm")

    async def reload(self, reason: str) -> bool:
        """Reread the config; keep the old one if the new one fails in any way."""
        async with self._reload_lock:
            try:
                config = await in_daemon_thread(self._load)
                if self._stopping:
                    return False
                self._use(config)
            except ConfigError as exc:
                self._reload_failed(reason, problems=[str(p) for p in exc.problems])
            except Exception as exc:  # noqa: BLE001 - any failure keeps the last good config
                self._reload_failed(reason, problems=[f"{type(exc).__name__}: {exc}"[:500]])
            else:
                log.info("config_reloaded", reason=reason, journeys=len(config.journeys))
            await self._send_heartbeat()
            return self.stats.config_reload_successful

    def _reload_failed(self, reason: str, problems: list[str]) -> None:
        self.stats.config_reload_successful = False
        log.error("config_reload_failed", reason=reason, problems=problems, kept="last good")

    async def run_job(self, spec: JourneySpec, device: str, planned: datetime | None) -> None:
        """One scheduled run: wait for a slot, run, retry a failure in a fresh context."""
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        fired = time.time()
        try:
            async with self._slots:
                if planned is not None:
                    due = planned.timestamp()
                    self.stats.observe_lag(time.time() - due, at_fire=fired - due)
                self.stats.running += 1
                try:
                    await self._run_attempts(spec, device)
                finally:
                    self.stats.running -= 1
        finally:
            self._running.discard(task)

    async def _run_attempts(self, spec: JourneySpec, device: str) -> None:
        masker = self._config.masker if self._config else None
        assert masker is not None
        request = RunRequest(
            device,
            self.settings.location,
            self.settings.name,
            run_page_base=self.settings.collector_url,
        )
        await run_attempts(
            spec,
            request,
            attempts=spec.retries + 1,
            masker=masker,
            browsers=self._browsers,
            reporter=self._sink,
        )

    async def _heartbeats(self) -> None:
        while True:
            await self._send_heartbeat()
            await asyncio.sleep(self.settings.heartbeat_interval)

    def heartbeat(self) -> AgentHeartbeat:
        """The agent's health now."""
        return self.stats.heartbeat(
            self.settings.name,
            self.settings.location,
            started_at=self._started_at,
            jobs=self._scheduler.job_ids,
            chromium_restarts=self._browsers.restarts,
        )

    async def _send_heartbeat(self) -> None:
        await self._sink.heartbeat(self.heartbeat())

    async def _watch(self, seen: tuple[tuple[str, int, int], ...]) -> None:
        """Poll the config files' signature; reload when it changes. Never stops watching."""
        while True:
            await asyncio.sleep(self.settings.watch_interval)
            try:
                now = await in_daemon_thread(lambda: config_signature(self.settings.watch_paths))
                if now != seen:
                    seen = now
                    await self.reload("file changed")
            except Exception as exc:  # noqa: BLE001 - the watcher outlives any error
                log.error("config_watch_failed", error=repr(exc)[:300])

    def hurry(self) -> None:
        """Stop now (a second signal): runs in flight are cancelled instead of awaited."""
        self._hurry.set()

    async def stop(self) -> None:
        """Stop scheduling, let running journeys finish and deliver (bounded), close Chromium.

        The scheduler is paused, not shut down, while runs finish: APScheduler's executor
        shutdown cancels the coroutines it started, which would lose their results.
        """
        self._stopping = True
        self._scheduler.pause()
        for task in self._background:
            task.cancel()
        pending = await self._finish_running()
        for task in pending:
            task.cancel()
        if pending:
            log.warning("runs_cancelled_at_shutdown", runs=len(pending))
            await asyncio.wait(pending, timeout=5)
        self._scheduler.shutdown()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._warming is not None:
            await self._warming  # not cancelled: a launch cut short could leave a Chromium
        await self._browsers.close()
        await self._sink.close()
        log.info("agent_stopped")

    async def _finish_running(self) -> list[asyncio.Task[Any]]:
        """Wait for runs in flight until they end, the grace runs out, or we are hurried."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.shutdown_grace
        hurried = asyncio.ensure_future(self._hurry.wait())
        try:
            while True:
                pending = [task for task in self._running if not task.done()]
                left = deadline - loop.time()
                if not pending or left <= 0 or self._hurry.is_set():
                    return pending
                log.info("agent_stopping", running=len(pending), grace_left=round(left, 1))
                await asyncio.wait(
                    [*pending, hurried], timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
        finally:
            hurried.cancel()
