"""The collector service: ingest API, /metrics, run history, health.

A bad request gets a 4xx whose body says why; nothing a client sends can
take the collector down. ``create_app`` is the one factory used by
``parcours collector``, ``parcours run`` and the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from collector import auth, pages
from collector.artifacts import ArtifactRefused, ArtifactStore, RetentionLimits
from collector.bus import Bus, BusSettings, ResultsReader
from collector.dispatcher import Dispatcher, DispatchSettings
from collector.history import RunHistory
from collector.ingest import IngestLimits, Ingestor, Refused, loads_strict
from collector.metrics import MetricsRenderer
from collector.state import CollectorState
from probes.result import ResultFormatError, from_dict, to_dict

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CollectorSettings:
    """How a collector is run; the defaults suit one small team."""

    data_dir: Path
    history_per_series: int = 1000
    max_body_bytes: int = 1024 * 1024
    max_batch: int = 500
    retention: RetentionLimits = field(default_factory=RetentionLimits)
    limits: IngestLimits = field(default_factory=IngestLimits)
    # Where people, alert links and Grafana reach the collector's pages; exported as
    # parcours_collector_info{url} so that the dashboards' links need no hand-set URL.
    public_url: str | None = None
    # Split deployment: results and heartbeats come from NATS (the HTTP write endpoints
    # answer 410), and with ``dispatch`` the collector schedules the config's jobs.
    bus: BusSettings | None = None
    dispatch: DispatchSettings | None = None
    # From --auth-file: without it, anyone who reaches the collector may read it.
    tokens: tuple[auth.StoredToken, ...] = ()

    @property
    def database(self) -> Path:
        """The SQLite file of the run history."""
        return self.data_dir / "runs.sqlite3"


SETTINGS = web.AppKey("settings", CollectorSettings)
PUBLIC_URL_INFO = web.AppKey("public_url_info", Gauge)
STATE = web.AppKey("state", CollectorState)
HISTORY = web.AppKey("history", RunHistory)
INGESTOR = web.AppKey("ingestor", Ingestor)
REGISTRY = web.AppKey("registry", CollectorRegistry)
RENDERER = web.AppKey("renderer", MetricsRenderer)
ARTIFACTS = web.AppKey("artifacts", ArtifactStore)
READER = web.AppKey("reader", ResultsReader)


def create_app(settings: CollectorSettings) -> web.Application:
    """The collector as an aiohttp application; resources open in ``cleanup_ctx``."""
    # Artifacts are the largest bodies; result bodies are held to max_body_bytes by hand.
    app = web.Application(
        client_max_size=max(settings.max_body_bytes, settings.retention.max_artifact_bytes),
        middlewares=[auth.middleware(settings.tokens)] if settings.tokens else [],
    )
    app[SETTINGS] = settings
    app[ARTIFACTS] = ArtifactStore(settings.data_dir / "artifacts", settings.retention)
    app[STATE] = CollectorState()
    app[REGISTRY] = CollectorRegistry()
    app[PUBLIC_URL_INFO] = Gauge(
        "parcours_collector_info",
        "1, with the URL the collector's pages are reached at (Grafana's links read it).",
        ["url"],
        registry=app[REGISTRY],
    )
    if settings.public_url:
        announce_url(app, settings.public_url)
    app[RENDERER] = MetricsRenderer()
    app.cleanup_ctx.append(_history)
    writes = settings.bus is None
    app.router.add_post("/api/v1/results", post_results if writes else retired)
    app.router.add_post("/api/v1/heartbeats", post_heartbeat if writes else retired)
    app.router.add_get("/api/v1/runs", get_runs)
    app.router.add_put(
        "/api/v1/runs/{run_id}/artifacts/{name}", put_artifact if writes else retired
    )
    app.router.add_get("/runs/{run_id}/artifacts/{name}", get_artifact, name="artifact")
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/", to_status)
    app.router.add_get("/status", status_overview)
    app.router.add_get("/status/journeys/{journey}", status_journey)
    app.router.add_get("/status/journeys/{journey}/latest-failure", status_latest_failure)
    app.router.add_get("/status/runs/{run_id}", status_run)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app


async def _history(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    history = RunHistory(settings.database, settings.history_per_series, app[REGISTRY])
    await history.open()
    app[HISTORY] = history
    renderer = app[RENDERER]
    app[INGESTOR] = Ingestor(
        app[STATE], history, app[REGISTRY], settings.limits, on_applied=renderer.changed
    )
    await app[INGESTOR].load_seen()
    await _restore_state(app)
    renderer.changed(app[STATE].series)
    fresh = asyncio.create_task(renderer.keep_fresh(app[STATE]), name="metrics-keep-fresh")
    log.info("collector_ready", database=str(settings.database))
    try:
        async with _split_deployment(app):
            yield
    finally:
        fresh.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fresh
        await history.close()


@contextlib.asynccontextmanager
async def _split_deployment(app: web.Application) -> AsyncIterator[None]:
    """With NATS: read the results stream and, given a config, schedule its jobs."""
    settings = app[SETTINGS]
    if settings.bus is None:
        yield
        return
    bus = await Bus.open(settings.bus)
    reader = ResultsReader(bus, app[INGESTOR], app[ARTIFACTS])
    dispatcher = None
    try:
        await reader.start()
        if settings.dispatch is not None:
            dispatcher = Dispatcher(bus, settings.dispatch, app[STATE], app[REGISTRY])
            await dispatcher.start()
        app[READER] = reader
        yield
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
        await reader.stop()
        await bus.close()


async def retired(request: web.Request) -> web.Response:
    """Agents of a NATS deployment publish to JetStream; nobody writes here over HTTP."""
    raise _error(
        web.HTTPGone,
        "this collector takes results, heartbeats and artifacts over NATS JetStream only "
        "(run agents with --nats)",
    )


def announce_url(app: web.Application, url: str) -> None:
    """Export where the collector is reached (replacing what was said before)."""
    app[PUBLIC_URL_INFO].clear()
    app[PUBLIC_URL_INFO].labels(url.rstrip("/")).set(1)


RESTORE_SECONDS = 3600.0  # the alert rules hold a journey's last state for an hour
RESTORE_PER_SERIES = 50  # runs read back per series: the consecutive count tops out there


async def _restore_state(app: web.Application) -> None:
    """A restarted collector carries on where it stood: a journey failing before the restart
    is still failing (its consecutive count intact), not reset to a clean slate that would
    page again from 1, or resolve on a stale count."""
    documents = await app[HISTORY].recent_per_series(
        time.time() - RESTORE_SECONDS, RESTORE_PER_SERIES
    )
    results = []
    for document in documents:
        try:
            results.append(from_dict(document))
        except ResultFormatError as exc:  # a row from an older, laxer version: skipped
            log.warning("history_row_unreadable", error=str(exc)[:200])
    app[STATE].restore(results)
    log.info("collector_state_restored", runs=len(results), series=len(app[STATE].series))


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise _error(
            web.HTTPUnsupportedMediaType,
            f"expected Content-Type application/json, got {request.content_type or 'none'}",
        )
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, request.content_length)
    body = await request.read()  # aiohttp answers 413 past client_max_size
    if len(body) > limit:
        raise _too_large(limit, len(body))
    try:
        return loads_strict(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _error(web.HTTPBadRequest, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise _error(web.HTTPBadRequest, "invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise _error(web.HTTPBadRequest, f"invalid JSON: {exc}") from None


_REFUSED_STATUS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    404: web.HTTPNotFound,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
    429: web.HTTPTooManyRequests,
}


def _refused(status: int, message: str, *, limit: int = 0, size: int = 0) -> web.HTTPException:
    """The 4xx for anything the collector will not keep, its JSON body saying why."""
    if status == 413:  # aiohttp wants the sizes for this one
        return web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=size,
            text=json.dumps({"error": message}),
            content_type="application/json",
        )
    return _error(_REFUSED_STATUS.get(status, web.HTTPBadRequest), message)


def _refusal(exc: ResultFormatError) -> web.HTTPException:
    """The 4xx for a result or heartbeat the collector will not keep."""
    return _refused(exc.status if isinstance(exc, Refused) else 400, str(exc))


def _too_large(limit: int, size: int) -> web.HTTPException:
    message = f"body of {size} bytes is over the limit of {limit}"
    return _refused(413, message, limit=limit, size=size)


async def put_artifact(request: web.Request) -> web.Response:
    """Store one artifact of a run: a screenshot, the page's HTML or a trace."""
    store, ingestor = request.app[ARTIFACTS], request.app[INGESTOR]
    run_id, name = request.match_info["run_id"], request.match_info["name"]
    try:
        expected = await ingestor.expected_artifacts(run_id)
        store.check(run_id, name, request.content_type, request.content_length or 0, expected)
        data = await request.read()
        await store.put(run_id, name, request.content_type, data, expected)
    except ArtifactRefused as exc:
        ingestor.refused.labels("artifact", exc.reason).inc()
        log.warning(
            "artifact_refused", run_id=ascii(run_id)[:130], name=ascii(name)[:80], error=str(exc)
        )
        limit, size = store.limits.max_artifact_bytes, request.content_length or 0
        raise _refused(exc.status, str(exc), limit=limit, size=size) from None
    return web.json_response({"stored": name}, status=201)


