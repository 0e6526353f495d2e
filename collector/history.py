"""Bounded run history in SQLite, written from one thread in batches.

SQLite calls block, so they never run on the event loop: one worker thread
owns the connection; ingest only enqueues. Batching commits (WAL,
synchronous=NORMAL) is what lets one core take thousands of results per
second. On close, everything queued is written before the file is closed.

The writer must outlive any row: a batch that fails is written again row by
row, and a row that still fails is logged, counted and skipped, so one bad
row can never stop the writes of every later result. ``problem`` says when
the writer is unwell (it stopped, or nothing could be written lately), and
``/-/ready`` reports it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

log = structlog.get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    journey TEXT NOT NULL,
    location TEXT NOT NULL,
    device TEXT NOT NULL,
    agent TEXT NOT NULL,
    started_at REAL NOT NULL,
    status TEXT NOT NULL,
    error_type TEXT,
    failed_step TEXT,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_series ON runs (journey, location, device, started_at DESC);
-- Pruning keeps the newest runs per series and agent: this index spares it a full sort.
CREATE INDEX IF NOT EXISTS runs_series_agent
    ON runs (journey, location, device, agent, started_at DESC);
"""
BATCH = 500
PRUNE_EVERY = 2_000  # inserts between two prunes of the per-series limit


@dataclass(frozen=True)
class HistoryRow:
    """One run as stored: the series keys for queries, and the whole document."""

    run_id: str
    journey: str
    location: str
    device: str
    agent: str
    started_at: float
    status: str
    error_type: str | None
    failed_step: str | None
    document: dict[str, Any]


