"""`parcours run`: the collector and one agent in one process, the same code paths.

The agent hands results to the collector's ingestor directly instead of over
HTTP, as the same JSON documents, so that validation, dedupe and state are
exactly what the split deployment runs. This module is wiring: it is the
one place on the agent's side that may import the collector.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from collector.artifacts import ArtifactRefused, ArtifactStore
from collector.ingest import Ingestor
from probes.result import AgentHeartbeat, RunResult, heartbeat_to_dict, to_dict

log = structlog.get_logger(__name__)


class LocalSink:
    """A ResultSink that feeds an in-process collector."""

    def __init__(self, ingestor: Ingestor, artifacts: ArtifactStore | None = None) -> None:
        self._ingestor = ingestor
        self._artifacts = artifacts

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        """Ingest as the HTTP handler would, from the wire form; store the artifacts."""
        self._ingestor.ingest([to_dict(result)])
        if self._artifacts is None:
            return
        expected = await self._ingestor.expected_artifacts(result.run_id)
        for artifact in result.artifacts:
            if artifact.name not in blobs:
                continue
            try:
                await self._artifacts.put(
                    result.run_id,
                    artifact.name,
                    artifact.content_type,
                    blobs[artifact.name],
                    expected,
                )
            except ArtifactRefused as exc:
                log.error(
                    "artifact_refused", run_id=result.run_id, name=artifact.name, error=str(exc)
                )

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """Record the agent's health as the HTTP handler would."""
        self._ingestor.heartbeat(heartbeat_to_dict(heartbeat))

    async def close(self) -> None:
        """Nothing is queued: every result is ingested as it is submitted."""
