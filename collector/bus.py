"""The collector's side of NATS JetStream: the streams, and reading results from them.

Results and heartbeats arrive on a stream, not over HTTP: each collector reads
it through its own durable consumer, so a collector stopped for an hour
catches up where it left off, a new one replays what the stream holds, and two
collectors export the same series. Documents go through the same ``Ingestor``
as ever (validation, dedupe by run id, limits); on top of that, a document
whose location is not its subject's is refused and counted: the subject is
what NATS' permissions vouch for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from collector.artifacts import ArtifactRefused, ArtifactStore
from collector.ingest import Ingestor, Refused, loads_strict
from probes.bus import contract as c
from probes.bus.connection import connect
from probes.result import ResultFormatError, RunResult

log = structlog.get_logger(__name__)
DAY = 86_400.0


@dataclass(frozen=True)
class BusSettings:
    """Where NATS is and how long what it holds is kept; defaults suit one small team."""

    url: str
    creds: str | None = None
    name: str = "collector"  # this collector's durable consumer: collector-<name>
    results_max_age: float = 7 * DAY
    results_max_bytes: int = 1024**3
    artifacts_ttl: float = 14 * DAY  # per location's bucket
    artifacts_max_bytes: int = 2 * 1024**3  # per location's bucket
    job_ack_wait: float = 30.0  # an agent silent this long lost its job: redelivered
    job_max_deliver: int = 5
    job_max_age: float = 3600.0  # a location without agents does not pile up jobs for ever
    duplicate_window: float = 600.0  # two collectors' copies of a job meet within it


class Bus:
    """One connection, the streams ensured, a bucket and a consumer per location."""

    def __init__(self, settings: BusSettings, nc: Client) -> None:
        self.settings = settings
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self._locations: set[str] = set()
        self._buckets: dict[str, ObjectStore] = {}

    @classmethod
    async def open(cls, settings: BusSettings) -> Bus:
        """Connect and make sure both streams exist with the configured limits."""
        nc = await connect(
            settings.url, settings.creds, name=f"parcours-{settings.name}", inbox=c.COLLECTOR_INBOX
        )
        bus = cls(settings, nc)
        await bus._ensure_streams()
        return bus

    async def close(self) -> None:
        """Flush and disconnect. Not ``drain``: with a pull subscription it waits out its
        30 s timeout, and (seen with nats-server 2.9) holds up job delivery meanwhile."""
        with contextlib.suppress(Exception):
            await self.nc.flush(timeout=2)
        with contextlib.suppress(Exception):
            await self.nc.close()

    async def _ensure_streams(self) -> None:
        s = self.settings
        await self._ensure_stream(
            api.StreamConfig(
                name=c.JOBS_STREAM,
                subjects=[f"{c.JOBS_PREFIX}.>"],
                retention=api.RetentionPolicy.WORK_QUEUE,
                max_age=s.job_max_age,
                duplicate_window=s.duplicate_window,
            )
        )
        await self._ensure_stream(
            api.StreamConfig(
                name=c.RESULTS_STREAM,
                subjects=[f"{c.RESULTS_PREFIX}.>", f"{c.HEARTBEATS_PREFIX}.>"],
                retention=api.RetentionPolicy.LIMITS,
                max_age=s.results_max_age,
                max_bytes=s.results_max_bytes,
                duplicate_window=min(s.duplicate_window, s.results_max_age),
            )
        )

    async def _ensure_stream(self, config: api.StreamConfig) -> None:
        """Create the stream, or bring an existing one to the configured limits."""
        try:
            await self.js.stream_info(str(config.name))
        except NotFoundError:
            await self.js.add_stream(config)
        else:
            await self.js.update_stream(config)

    async def ensure_location(self, location: str) -> None:
        """The location's shared job consumer and its artifacts bucket (once per process)."""
        if location in self._locations:
            return
        s = self.settings
        config = api.ConsumerConfig(
            durable_name=c.agents_consumer(location),
            filter_subject=c.jobs_subject(location),
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=s.job_ack_wait,
            max_deliver=s.job_max_deliver,
            max_ack_pending=10_000,
        )
        await self.js.add_consumer(c.JOBS_STREAM, config)
        await self.bucket(location)
        self._locations.add(location)

    async def bucket(self, location: str) -> ObjectStore:
        """The location's artifacts bucket, created with the TTL and size limit if missing."""
        found = self._buckets.get(location)
        if found is None:
            s = self.settings
            found = await self.js.create_object_store(
                c.artifacts_bucket(location),
                config=api.ObjectStoreConfig(ttl=s.artifacts_ttl, max_bytes=s.artifacts_max_bytes),
            )
            self._buckets[location] = found
        return found

    async def queue(self, location: str) -> tuple[int, int, float | None]:
        """(waiting, running, age in seconds of the oldest waiting job) of a location."""
        info = await self.js.consumer_info(c.JOBS_STREAM, c.agents_consumer(location))
        waiting, running = int(info.num_pending or 0), int(info.num_ack_pending or 0)
        if not waiting:
            return waiting, running, None
        after = (info.delivered.stream_seq or 0) + 1 if info.delivered else 1
        try:
            oldest = await self.js.get_msg(
                c.JOBS_STREAM, seq=after, subject=c.jobs_subject(location), next=True
            )
        except NotFoundError:
            return waiting, running, None
        return waiting, running, _age(oldest)


