"""An agent of the split deployment: takes its location's jobs from NATS, runs them.

It pulls a job only when a browser slot is free, so the location's queue (not
an agent's memory) holds the backlog and a second agent shares it at once.
While a job runs the agent tells JetStream it is still working on it; it
acknowledges the job only once every attempt's result is in the results
stream. An agent that dies mid-run leaves its job unacknowledged: JetStream
hands it to another agent of the location after the consumer's ack wait, and
a job taken past its slot's deadline is dropped and counted as missed.

The job carries its config unresolved; parameters and secrets come from this
agent's environment. A variable missing here makes that check's result a
``config_error``, loudly, instead of a run against a half-resolved config.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from probes.agent.agent import AgentSettings
from probes.agent.stats import AgentStats
from probes.browser import BrowserManager
from probes.bus import contract as c
from probes.bus.connection import connect
from probes.config import ConfigError, LoadedConfig
from probes.config.loader import load_config_sources
from probes.config.spec import JourneySpec
from probes.config.watch import in_daemon_thread
from probes.config.yaml_source import UNSET_VARIABLE
from probes.logs import SecretScrubber
from probes.result import AgentHeartbeat, ErrorType, RunResult, heartbeat_to_dict, to_dict
from probes.runners.dispatch import failed_run, run_attempts
from probes.runners.failures import StepFailure
from probes.runners.outcome import RunRequest

log = structlog.get_logger(__name__)
CONFIGS_KEPT = 4  # loaded configs cached by id: a reload's old and new jobs overlap


class NatsSink:
    """Puts artifacts in the location's bucket, then the result on the results stream.

    ``submit`` returns once JetStream has stored the result (message id = run id, so
    a resend after a lost acknowledgement is dropped as a duplicate); while NATS is
    unreachable it retries with backoff, up to ``patience`` seconds.
    """

    def __init__(
        self, js: JetStreamContext, location: str, stats: AgentStats, patience: float = 120.0
    ) -> None:
        self._js = js
        self._location = location
        self._stats = stats
        self._patience = patience
        self._bucket: ObjectStore | None = None

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        """Store the artifacts, then the result; raises TimeoutError when patience runs out."""
        for artifact in result.artifacts:
            if artifact.name in blobs:
                put = functools.partial(
                    self._put, f"{result.run_id}/{artifact.name}", blobs[artifact.name]
                )
                await self._retry(f"artifact {artifact.name}", put)
        payload = json.dumps(to_dict(result), separators=(",", ":")).encode()
        await self._retry(
            "result",
            lambda: self._js.publish(
                c.results_subject(self._location),
                payload,
                headers={c.MSG_ID: result.run_id},
                timeout=5,
            ),
        )

    async def _put(self, name: str, data: bytes) -> None:
        if self._bucket is None:
            self._bucket = await self._js.object_store(c.artifacts_bucket(self._location))
        await self._bucket.put(name, data)

    async def _retry(self, what: str, send: Callable[[], Awaitable[object]]) -> None:
        deadline = time.monotonic() + self._patience
        backoff = 0.5
        while True:
            try:
                await send()
                return
            except Exception as exc:
                if time.monotonic() + backoff > deadline:
                    raise TimeoutError(f"could not publish the {what}: {exc}") from exc
                log.warning("publish_retry", what=what, error=str(exc)[:200] or type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """Publish the agent's health; a failure is logged, the next beat says the same."""
        payload = json.dumps(heartbeat_to_dict(heartbeat), separators=(",", ":")).encode()
        try:
            await self._js.publish(c.heartbeats_subject(self._location), payload, timeout=5)
        except Exception as exc:  # noqa: BLE001 - logged; the next beat tries again
            log.warning("heartbeat_failed", error=str(exc)[:200] or type(exc).__name__)

    async def close(self) -> None:
        """Nothing is queued here: every result was stored before its job was acknowledged."""