class RunHistory:
    """The last ``keep_per_series`` runs of every journey/location/device."""

    def __init__(
        self,
        path: Path,
        keep_per_series: int = 1000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._path = path
        self._keep = keep_per_series
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history")
        self._queue: asyncio.Queue[HistoryRow | None] = asyncio.Queue()
        self._conn: sqlite3.Connection | None = None
        self._writer: asyncio.Task[None] | None = None
        self._since_prune = 0
        self._last_error: str | None = None  # set while writes fail, cleared by a good one
        self._failed_rows = Counter(
            "parcours_collector_history_write_failures",
            "Runs that could not be written to the history (logged and skipped).",
            registry=registry,
        )

    @property
    def problem(self) -> str | None:
        """Why the history is not keeping results now, or None when it is."""
        if self._writer is None or self._writer.done():
            return "the history writer has stopped"
        return self._last_error

    async def open(self) -> None:
        """Create the file and schema, and start the batch writer."""
        await self._call(self._open_sync)
        self._writer = asyncio.create_task(self._write_loop(), name="history-writer")

    def _open_sync(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        self._conn = conn

    async def _call(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, func, *args)

    def add(self, row: HistoryRow) -> None:
        """Queue a run for writing; never blocks the caller."""
        self._queue.put_nowait(row)

    async def _write_loop(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            rows = [row for row in batch if row is not None]
            try:
                if rows:
                    await self._write(rows)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(rows) < len(batch):
                return  # the close marker was in this batch

    async def _write(self, rows: list[HistoryRow]) -> None:
        """A batch in one transaction; if that fails, row by row, skipping what cannot go."""
        try:
            await self._call(self._insert_sync, rows)
            self._last_error = None
            return
        except Exception as exc:  # noqa: BLE001 - any row error: fall back to one at a time
            log.warning("history_batch_failed", error=repr(exc)[:300], runs=len(rows))
        written = 0
        for row in rows:
            try:
                await self._call(self._insert_sync, [row])
                written += 1
            except Exception as exc:  # noqa: BLE001 - the bad row is skipped, never the writer
                self._failed_rows.inc()
                self._last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.error(
                    "history_write_failed",
                    error=repr(exc)[:300],
                    run_id=row.run_id[:130],
                    journey=ascii(row.journey)[:130],
                )
        if written:
            self._last_error = None

    def _insert_sync(self, batch: list[HistoryRow]) -> None:
        assert self._conn is not None
        with self._conn:
            self._conn.executemany(
                "INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        r.run_id,
                        r.journey,
                        r.location,
                        r.device,
                        r.agent,
                        r.started_at,
                        r.status,
                        r.error_type,
                        r.failed_step,
                        json.dumps(r.document, separators=(",", ":")),
                    )
                    for r in batch
                ],
            )
        self._since_prune += len(batch)
        if self._since_prune >= PRUNE_EVERY:
            self._prune_sync()

    async def prune(self) -> None:
        """Apply the per-series limit now (it is applied every PRUNE_EVERY inserts anyway)."""
        await self.flush()
        await self._call(self._prune_sync)

    def _prune_sync(self) -> None:
        """Keep the newest runs of each series, counted per agent: results posted under
        another agent's name cannot push a genuine agent's runs out of the history."""
        assert self._conn is not None
        self._since_prune = 0
        with self._conn:
            self._conn.execute(
                """DELETE FROM runs WHERE rowid IN (
                     SELECT rowid FROM (
                       SELECT rowid, ROW_NUMBER() OVER (
                         PARTITION BY journey, location, device, agent
                         ORDER BY started_at DESC) AS n
                       FROM runs) WHERE n > ?)""",
                (self._keep,),
            )

    async def flush(self) -> None:
        """Wait until everything queued so far is on disk (tests, shutdown)."""
        await self._queue.join()

    async def runs(
        self,
        journey: str | None,
        location: str | None,
        device: str | None,
        limit: int,
        before: float | None,
    ) -> list[dict[str, Any]]:
        """Newest first, filtered; ``before`` pages back by start time."""
        rows: list[dict[str, Any]] = await self._call(
            self._runs_sync, journey, location, device, limit, before
        )
        return rows

    def _runs_sync(
        self,
        journey: str | None,
        location: str | None,
        device: str | None,
        limit: int,
        before: float | None,
    ) -> list[dict[str, Any]]:
        assert self._conn is not None
        clauses: list[str] = []
        params: list[str | float] = []
        for column, value in (("journey", journey), ("location", location), ("device", device)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            clauses.append("started_at < ?")
            params.append(before)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        cursor = self._conn.execute(
            f"SELECT document FROM runs {where} ORDER BY started_at DESC LIMIT ?",
            (*params, limit),
        )
        return [json.loads(document) for (document,) in cursor]

    async def run(self, run_id: str) -> dict[str, Any] | None:
        """One run's document, or None."""
        found: dict[str, Any] | None = await self._call(self._run_sync, run_id)
        return found

    def _run_sync(self, run_id: str) -> dict[str, Any] | None:
        assert self._conn is not None
        row = self._conn.execute("SELECT document FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    async def availability(self, since: float) -> dict[tuple[str, str, str], float]:
        """Share of scheduled runs that worked (passed or degraded) per series since a time:
        the last attempt of each (an attempt a retry followed is not counted)."""
        ratios: dict[tuple[str, str, str], float] = await self._call(self._availability_sync, since)
        return ratios

    def _availability_sync(self, since: float) -> dict[tuple[str, str, str], float]:
        assert self._conn is not None
        cursor = self._conn.execute(
            """SELECT journey, location, device,
                      AVG(CASE WHEN status = 'failed' THEN 0.0 ELSE 1.0 END)
               FROM runs WHERE started_at >= ?
                 AND COALESCE(json_extract(document, '$.final'), 1) = 1
               GROUP BY journey, location, device""",
            (since,),
        )
        return {(j, loc, d): ratio for j, loc, d, ratio in cursor}

    async def last_failure(
        self,
        journey: str,
        location: str | None = None,
        device: str | None = None,
        status: str = "failed",
    ) -> str | None:
        """The run id of the journey's latest run with ``status`` (failed, or degraded for
        slow alerts), in that location and on that device when given (for alert links)."""
        found: str | None = await self._call(
            self._last_failure_sync, journey, location, device, status
        )
        return found

    def _last_failure_sync(
        self, journey: str, location: str | None, device: str | None, status: str
    ) -> str | None:
        assert self._conn is not None
        row = self._conn.execute(
            "SELECT run_id FROM runs WHERE journey = ? AND status = ? "
            "AND (? IS NULL OR location = ?) AND (? IS NULL OR device = ?) "
            "ORDER BY started_at DESC LIMIT 1",
            (journey, status, location, location, device, device),
        ).fetchone()
        return str(row[0]) if row else None

    async def recent_per_series(self, since: float, per_series: int) -> list[dict[str, Any]]:
        """The newest runs of each series started since a time, oldest first per series:
        what a restarted collector needs to know where each journey stands."""
        found: list[dict[str, Any]] = await self._call(
            self._recent_per_series_sync, since, per_series
        )
        return found

    def _recent_per_series_sync(self, since: float, per_series: int) -> list[dict[str, Any]]:
        assert self._conn is not None
        cursor = self._conn.execute(
            """SELECT document FROM (
                   SELECT document, journey, location, device, started_at,
                          ROW_NUMBER() OVER (
                              PARTITION BY journey, location, device ORDER BY started_at DESC
                          ) AS newest
                   FROM runs WHERE started_at >= ?
               ) WHERE newest <= ? ORDER BY journey, location, device, started_at""",
            (since, per_series),
        )
        return [json.loads(document) for (document,) in cursor]

    async def recent_run_ids(self, limit: int) -> list[str]:
        """The newest run ids, to refuse duplicates across a collector restart."""
        ids: list[str] = await self._call(self._recent_sync, limit)
        return ids

    def _recent_sync(self, limit: int) -> list[str]:
        assert self._conn is not None
        cursor = self._conn.execute(
            "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
        )
        return [run_id for (run_id,) in cursor][::-1]

    async def close(self) -> None:
        """Write what is queued, then close the file and the thread."""
        if self._writer is not None and not self._writer.done():
            self._queue.put_nowait(None)
            await self._writer
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=True)