async def get_artifact(request: web.Request) -> web.StreamResponse:
    """Serve an artifact; captured HTML is sandboxed so the site's scripts never run here."""
    store = request.app[ARTIFACTS]
    path = await asyncio.to_thread(
        store.path, request.match_info["run_id"], request.match_info["name"]
    )
    if path is None:
        raise web.HTTPNotFound(text="no such artifact")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=3600"}
    if path.suffix == ".html":
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src data:"
    if path.suffix == ".zip":
        headers["Content-Disposition"] = f'attachment; filename="{path.parent.name}-trace.zip"'
    return web.FileResponse(path, headers=headers)


async def post_results(request: web.Request) -> web.Response:
    """Accept one result document or a list of them (all valid, or none taken)."""
    body = await _json_body(request)
    documents = body if isinstance(body, list) else [body]
    limit = request.app[SETTINGS].max_batch
    if len(documents) > limit:
        message = json.dumps(
            {"error": f"at most {limit} results per request, got {len(documents)}"}
        )
        raise web.HTTPRequestEntityTooLarge(
            max_size=limit,
            actual_size=len(documents),
            text=message,
            content_type="application/json",
        )
    if not documents:
        raise _error(web.HTTPBadRequest, "expected a result document or a non-empty list")
    try:
        outcome = request.app[INGESTOR].ingest(documents)
    except ResultFormatError as exc:
        log.warning("result_rejected", error=str(exc)[:500], remote=request.remote)
        raise _refusal(exc) from None
    return web.json_response({"accepted": outcome.accepted, "duplicates": outcome.duplicates})


