"""Taking results and heartbeats in: validate against the contract, dedupe, apply, store.

The HTTP handlers and the embedded agent (``parcours run``) both call this,
so the two deployments share one code path past the transport.

Beyond the contract's own checks, the collector refuses what it could not keep
honestly: a result dated further in the future than the allowed clock skew
(it would stay its series' latest and hide every real failure after it), and
a result that would create more series than an agent or a location may have
(one client cannot blow up /metrics). Each refusal is a ``Refused`` with an
HTTP status and a reason, and is counted.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from prometheus_client import CollectorRegistry, Counter

from collector.artifacts import ExpectedArtifacts
from collector.history import HistoryRow, RunHistory
from collector.state import CollectorState, SeriesKey
from probes.result import (
    ResultFormatError,
    RunResult,
    from_dict,
    heartbeat_from_dict,
)

log = structlog.get_logger(__name__)
DEDUPE_WINDOW = 200_000  # run ids remembered to refuse repeats (agents retry within minutes)
RUNS_EXPECTING_ARTIFACTS = 20_000  # recent runs whose declared artifacts may still arrive
REFUSAL_REASONS = {
    # location_mismatch: over NATS, a document whose location is not its subject's
    "result": ("invalid", "clock_skew", "series_limit", "location_mismatch"),
    "heartbeat": ("invalid", "clock_skew", "location_mismatch"),
    # not_in_store: over NATS, a declared artifact the object store does not hold
    "artifact": ("invalid", "unknown_run", "undeclared", "quota", "not_in_store"),
}


@dataclass(frozen=True)
class IngestLimits:
    """What one agent or location may do; the defaults suit hundreds of journeys."""

    max_clock_skew_seconds: float = 300.0
    max_series_per_agent: int = 2_000
    max_series_per_location: int = 10_000


class Refused(ResultFormatError):
    """A well-formed document the collector will not keep; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to a batch: accepted, or already known (a resend)."""

    accepted: int
    duplicates: int


class Ingestor:
    """Owns the path from a received document to state, history and counters."""

    def __init__(
        self,
        state: CollectorState,
        history: RunHistory,
        registry: CollectorRegistry,
        limits: IngestLimits | None = None,
        on_applied: Callable[[list[SeriesKey]], None] = lambda keys: None,
    ) -> None:
        self._state = state
        self._on_applied = on_applied  # the series each accepted batch changed (/metrics)
        self._history = history
        self.limits = limits or IngestLimits()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._expecting: OrderedDict[str, ExpectedArtifacts] = OrderedDict()
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
        self.refused = Counter(
            "parcours_collector_refused",
            "Documents refused, by what (result, heartbeat, artifact) and why.",
            ["what", "reason"],
            registry=registry,
        )
        for what, reasons in REFUSAL_REASONS.items():
            for reason in reasons:  # exported from 0, so that increase() sees the first one
                self.refused.labels(what, reason)

    async def load_seen(self) -> None:
        """Remember recent run ids from disk, so a restart does not count a resend twice."""
        for run_id in await self._history.recent_run_ids(DEDUPE_WINDOW):
            self._seen[run_id] = None

    def parse(
        self, documents: list[object], now: float | None = None
    ) -> list[tuple[RunResult, dict[str, Any]]]:
        """Validate every document first: a batch is taken whole or refused whole."""
        now = time.time() if now is None else now
        results = []
        for index, document in enumerate(documents):
            where = f"document {index}: " if len(documents) > 1 else ""
            try:
                result = from_dict(document)
                self._check_clock(result.started_at, result.finished_at, now=now)
            except ResultFormatError as exc:
                self._refuse("result", exc)
                exc.args = (f"{where}{exc}",)  # which document of a batch; status kept
                raise
            results.append((result, cast(dict[str, Any], document)))
        try:
            self._check_series_limits([result for result, _ in results])
        except Refused as exc:
            self._refuse("result", exc)
            raise
        return results

    def _refuse(self, what: str, exc: ResultFormatError) -> None:
        reason = exc.reason if isinstance(exc, Refused) else "invalid"
        self.refused.labels(what, reason).inc()
        if what == "result":
            self._received.labels("rejected").inc()

    def _check_clock(self, *stamps: float, now: float) -> None:
        """A time ahead of ours by more than the skew is a broken clock or a forgery."""
        skew = self.limits.max_clock_skew_seconds
        ahead = max(stamps) - now
        if ahead > skew:
            raise Refused(
                f"dated {ahead:.0f}s in the future (collector time {now:.0f}); "
                f"check the agent's clock (allowed skew {skew:.0f}s)",
                422,
                "clock_skew",
            )

    def _check_series_limits(self, results: list[RunResult]) -> None:
        """New series per agent and per location stay under their limits."""
        new: dict[SeriesKey, RunResult] = {}
        for result in results:
            key = (result.journey, result.location, result.device)
            if key not in self._state.series:
                new.setdefault(key, result)
        for field, limit in (
            ("agent", self.limits.max_series_per_agent),
            ("location", self.limits.max_series_per_location),
        ):
            adding: dict[str, int] = {}
            for result in new.values():
                owner = getattr(result, field)
                adding[owner] = adding.get(owner, 0) + 1
            for owner, count in adding.items():
                have = self._state.series_count(**{field: owner})
                if have + count > limit:
                    raise Refused(
                        f"{field} {owner!r} has {have} series; {count} more would pass its "
                        f"limit of {limit} (journey, location, device combinations)",
                        429,
                        "series_limit",
                    )

    def accept(self, results: list[tuple[RunResult, dict[str, Any]]]) -> IngestOutcome:
        """Apply parsed results; a run id already seen is acknowledged and not counted again.

        History keeps the document as received (validated, and with any field a newer
        agent added): re-serialising it would cost a third of ingest time.
        """
        duplicates = 0
        changed: list[SeriesKey] = []  # one per accepted result
        for result, document in results:
            if result.run_id in self._seen:
                duplicates += 1
                self._received.labels("duplicate").inc()
                continue
            self._remember(result)
            changed.append(self._state.apply(result))
            self._history.add(_row(result, document))
            self._received.labels("accepted").inc()
        if changed:
            self._on_applied(changed)
        return IngestOutcome(len(changed), duplicates)

    def ingest(self, documents: list[object]) -> IngestOutcome:
        """Parse, then accept: the one entry point for HTTP and the embedded agent."""
        return self.accept(self.parse(documents))

    def heartbeat(self, document: object, now: float | None = None) -> None:
        """Record an agent's health; raises ResultFormatError for a bad document."""
        now = time.time() if now is None else now
        try:
            heartbeat = heartbeat_from_dict(document)
            self._check_clock(heartbeat.sent_at, heartbeat.started_at, now=now)
        except ResultFormatError as exc:
            self._heartbeats.labels("rejected").inc()
            self._refuse("heartbeat", exc)
            raise
        self._state.apply_heartbeat(heartbeat, now)
        self._heartbeats.labels("accepted").inc()

    async def expected_artifacts(self, run_id: str) -> ExpectedArtifacts | None:
        """What an accepted run declared (recent ones from memory, older ones from the
        history), or None for a run we never accepted."""
        found = self._expecting.get(run_id)
        if found is not None or run_id not in self._seen:
            return found
        document = await self._history.run(run_id)
        if document is None:
            return None
        sizes = {a["name"]: a["size"] for a in document.get("artifacts", [])}
        return ExpectedArtifacts(str(document.get("agent", "")), sizes)

    def _remember(self, result: RunResult) -> None:
        self._seen[result.run_id] = None
        if len(self._seen) > DEDUPE_WINDOW:
            self._seen.popitem(last=False)
        if result.artifacts:
            sizes = {a.name: a.size for a in result.artifacts}
            self._expecting[result.run_id] = ExpectedArtifacts(result.agent, sizes)
            if len(self._expecting) > RUNS_EXPECTING_ARTIFACTS:
                self._expecting.popitem(last=False)


def loads_strict(data: bytes | str) -> Any:
    """JSON as the contract means it: Python's parser would accept NaN and Infinity."""
    return json.loads(data, parse_constant=_no_constant)


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


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
