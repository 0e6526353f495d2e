"""The collector's HTTP API: what agents and Prometheus see, and what bad clients get."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from collector.app import HISTORY, CollectorSettings, create_app
from probes.result import (
    BudgetCheck,
    Status,
    to_dict,
)
from tests.documents import exchange_result, failed, heartbeat, result

GOLDEN = Path(__file__).parent / "golden" / "metrics_catalogue.json"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(CollectorSettings(tmp_path, max_body_bytes=64 * 1024, max_batch=10))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def samples(
    client: TestClient[Any, Any],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


SERIES = {"journey": "checkout", "location": "paris", "device": "mobile"}


async def test_a_result_shows_up_in_metrics(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/results", json=to_dict(result()))

    assert response.status == 200
    assert await response.json() == {"accepted": 1, "duplicates": 0}
    found = await samples(client)
    assert value(found, "parcours_journey_success", **SERIES) == 1.0
    assert value(found, "probe_success", **SERIES) == 1.0
    assert value(found, "probe_duration_seconds", **SERIES) == 2.5
    assert value(found, "parcours_journey_clicks", **SERIES) == 3.0
    assert value(found, "parcours_page_lcp_seconds", **SERIES, step="home") == 1.2
    assert value(found, "parcours_step_last_duration_seconds", **SERIES, step="buy") == 1.7
    assert value(found, "parcours_journey_runs_total", **SERIES, status="passed") == 1.0
    assert value(found, "parcours_journey_duration_seconds_bucket", **SERIES, le="3.0") == 1.0
    assert value(found, "parcours_journey_duration_seconds_bucket", **SERIES, le="2.0") == 0.0


async def test_failure_counters_start_at_zero_before_the_first_failure(
    client: TestClient[Any, Any],
) -> None:
    """Prometheus' increase() cannot see the first sample of a series: a failure counter
    that appeared at 1 made the dashboard miss every series' first failure."""
    await client.post("/api/v1/results", json=to_dict(result()))

    found = await samples(client)
    failures = {
        dict(labels)["step"] + "/" + dict(labels)["error_type"]: count
        for (name, labels), count in found.items()
        if name == "parcours_journey_failures_total"
    }
    assert set(failures.values()) == {0.0}
    for step in ("home", "buy"):
        for error in ("element_not_found", "http_error", "timeout", "navigation_error"):
            assert f"{step}/{error}" in failures
    assert "/budget_exceeded" in failures  # a run failed by its budgets alone has no step
    assert "home/dns_error" not in failures  # a browser step fails with no DNS error
    for status in ("passed", "degraded", "failed"):
        assert value(found, "parcours_journey_runs_total", **SERIES, status=status) is not None
        assert value(found, "parcours_journey_scheduled_runs_total", **SERIES, status=status) in (
            0.0,
            1.0,
        )

    await client.post("/api/v1/results", json=to_dict(failed("f1", 2000.0)))

    found = await samples(client)
    counted = value(
        found, "parcours_journey_failures_total", **SERIES, step="buy", error_type="http_error"
    )
    assert counted == 1.0
    assert value(found, "parcours_journey_runs_total", **SERIES, status="failed") == 1.0


async def test_a_repeated_run_id_is_accepted_once(client: TestClient[Any, Any]) -> None:
    first = await client.post("/api/v1/results", json=to_dict(result()))
    again = await client.post("/api/v1/results", json=[to_dict(result()), to_dict(result("r2"))])

    assert await first.json() == {"accepted": 1, "duplicates": 0}
    assert await again.json() == {"accepted": 1, "duplicates": 1}
    found = await samples(client)
    assert value(found, "parcours_journey_runs_total", **SERIES, status="passed") == 2.0
    assert value(found, "parcours_collector_results_received_total", outcome="duplicate") == 1.0


