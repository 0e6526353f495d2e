"""Taking results and heartbeats in: validate against the contract, dedupe, apply, store.

The HTTP handlers and the embedded agent (``parcours run``) both call this,
so the two deployments share one code path past the transport.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

import structlog
from prometheus_client import CollectorRegistry, Counter

from collector.history import HistoryRow, RunHistory
from collector.state import CollectorState
from probes.result import ResultFormatError, RunResult, from_dict, heartbeat_from_dict

log = structlog.get_logger(__name__)
DEDUPE_WINDOW = 200_000  # run ids remembered to refuse repeats (agents retry within minutes)


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to a batch: accepted, or already known (a resend)."""

    accepted: int
    duplicates: int


class Ingestor:
    """Owns the path from a received document to state, history and counters."""

    def __init__(
        self, state: CollectorState, history: RunHistory, registry: CollectorRegistry
    ) -> None:
        self._state = state
        self._history = history
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._received = Counter(
            "parcours_collector_results_received",
            "Result documents received, by outcome (accepted, duplicate, rejected).",
            ["outcome"],
            registry=registry,
        )
        self._heartbeats = Counter(
            "parcours_collector_heartbeats_received",
            "Agent heartbeats received, by outcome (accepted, rejected).",
            ["outcome"],
            registry=registry,
        )

    async def load_seen(self) -> None:
        """Remember recent run ids from disk, so a restart does not count a resend twice."""
        for run_id in await self._history.recent_run_ids(DEDUPE_WINDOW):
            self._seen[run_id] = None

    def parse(self, documents: list[object]) -> list[tuple[RunResult, dict[str, Any]]]:
        """Validate every document first: a batch is taken whole or refused whole."""
        results = []
        for index, document in enumerate(documents):
            try:
                results.append((from_dict(document), cast(dict[str, Any], document)))
            except ResultFormatError as exc:
                self._received.labels("rejected").inc()
                where = f"document {index}: " if len(documents) > 1 else ""
                raise ResultFormatError(f"{where}{exc}") from None
        return results

    def accept(self, results: list[tuple[RunResult, dict[str, Any]]]) -> IngestOutcome:
        """Apply parsed results; a run id already seen is acknowledged and not counted again.

        History keeps the document as received (validated, and with any field a newer
        agent added): re-serialising it would cost a third of ingest time.
        """
        accepted = duplicates = 0
        for result, document in results:
            if result.run_id in self._seen:
                duplicates += 1
                self._received.labels("duplicate").inc()
                continue
            self._remember(result.run_id)
            self._state.apply(result)
            self._history.add(_row(result, document))
            self._received.labels("accepted").inc()
            accepted += 1
        return IngestOutcome(accepted, duplicates)

    def ingest(self, documents: list[object]) -> IngestOutcome:
        """Parse, then accept: the one entry point for HTTP and the embedded agent."""
        return self.accept(self.parse(documents))

    def heartbeat(self, document: object) -> None:
        """Record an agent's health; raises ResultFormatError for a bad document."""
        try:
            heartbeat = heartbeat_from_dict(document)
        except ResultFormatError:
            self._heartbeats.labels("rejected").inc()
            raise
        self._state.apply_heartbeat(heartbeat)
        self._heartbeats.labels("accepted").inc()

    def _remember(self, run_id: str) -> None:
        self._seen[run_id] = None
        if len(self._seen) > DEDUPE_WINDOW:
            self._seen.popitem(last=False)


def _row(result: RunResult, document: dict[str, Any]) -> HistoryRow:
    return HistoryRow(
        run_id=result.run_id,
        journey=result.journey,
        location=result.location,
        device=result.device,
        agent=result.agent,
        started_at=result.started_at,
        status=result.status.value,
        error_type=result.error_type.value if result.error_type else None,
        failed_step=result.failed_step,
        document=document,
    )
