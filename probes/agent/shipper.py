"""Getting results to the collector: one small interface, two transports.

``ResultSink`` is all the agent knows. Over HTTP, results wait in a bounded
queue and go in batches; a collector that is down is retried with backoff,
and nothing is dropped silently: a result refused as malformed (4xx) or
pushed out of a full queue is logged and counted in the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import structlog

from probes.agent.stats import AgentStats
from probes.result import AgentHeartbeat, RunResult, heartbeat_to_dict, to_dict

log = structlog.get_logger(__name__)
# A collector with --auth-file wants a token of scope write; from the environment, so that it
# never shows in a process list.
TOKEN_VARIABLE = "PARCOURS_COLLECTOR_TOKEN"


class ResultSink(Protocol):
    """Where an agent's results, their artifacts and heartbeats go."""

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        """Hand over one result and its artifacts' bytes; must not block on the network."""

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """Report the agent's health."""

    async def close(self) -> None:
        """Deliver what is pending (bounded in time), then release resources."""


class HttpShipper:
    """Posts results to ``COLLECTOR/api/v1/results`` in batches, retrying when it is down."""

    def __init__(
        self,
        collector_url: str,
        stats: AgentStats,
        *,
        queue_limit: int = 10_000,
        batch: int = 100,
        max_backoff: float = 30.0,
        close_grace: float = 5.0,
    ) -> None:
        self.close_grace = close_grace
        self._url = collector_url.rstrip("/")
        self._stats = stats
        self._queue: deque[dict[str, Any]] = deque()
        # run id -> (name, content type, bytes) of the artifacts to upload after the result
        self._blobs: dict[str, list[tuple[str, str, bytes]]] = {}
        self._limit = queue_limit
        self._batch = batch
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            token = os.environ.get(TOKEN_VARIABLE)
            headers = {"Authorization": f"Bearer {token}"} if token else None
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=15), headers=headers
            )
        return self._session

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        """Queue a result; a full queue drops its oldest result, counted and logged."""
        if blobs:
            self._blobs[result.run_id] = [
                (a.name, a.content_type, blobs[a.name]) for a in result.artifacts if a.name in blobs
            ]
        if len(self._queue) >= self._limit:
            dropped = self._queue.popleft()
            self._blobs.pop(str(dropped.get("run_id")), None)
            self._stats.results_dropped += 1
            log.error(
                "result_dropped",
                reason="queue full",
                run_id=dropped.get("run_id"),
                journey=dropped.get("journey"),
            )
        self._queue.append(to_dict(result))
        self._drained.clear()
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._send_loop(), name="shipper")

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """Post a heartbeat; a failure is logged, the next one will say the same."""
        try:
            async with self._http().post(
                f"{self._url}/api/v1/heartbeats", json=heartbeat_to_dict(heartbeat)
            ) as response:
                if response.status >= 400:
                    log.warning(
                        "heartbeat_refused", status=response.status, error=await response.text()
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("heartbeat_failed", error=str(exc) or type(exc).__name__)

    async def _send_loop(self) -> None:
        backoff = 1.0
        while True:
            if not self._queue:
                self._drained.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue[i] for i in range(min(self._batch, len(self._queue)))]
            try:
                delivered = await self._post(batch)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "collector_unreachable",
                    error=str(exc) or type(exc).__name__,
                    pending=len(self._queue),
                    retry_in=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = 1.0
            for _ in range(delivered):
                sent = self._queue.popleft()
                await self._upload(str(sent.get("run_id")))

    async def _upload(self, run_id: str) -> None:
        """Send a delivered result's artifacts; a refusal or failure is logged and counted."""
        for name, content_type, data in self._blobs.pop(run_id, []):
            url = f"{self._url}/api/v1/runs/{run_id}/artifacts/{name}"
            try:
                async with self._http().put(
                    url, data=data, headers={"Content-Type": content_type}
                ) as response:
                    if response.status >= 400:
                        self._stats.artifacts_dropped += 1
                        log.error(
                            "artifact_refused",
                            run_id=run_id,
                            name=name,
                            status=response.status,
                            error=await response.text(),
                        )
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._stats.artifacts_dropped += 1
                log.error("artifact_upload_failed", run_id=run_id, name=name, error=str(exc))

    async def _post(self, batch: list[dict[str, Any]]) -> int:
        """Post a batch; returns how many queued results are settled (sent or refused)."""
        async with self._http().post(f"{self._url}/api/v1/results", json=batch) as response:
            if response.status < 400:
                return len(batch)
            text = await response.text()
            if response.status >= 500:
                raise aiohttp.ClientError(f"collector answered {response.status}: {text}")
        if len(batch) == 1:  # refused as malformed: retrying cannot help; say so, count it
            self._stats.results_dropped += 1
            log.error(
                "result_refused", status=response.status, error=text, run_id=batch[0].get("run_id")
            )
            return 1
        return await self._post(batch[:1])  # isolate the bad document, one at a time

    async def close(self) -> None:
        """Try for a while (``close_grace``) to deliver what is queued, then stop."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), self.close_grace)
        if self._queue:
            self._stats.results_dropped += len(self._queue)
            log.error("results_undelivered_at_shutdown", count=len(self._queue))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()