async def post_heartbeat(request: web.Request) -> web.Response:
    """Record an agent's health."""
    body = await _json_body(request)
    try:
        request.app[INGESTOR].heartbeat(body)
    except ResultFormatError as exc:
        log.warning("heartbeat_rejected", error=str(exc)[:500], remote=request.remote)
        raise _refusal(exc) from None
    return web.json_response({"ok": True})


async def get_runs(request: web.Request) -> web.Response:
    """Run history, newest first: ``?journey=&location=&device=&limit=&before=``."""
    query = request.query
    try:
        limit = int(query.get("limit", "50"))
        before = float(query["before"]) if "before" in query else None
    except ValueError:
        raise _error(web.HTTPBadRequest, "limit must be an integer and before a number") from None
    if not 1 <= limit <= 500:
        raise _error(web.HTTPBadRequest, "limit must be between 1 and 500")
    runs = await request.app[HISTORY].runs(
        query.get("journey"), query.get("location"), query.get("device"), limit, before
    )
    next_before = runs[-1]["started_at"] if len(runs) == limit else None
    return web.json_response({"runs": runs, "next_before": next_before})


async def get_metrics(request: web.Request) -> web.Response:
    """The collector's own counters, then every journey and agent family; gzip when the
    scraper accepts it (Prometheus does), compressed off the event loop at level 1: text
    this repetitive shrinks about 20 times even at the fastest level."""
    own = generate_latest(request.app[REGISTRY])
    parts = [own, *await request.app[RENDERER].render_parts(request.app[STATE])]
    headers = {"Content-Type": CONTENT_TYPE_LATEST, "Vary": "Accept-Encoding"}
    if accepts_gzip(request.headers.get("Accept-Encoding", "")):
        body = await asyncio.to_thread(gzip_pieces, parts)
        headers["Content-Encoding"] = "gzip"
    else:
        body = b"".join(parts)
    return web.Response(body=body, headers=headers)


