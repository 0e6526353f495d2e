"""`parcours run`: the collector and one agent in one process, the same code paths.

The agent hands results to the collector's ingestor directly instead of over
HTTP, as the same JSON documents, so that validation, dedupe and state are
exactly what the split deployment runs. This module is wiring: it is the
one place on the agent's side that may import the collector.
"""

from __future__ import annotations

from collector.ingest import Ingestor
from probes.result import AgentHeartbeat, RunResult, heartbeat_to_dict, to_dict


class LocalSink:
    """A ResultSink that feeds an in-process collector."""

    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    async def submit(self, result: RunResult) -> None:
        """Ingest as the HTTP handler would, from the wire form."""
        self._ingestor.ingest([to_dict(result)])

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """Record the agent's health as the HTTP handler would."""
        self._ingestor.heartbeat(heartbeat_to_dict(heartbeat))

    async def close(self) -> None:
        """Nothing is queued: every result is ingested as it is submitted."""