async def test_a_failure_is_counted_by_step_and_error_type_and_a_retry_does_not_hide_it(
    client: TestClient[Any, Any],
) -> None:
    await client.post("/api/v1/results", json=to_dict(failed("f1", 2000.0)))
    retry = replace(result("f1-retry", started_at=2001.5, finished_at=2003.0), attempt=2)
    await client.post("/api/v1/results", json=to_dict(retry))

    found = await samples(client)
    assert value(found, "parcours_journey_success", **SERIES) == 1.0  # the retry passed
    assert value(found, "parcours_journey_last_attempt", **SERIES) == 2.0
    assert (
        value(
            found, "parcours_journey_failures_total", **SERIES, step="buy", error_type="http_error"
        )
        == 1.0
    )
    passed_now = value(
        found, "parcours_journey_failed_step", **SERIES, step="buy", error_type="http_error"
    )
    assert passed_now is None  # the last run (the retry) passed
    assert value(found, "parcours_journey_consecutive_failures", **SERIES) == 0.0
    assert value(found, "parcours_journey_runs_total", **SERIES, status="failed") == 1.0


async def test_an_older_result_arriving_late_does_not_replace_the_latest(
    client: TestClient[Any, Any],
) -> None:
    await client.post("/api/v1/results", json=to_dict(failed("new", 5000.0)))
    await client.post(
        "/api/v1/results", json=to_dict(result("old", started_at=4000.0, finished_at=4001.0))
    )

    found = await samples(client)
    assert value(found, "parcours_journey_success", **SERIES) == 0.0
    assert (
        value(found, "parcours_journey_failed_step", **SERIES, step="buy", error_type="http_error")
        == 1.0
    )
    assert value(found, "parcours_journey_interval_seconds", **SERIES) == 60.0


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b"{not json", {"Content-Type": "application/json"}, 400, "invalid JSON: Expecting"),
        (
            b'{"a": 1}',
            {"Content-Type": "text/plain"},
            415,
            "expected Content-Type application/json, got text/plain",
        ),
        (
            json.dumps({"schema_version": 1}).encode(),
            {"Content-Type": "application/json"},
            400,
            "$.run_id: expected 1-128 letters, digits",
        ),
        (
            json.dumps([{}] * 11).encode(),
            {"Content-Type": "application/json"},
            413,
            "at most 10 results per request, got 11",
        ),
        (b"[]", {"Content-Type": "application/json"}, 400, "expected a result document"),
        (b"x" * (65 * 1024), {"Content-Type": "application/json"}, 413, ""),
        (b"\xff\xfe", {"Content-Type": "application/json"}, 400, "invalid JSON"),
    ],
    ids=[
        "malformed",
        "wrong-type",
        "invalid-document",
        "batch-too-large",
        "empty-batch",
        "oversized",
        "not-utf8",
    ],
)
async def test_a_bad_request_gets_a_4xx_that_says_why_and_the_collector_keeps_serving(
    client: TestClient[Any, Any], body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = await client.post("/api/v1/results", data=body, headers=headers)

    assert response.status == status
    assert message in await response.text()
    assert (await client.get("/-/healthy")).status == 200
    ok = await client.post("/api/v1/results", json=to_dict(result()))
    assert ok.status == 200


async def test_a_batch_with_one_bad_document_is_refused_whole_naming_it(
    client: TestClient[Any, Any],
) -> None:
    bad = to_dict(result("bad"))
    bad["steps"][0]["status"] = "sort-of"

    response = await client.post("/api/v1/results", json=[to_dict(result()), bad])

    assert response.status == 400
    assert "document 1: $.steps[0].status: expected one of" in await response.text()
    assert value(await samples(client), "parcours_journey_success", **SERIES) is None


async def test_agent_health_is_exported_from_heartbeats(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/v1/heartbeats", json=heartbeat())

    assert response.status == 200
    found = await samples(client)
    agent = {"agent": "agent-1", "location": "paris"}
    assert value(found, "parcours_agent_skipped_runs_total", **agent) == 2.0
    assert value(found, "parcours_agent_chromium_restarts_total", **agent) == 1.0
    assert value(found, "parcours_agent_artifacts_dropped_total", **agent) == 3.0
    assert value(found, "parcours_config_last_reload_successful", **agent) == 1.0
    assert value(found, "parcours_agent_scheduler_lag_seconds_bucket", **agent, le="0.05") == 3.0
    assert value(found, "parcours_agent_scheduler_lag_seconds_count", **agent) == 4.0


async def test_a_bad_heartbeat_gets_a_400(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        "/api/v1/heartbeats", json=heartbeat(config_reload_successful="yes")
    )

    assert response.status == 400
    assert "config_reload_successful: expected true or false" in await response.text()


async def test_a_journey_the_agent_no_longer_runs_stops_being_exported(
    client: TestClient[Any, Any],
) -> None:
    await client.post("/api/v1/results", json=to_dict(result()))
    await client.post("/api/v1/heartbeats", json=heartbeat(jobs=("login@mobile",)))

    found = await samples(client)
    assert not [key for key in found if ("journey", "checkout") in key[1]]


async def test_run_history_pages_newest_first(client: TestClient[Any, Any]) -> None:
    for index in range(5):
        await client.post(
            "/api/v1/results",
            json=to_dict(
                result(f"r{index}", started_at=1000.0 + index, finished_at=1001.0 + index)
            ),
        )
    await client.app[HISTORY].flush()

    first = await (await client.get("/api/v1/runs?journey=checkout&limit=2")).json()
    second = await (
        await client.get(f"/api/v1/runs?journey=checkout&limit=2&before={first['next_before']}")
    ).json()
    bad = await client.get("/api/v1/runs?limit=lots")

    assert [r["run_id"] for r in first["runs"]] == ["r4", "r3"]
    assert [r["run_id"] for r in second["runs"]] == ["r2", "r1"]
    assert bad.status == 400


async def test_duplicates_are_refused_across_a_collector_restart(tmp_path: Path) -> None:
    settings = CollectorSettings(tmp_path)
    async with TestClient(TestServer(create_app(settings))) as first:
        await first.post("/api/v1/results", json=to_dict(result()))
    async with TestClient(TestServer(create_app(settings))) as second:
        response = await second.post("/api/v1/results", json=to_dict(result()))

        assert await response.json() == {"accepted": 0, "duplicates": 1}


async def test_ready_and_healthy_endpoints(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200


async def test_metric_names_and_labels_match_the_golden_catalogue(
    client: TestClient[Any, Any],
) -> None:
    """Dashboards and alerts depend on these names: change them on purpose, never by accident.

    To accept a deliberate change: PARCOURS_UPDATE_GOLDEN=1 pytest -k golden_catalogue
    """
    degraded = replace(
        result("d1", started_at=3000.0, finished_at=3004.0),
        status=Status.DEGRADED,
        journey="slow",
        budgets=(BudgetCheck("page_load", "warn", 3.0, 3.4, "home"),),
    )
    api = exchange_result("h1", "http")
    broken = replace(failed("f2", 5000.0), journey="broken")  # failing now: its error info
    await client.post(
        "/api/v1/results",
        json=[to_dict(r) for r in (result(), failed("f", 10.0), degraded, api, broken)],
    )
    jobs = ("checkout@mobile", "slow@mobile", "http-check@none", "broken@mobile")
    await client.post("/api/v1/heartbeats", json=heartbeat(jobs=jobs))
    text = await (await client.get("/metrics")).text()

    catalogue = {
        family.name: {
            "type": family.type,
            "labels": sorted({label for s in family.samples for label in s.labels} - {"le"}),
            "samples": sorted({s.name for s in family.samples}),
        }
        for family in text_string_to_metric_families(text)
        if family.name.startswith(("parcours_", "probe_"))
    }
    import os

    if os.environ.get("PARCOURS_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(catalogue, indent=2, sort_keys=True) + "\n")
    assert catalogue == json.loads(GOLDEN.read_text())


async def test_consecutive_failures_count_scheduled_runs_not_retries(
    client: TestClient[Any, Any],
) -> None:
    first = failed("a1", 100.0)
    retry = replace(failed("a2", 102.0), attempt=2)
    second = failed("b1", 160.0)
    for run in (first, retry, second):
        await client.post("/api/v1/results", json=to_dict(run))

    found = await samples(client)
    assert value(found, "parcours_journey_consecutive_failures", **SERIES) == 2.0


async def test_an_alerts_run_link_opens_the_failure_of_that_location_and_device(
    client: TestClient[Any, Any],
) -> None:
    mobile_paris = failed("mobile-paris", 3000.0)
    desktop_paris = replace(failed("desktop-paris", 3100.0), device="desktop")
    mobile_lyon = replace(failed("mobile-lyon", 3200.0), location="lyon")
    slow = replace(result("slow-mobile", started_at=3300.0, finished_at=3304.0), status="degraded")
    for run in (mobile_paris, desktop_paris, mobile_lyon, slow):
        assert (await client.post("/api/v1/results", json=to_dict(run))).status == 200
    await client.app[HISTORY].flush()  # the history is written in batches, behind ingest

    async def link(query: str) -> str:
        answer = await client.get(
            f"/status/journeys/checkout/latest-failure{query}", allow_redirects=False
        )
        return str(answer.headers.get("Location", answer.status))

    assert await link("") == "/status/runs/mobile-lyon"  # the newest failure anywhere
    assert await link("?location=paris&device=mobile") == "/status/runs/mobile-paris"
    assert await link("?location=paris&device=desktop") == "/status/runs/desktop-paris"
    assert await link("?device=mobile&status=degraded") == "/status/runs/slow-mobile"
    assert await link("?location=tokyo&device=mobile") == "/status/journeys/checkout"
    assert await link("?status=passed") == "400"


async def test_an_error_with_quotes_and_many_lines_pages_as_one_short_escaped_line(
    client: TestClient[Any, Any],
) -> None:
    first = 'no element matches role=button[name="Pay \\\\ now"] ' + "x" * 300
    message = first + "\n" + "call log:\n" * 300  # within the contract's 4,096 characters
    broken = replace(failed("q1", 7000.0), error_message=message)
    assert (await client.post("/api/v1/results", json=to_dict(broken))).status == 200

    found = await samples(client)  # the exposition still parses
    (summary,) = [
        dict(labels)["summary"] for (name, labels) in found if name == "parcours_journey_error_info"
    ]
    assert summary == first[:159] + "…"  # one line, 160 characters, quotes and all
    assert summary.startswith('no element matches role=button[name="Pay \\\\ now"]')


async def test_an_alert_link_with_hostile_filters_finds_nothing_and_says_so(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.post("/api/v1/results", json=to_dict(failed("h1", 3000.0)))).status == 200
    await client.app[HISTORY].flush()

    for query in (
        "?location=paris'%20OR%201=1--",
        "?device=%22mobile%22",
        "?location=" + "x" * 5000,
    ):
        answer = await client.get(
            f"/status/journeys/checkout/latest-failure{query}", allow_redirects=False
        )
        assert answer.headers["Location"] == "/status/journeys/checkout", query
    bad = await client.get("/status/journeys/checkout/latest-failure?status=%00")
    assert bad.status == 400 and "status must be failed or degraded" in await bad.text()


async def test_availability_counts_scheduled_runs_not_attempts_in_pages_and_metrics(
    client: TestClient[Any, Any],
) -> None:
    # Five scheduled runs in seven attempts: pass; fail then a passing retry; pass; fail
    # then a failing retry; fail with no retry left. Three of five scheduled runs worked
    # (attempts would say three of seven).
    now = time.time() - 600
    attempts = [
        result("s1", started_at=now, finished_at=now + 1),
        replace(failed("s2a", now + 60), final=False),
        replace(result("s2b", started_at=now + 62, finished_at=now + 63), attempt=2),
        result("s3", started_at=now + 120, finished_at=now + 121),
        replace(failed("s4a", now + 180), final=False),
        replace(failed("s4b", now + 182), attempt=2),
        failed("s5", now + 240),
    ]
    for attempt in attempts:
        response = await client.post("/api/v1/results", json=to_dict(attempt))
        assert response.status == 200, await response.text()
    await client.app[HISTORY].flush()

    found = await samples(client)
    scheduled = {
        status: value(found, "parcours_journey_scheduled_runs_total", **SERIES, status=status)
        for status in ("passed", "failed")
    }
    assert scheduled == {"passed": 3.0, "failed": 2.0}
    assert value(found, "parcours_journey_runs_total", **SERIES, status="failed") == 4.0
    ratios = await client.app[HISTORY].availability(now - 1)
    assert ratios[("checkout", "paris", "mobile")] == pytest.approx(3 / 5)
    page = await (await client.get("/status")).text()
    assert "<td>60.0 %</td>" in page


async def test_a_failed_attempt_with_a_retry_to_come_keeps_the_last_scheduled_outcome(
    client: TestClient[Any, Any],
) -> None:
    passed = result("ok", started_at=1000.0, finished_at=1001.0)
    await client.post("/api/v1/results", json=to_dict(passed))
    await client.post("/api/v1/results", json=to_dict(replace(failed("f1", 2000.0), final=False)))

    found = await samples(client)
    assert value(found, "parcours_journey_success", **SERIES) == 1.0  # until the retry says
    await client.post("/api/v1/results", json=to_dict(replace(failed("f2", 2002.0), attempt=2)))
    found = await samples(client)
    assert value(found, "parcours_journey_success", **SERIES) == 0.0


async def test_a_restarted_collector_carries_on_where_each_journey_stood(
    tmp_path: Path,
) -> None:
    now = time.time() - 300
    app = create_app(CollectorSettings(tmp_path))
    async with TestClient(TestServer(app)) as first:
        for run_id, started in (("ok", now), ("f1", now + 60), ("f2", now + 120)):
            document = result(run_id, started_at=started, finished_at=started + 1)
            if run_id != "ok":
                document = failed(run_id, started)
            await first.post("/api/v1/results", json=to_dict(document))
        await first.app[HISTORY].flush()

    again = create_app(CollectorSettings(tmp_path))
    async with TestClient(TestServer(again)) as restarted:
        found = await samples(restarted)
        assert value(found, "parcours_journey_consecutive_failures", **SERIES) == 2.0
        assert value(found, "parcours_journey_success", **SERIES) == 0.0
        # Counters restart from 0 like after any restart: nothing is counted twice.
        assert value(found, "parcours_journey_runs_total", **SERIES, status="failed") == 0.0
        await restarted.post("/api/v1/results", json=to_dict(failed("f3", now + 180)))
        found = await samples(restarted)
        assert value(found, "parcours_journey_consecutive_failures", **SERIES) == 3.0
        assert value(found, "parcours_journey_runs_total", **SERIES, status="failed") == 1.0


async def test_the_collector_says_where_its_pages_are_for_the_dashboards(tmp_path: Path) -> None:
    app = create_app(CollectorSettings(tmp_path, public_url="https://parcours.example.com/"))
    async with TestClient(TestServer(app)) as client:
        found = await samples(client)

    assert value(found, "parcours_collector_info", url="https://parcours.example.com") == 1.0


async def test_a_scheduled_run_counts_once_as_a_failure_and_only_when_its_retries_failed(
    client: TestClient[Any, Any],
) -> None:
    async def consecutive() -> float | None:
        return value(await samples(client), "parcours_journey_consecutive_failures", **SERIES)

    await client.post("/api/v1/results", json=to_dict(replace(failed("a1", 1000.0), final=False)))
    assert await consecutive() == 0.0  # a blip a retry may still clear pages nobody
    await client.post("/api/v1/results", json=to_dict(replace(failed("a2", 1002.0), attempt=2)))
    assert await consecutive() == 1.0
    # An agent that does not say `final` (older): its first attempt counts, its retry not.
    await client.post("/api/v1/results", json=to_dict(failed("b1", 1060.0)))
    await client.post("/api/v1/results", json=to_dict(replace(failed("b2", 1062.0), attempt=2)))
    assert await consecutive() == 2.0


async def test_metrics_are_gzipped_for_a_scraper_that_accepts_it(tmp_path: Path) -> None:
    import gzip

    app = create_app(CollectorSettings(tmp_path))
    async with TestClient(TestServer(app), auto_decompress=False) as raw:
        await raw.post("/api/v1/results", json=to_dict(result()))
        zipped = await raw.get("/metrics", headers={"Accept-Encoding": "gzip"})
        plain = await raw.get("/metrics", headers={"Accept-Encoding": "gzip;q=0"})
        zipped_body, plain_body = await zipped.read(), await plain.read()

    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Content-Encoding" not in plain.headers
    assert len(zipped_body) < len(plain_body) / 3
    unzipped = gzip.decompress(zipped_body).decode()
    assert 'parcours_journey_success{journey="checkout"' in unzipped
    assert unzipped.count("\n") == plain_body.decode().count("\n")