def gzip_pieces(parts: list[bytes]) -> bytes:
    """One gzip member of ``parts`` in order, fed to zlib piece by piece: joining them first
    copied the whole exposition (50 MB at 3,000 series) for nothing, 30 ms of the scrape.
    zlib writes the gzip header and trailer itself (wbits 31)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = [compressor.compress(part) for part in parts]
    out.append(compressor.flush())
    return b"".join(out)


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header admits gzip (and does not refuse it with q=0)."""
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            try:
                return float(params.strip().removeprefix("q=") or "1") > 0
            except ValueError:
                return False
    return False


async def to_status(_: web.Request) -> web.Response:
    """The root is the status overview."""
    raise web.HTTPFound("/status")


async def status_overview(request: web.Request) -> web.Response:
    """Every journey now, worst first, with 24 h availability."""
    now = time.time()
    rows = [to_dict(series.latest) for series in request.app[STATE].series.values()]
    availability = await request.app[HISTORY].availability(now - 86400)
    return pages.overview(rows, availability, now)


async def status_journey(request: web.Request) -> web.Response:
    """One journey: recent runs per device and location, the latest run's steps."""
    journey = request.match_info["journey"]
    runs = await request.app[HISTORY].runs(journey, None, None, 400, None)
    if not runs and not any(key[0] == journey for key in request.app[STATE].series):
        raise web.HTTPNotFound(text=f"no journey named {journey}")
    return pages.journey_page(journey, runs, time.time())


async def status_latest_failure(request: web.Request) -> web.Response:
    """Where alerts link: the journey's latest failed run (its screenshot, its error), in
    the alert's location and on its device (``?location=&device=``); ``?status=degraded``
    for slow alerts. With nothing to show, the journey's page."""
    journey = request.match_info["journey"]
    query = request.query
    status = query.get("status", "failed")
    if status not in ("failed", "degraded"):
        raise _refused(400, f"status must be failed or degraded, got {status[:40]!r}")
    run_id = await request.app[HISTORY].last_failure(
        journey, query.get("location") or None, query.get("device") or None, status
    )
    target = pages.run_href(run_id) if run_id else pages.journey_href(journey)
    raise web.HTTPFound(target)


async def status_run(request: web.Request) -> web.Response:
    """One run, with its evidence."""
    run_id = request.match_info["run_id"]
    run = await request.app[HISTORY].run(run_id)
    if run is None:  # not written to the history yet: it may be the latest of its series
        latest = [s.latest for s in request.app[STATE].series.values()]
        run = next((to_dict(r) for r in latest if r.run_id == run_id), None)
    if run is None:
        raise web.HTTPNotFound(text=f"no run {run_id} in the history")
    names = await asyncio.to_thread(request.app[ARTIFACTS].names, run_id)
    return pages.run_page(run, names, time.time())


async def healthy(_: web.Request) -> web.Response:
    """The process is up."""
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    """Ready once the history is open and recent run ids are loaded, and while it keeps
    what it accepts (a stopped or failing history writer makes the collector unready)."""
    if INGESTOR not in request.app:
        raise web.HTTPServiceUnavailable(text="starting\n")
    problem = request.app[HISTORY].problem
    if problem is not None:
        raise web.HTTPServiceUnavailable(text=f"history: {problem}\n")
    return web.Response(text="Ready\n")