def _age(message: api.RawStreamMsg) -> float | None:
    stamp = message.time
    return None if stamp is None else max(0.0, time.time() - stamp.timestamp())


class ResultsReader:
    """Reads the results stream through this collector's durable consumer, for ever."""

    ACK_EVERY = 200
    COPY_GRACE = 10.0

    def __init__(self, bus: Bus, ingestor: Ingestor, artifacts: ArtifactStore) -> None:
        self._bus = bus
        self._ingestor = ingestor
        self._artifacts = artifacts
        self._subscription: JetStreamContext.PushSubscription | None = None
        self._fetches: set[asyncio.Task[None]] = set()
        self._fetch_slots = asyncio.Semaphore(4)
        self.handled = 0  # messages handled since start (benchmarks read it)

    async def start(self) -> None:
        """Create (or resume) the durable consumer and take its messages as they come.

        A push consumer with a callback, not pull ``fetch``: nats-py's fetch waits for each
        message of a batch with its own timeout, which halved ingest."""
        name = self._bus.settings.name
        durable = f"collector-{name}"
        config = api.ConsumerConfig(
            durable_name=durable,
            deliver_subject=f"{c.COLLECTOR_INBOX}.results.{name}",
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.ALL,  # acking a message acks every one before it
            ack_wait=60,
            max_ack_pending=20_000,
            flow_control=True,
            idle_heartbeat=5.0,
        )
        await self._bus.js.add_consumer(c.RESULTS_STREAM, config)
        self._subscription = await self._bus.js.subscribe_bind(
            c.RESULTS_STREAM, config, durable, cb=self._on_message, manual_ack=True
        )
        log.info("results_reader_started", consumer=durable)

    async def stop(self) -> None:
        """Stop reading, and give artifact copies in flight ``COPY_GRACE`` seconds: their
        results are acknowledged, so a copy cut short is not retried after a restart."""
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
        if self._fetches:
            await asyncio.wait(list(self._fetches), timeout=self.COPY_GRACE)
        for task in list(self._fetches):
            task.cancel()
            log.error("artifact_copy_abandoned", reason="collector stopping")
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_message(self, message: Msg) -> None:
        """Ingest, then acknowledge every ACK_EVERY messages and whenever caught up (an
        unacknowledged tail is delivered again after a restart and deduped by run id)."""
        self.handle(message)
        if self.handled % self.ACK_EVERY == 0 or not message.metadata.num_pending:
            with contextlib.suppress(Exception):
                await message.ack()

    def handle(self, message: Msg) -> None:
        """Ingest one message; a refusal is counted and logged, never retried."""
        self.handled += 1
        location = c.location_of(message.subject)
        stamp = message.metadata.timestamp.timestamp() if message.metadata.timestamp else None
        heartbeat = message.subject.startswith(c.HEARTBEATS_PREFIX + ".")
        what = "heartbeat" if heartbeat else "result"
        try:
            document = loads_strict(message.data)
            claimed = document.get("location") if isinstance(document, dict) else None
            if claimed != location:
                raise Refused(
                    f"location {claimed!r} published on {message.subject} (location "
                    f"{location!r}): refused",
                    403,
                    "location_mismatch",
                )
            if heartbeat:
                self._ingestor.heartbeat(document, now=stamp)
                return
            parsed = self._ingestor.parse([document], now=stamp)
        except Refused as exc:
            if exc.reason == "location_mismatch":
                self._ingestor.refused.labels(what, exc.reason).inc()
            log.error("document_refused", what=what, subject=message.subject, error=str(exc))
            return
        except (ResultFormatError, ValueError, RecursionError) as exc:
            if not isinstance(exc, ResultFormatError):
                self._ingestor.refused.labels(what, "invalid").inc()
            log.error("document_refused", what=what, subject=message.subject, error=str(exc)[:300])
            return
        outcome = self._ingestor.accept(parsed)
        result = parsed[0][0]
        if outcome.accepted and result.artifacts:
            task = asyncio.create_task(self._copy_artifacts(result))
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)

    async def _copy_artifacts(self, result: RunResult) -> None:
        """Bring a run's artifacts from its location's bucket to the run pages' store."""
        async with self._fetch_slots:
            expected = await self._ingestor.expected_artifacts(result.run_id)
            bucket = await self._bus.bucket(result.location)
            for artifact in result.artifacts:
                try:
                    found = await bucket.get(f"{result.run_id}/{artifact.name}")
                    await self._artifacts.put(
                        result.run_id,
                        artifact.name,
                        artifact.content_type,
                        found.data or b"",
                        expected,
                    )
                except (ObjectNotFoundError, NotFoundError):
                    self._ingestor.refused.labels("artifact", "not_in_store").inc()
                    log.error("artifact_not_in_store", run_id=result.run_id, name=artifact.name)
                except ArtifactRefused as exc:
                    self._ingestor.refused.labels("artifact", exc.reason).inc()
                    log.error(
                        "artifact_refused", run_id=result.run_id, name=artifact.name, error=str(exc)
                    )
                except Exception as exc:  # noqa: BLE001 - one artifact never stops the reader
                    log.error(
                        "artifact_copy_failed",
                        run_id=result.run_id,
                        name=artifact.name,
                        error=str(exc)[:300] or type(exc).__name__,
                    )