class NatsAgent:
    """Works its location's queue with at most ``max_concurrency`` runs at a time."""

    def __init__(
        self,
        settings: AgentSettings,
        nats_url: str,
        creds: str | None,
        browsers: BrowserManager,
        *,
        scrubber: SecretScrubber | None = None,
        stats: AgentStats | None = None,
        domain: str | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats or AgentStats()
        self._domain = domain  # the hub's JetStream domain, through a site's leaf node
        self._url = nats_url
        self._creds = creds
        self._browsers = browsers
        self._scrubber = scrubber or SecretScrubber()
        self._slots = asyncio.Semaphore(settings.max_concurrency)
        self._configs: OrderedDict[str, LoadedConfig | ConfigError] = OrderedDict()
        self._recent: dict[str, tuple[float, float]] = {}  # job name -> (last taken, interval)
        self._running: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._started_at = time.time()
        self._ack_wait = 30.0
        self._nc: Client | None = None
        self._sink: NatsSink | None = None

    async def start(self) -> None:
        """Connect (a refused login raises here), bind to the location's queue, start."""
        location = self.settings.location
        self._nc = await connect(
            self._url,
            self._creds,
            name=f"parcours-agent-{self.settings.name}",
            inbox=c.inbox_prefix(location),
        )
        js = self._nc.jetstream(domain=self._domain)
        self._sink = NatsSink(js, location, self.stats)
        # Heartbeats first: they are how the collector learns that this location has an
        # agent, and schedules it (creating the queue this agent then binds to).
        self._background.append(asyncio.create_task(self._heartbeats(), name="heartbeats"))
        self._background.append(asyncio.create_task(self._pull(js), name="pull"))
        log.info("agent_started", agent=self.settings.name, location=location, nats=self._url)

    async def _bind(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        """The location's shared consumer, once the collector has created it."""
        location = self.settings.location
        waited = False
        while True:
            try:
                subscription = await js.pull_subscribe_bind(
                    c.agents_consumer(location),
                    c.JOBS_STREAM,
                    inbox_prefix=f"{c.inbox_prefix(location)}.".encode(),
                )
                info = await subscription.consumer_info()
            except NotFoundError:
                if not waited:
                    log.warning(
                        "waiting_for_queue",
                        location=location,
                        why="no collector has scheduled this location yet",
                    )
                    waited = True
                await asyncio.sleep(1)
                continue
            self._ack_wait = float(info.config.ack_wait or 30.0)
            log.info("queue_bound", location=location, ack_wait=self._ack_wait)
            return subscription

    async def _pull(self, js: JetStreamContext) -> None:
        """Take a job only when a slot is free: the backlog stays in the shared queue."""
        subscription = await self._bind(js)
        while True:
            await self._slots.acquire()
            try:
                messages = await subscription.fetch(1, timeout=5)
            except TimeoutError:
                self._slots.release()
                continue
            except Exception as exc:  # noqa: BLE001 - NATS away: wait, the client reconnects
                self._slots.release()
                log.warning("job_fetch_failed", error=str(exc)[:200] or type(exc).__name__)
                await asyncio.sleep(1)
                continue
            task = asyncio.create_task(self._work(messages[0]))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _work(self, message: Msg) -> None:
        """One job: run it, keep JetStream informed, acknowledge once results are stored."""
        keepalive = asyncio.create_task(self._keep_alive(message))
        try:
            try:
                job = c.Job.from_bytes(message.data)
            except ValueError as exc:
                log.error("job_refused", error=str(exc))
                await message.term()
                return
            now = time.time()
            if job.location != self.settings.location:
                # Only a publisher outside the permissions puts one here: not a missed run.
                log.error(
                    "job_refused",
                    job=job.message_id,
                    error="a job for another location",
                    job_location=job.location,
                    queue=self.settings.location,
                )
                await message.term()
                return
            if now > job.deadline:
                self.stats.missed_runs += 1
                log.warning(
                    "run_missed",
                    job=job.message_id,
                    reason="taken after its slot's deadline",
                    late_seconds=round(now - job.deadline, 1),
                )
                await message.term()
                return
            log.info("job_started", job=job.message_id, delivery=message.metadata.num_delivered)
            self.stats.observe_lag(now - job.planned_at)
            self.stats.running += 1
            try:
                await self._run(job)
            finally:
                self.stats.running -= 1
            await message.ack()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await message.nak()  # another agent takes it now, not after the ack wait
            raise
        except Exception as exc:  # noqa: BLE001 - unacknowledged: redelivered after ack wait
            log.error("job_failed", error=str(exc)[:300] or type(exc).__name__)
        finally:
            keepalive.cancel()
            self._slots.release()

    async def _keep_alive(self, message: Msg) -> None:
        while True:
            await asyncio.sleep(max(self._ack_wait / 3, 0.5))
            with contextlib.suppress(Exception):
                await message.in_progress()

    async def _run(self, job: c.Job) -> None:
        assert self._sink is not None
        config = await self._config(job)
        request = RunRequest(
            job.device,
            job.location,
            self.settings.name,
            run_page_base=self.settings.collector_url,
        )
        if isinstance(config, ConfigError):
            log.error("job_config_invalid", job=job.message_id, problems=str(config)[:1000])
            raise config
        spec = next((j for j in config.journeys if j.name == job.check), None)
        if spec is None:
            raise ValueError(f"the job's config has no check named {job.check!r}")
        self._recent[job.name] = (time.time(), spec.interval)
        unset = _unset_variables(config, spec)
        if unset:
            failure = StepFailure(
                ErrorType.CONFIG_ERROR,
                f"not set on agent {self.settings.name}: " + "; ".join(unset),
            )
            outcome = failed_run(spec, request, config.masker, failure)
            await self._sink.submit(outcome.result, {})
            return
        await run_attempts(
            spec,
            request,
            attempts=spec.retries + 1,
            masker=config.masker,
            browsers=self._browsers,
            reporter=self._sink,
        )

    async def _config(self, job: c.Job) -> LoadedConfig | ConfigError:
        """The job's config resolved from this agent's environment, loaded once per id."""
        found = self._configs.get(job.config_id)
        if found is None:
            try:
                found = await in_daemon_thread(
                    lambda: load_config_sources(job.files, missing="warn")
                )
                self._scrubber.masker = found.masker
            except ConfigError as exc:
                found = exc
            self._configs[job.config_id] = found
            while len(self._configs) > CONFIGS_KEPT:
                self._configs.popitem(last=False)
        return found

    async def _heartbeats(self) -> None:
        assert self._sink is not None
        while True:
            await self._sink.heartbeat(self.heartbeat())
            await asyncio.sleep(self.settings.heartbeat_interval)

    def heartbeat(self) -> AgentHeartbeat:
        """The agent's health; ``jobs`` are those it took within their last two intervals."""
        now = time.time()
        jobs = tuple(sorted(n for n, (at, every) in self._recent.items() if now - at < 2 * every))
        return self.stats.heartbeat(
            self.settings.name,
            self.settings.location,
            started_at=self._started_at,
            jobs=jobs,
            chromium_restarts=self._browsers.restarts,
        )

    async def stop(self) -> None:
        """Take no more jobs, let runs finish (bounded), hand back the rest, disconnect."""
        for task in self._background:
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running), timeout=self.settings.shutdown_grace)
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running), timeout=5)
        if self._sink is not None:
            await self._sink.heartbeat(self.heartbeat())
        await self._browsers.close()
        if self._nc is not None:  # not drain(): see collector.bus.Bus.close
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await self._nc.close()
        log.info("agent_stopped")


def _unset_variables(config: LoadedConfig, spec: JourneySpec) -> list[str]:
    """Unset-variable warnings that concern this check (its own, or the file's defaults)."""
    here = spec.source.rsplit(":", 1)[0]
    return [
        str(w)
        for w in config.warnings
        if UNSET_VARIABLE in w.message
        and w.file == here
        and (w.journey == spec.name or w.journey is None)
    ]
