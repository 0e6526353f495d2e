"""Hostile input against a real `parcours collector`, scraped by a real Prometheus.

Every case replays something that once blinded, forged or silenced the collector.
Each bad request must get a 4xx that says why; the very next good result must be
stored and visible in /metrics, /status and /api/v1/runs; and Prometheus, which
scrapes every second, must keep the target up.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from probes.result import Artifact, BudgetCheck, to_dict
from tests.documents import heartbeat, result
from tests.services import aget, collector_command, free_port, prometheus, serving, wait_until

pytestmark = pytest.mark.slow
SERIES_LIMIT = 20


def send(method: str, url: str, body: bytes, content_type: str) -> tuple[int, str]:
    """A raw request (bytes as given, so a lone surrogate's escape survives)."""
    request = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def now_result(run_id: str, **fields: Any) -> dict[str, Any]:
    """A valid result document dated now, with some fields replaced as they go on the wire."""
    started = time.time() - 3
    return {**to_dict(result(run_id, started_at=started, finished_at=started + 2.5)), **fields}


def raw(document: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({**document, **fields}).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_conditions(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    for _ in range(depth):
        inner = {"x": inner}
    return inner


FORGED_SERIES = 'x"} 1\nparcours_agent_up{agent="ghost",location="x"} 1\n#'
HOSTILE: dict[str, tuple[str, str, bytes, int, str]] = {
    # (path, content type, body, status, what the answer says)
    "lone surrogate in a journey name": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h1"), journey="bad\ud800name"),
        400,
        "not valid Unicode",
    ),
    "quote in a budget measure": (
        "/api/v1/results",
        "application/json",
        raw(
            now_result("h2"),
            budgets=[{"measure": 'page_load"', "level": "warn", "limit": 3, "value": 4}],
        ),
        400,
        "expected a measure name",
    ),
    "series forged through a budget level": (
        "/api/v1/results",
        "application/json",
        raw(
            now_result("h3"),
            budgets=[{"measure": "page_load", "level": FORGED_SERIES, "limit": 3, "value": 4}],
        ),
        400,
        "expected warn or fail",
    ),
    "control character in a location": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h4"), location="paris\n"),
        400,
        "control characters",
    ),
    "schema_version true": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h5"), schema_version=True),
        400,
        "$.schema_version: expected 1 or 2",
    ),
    "schema_version 1.0": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h6"), schema_version=1.0),
        400,
        "$.schema_version: expected 1 or 2",
    ),
    "a passed result dated ten years ahead": (
        "/api/v1/results",
        "application/json",
        raw(
            now_result("h7"),
            started_at=time.time() + 10 * 365 * 86400,
            finished_at=time.time() + 10 * 365 * 86400 + 2,
        ),
        422,
        "in the future",
    ),
    "JSON nested 100,000 deep": (
        "/api/v1/results",
        "application/json",
        nested(100_000),
        400,
        "nested too deeply",
    ),
    "conditions nested 600 deep": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h8"), conditions=deep_conditions(600)),
        400,
        "nested deeper than",
    ),
    "NaN as a number": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h9")).replace(b'"started_at": ', b'"started_at": NaN, "x": '),
        400,
        "NaN is not a JSON number",
    ),
    "a URL of 10,000 characters": (
        "/api/v1/results",
        "application/json",
        raw(now_result("h10"), run_url="http://x/" + "a" * 10_000),
        400,
        "longer than 4096",
    ),
    "too many new series from one agent": (
        "/api/v1/results",
        "application/json",
        json.dumps(
            [now_result(f"many{i}", journey=f"journey-{i}") for i in range(SERIES_LIMIT + 5)]
        ).encode(),
        429,
        f"limit of {SERIES_LIMIT}",
    ),
    "a phase name forging a series through an API check's exchange": (
        "/api/v1/results",
        "application/json",
        raw(
            now_result("h11"),
            exchanges=[{"step": "call", "url": "http://x/", "phases": {FORGED_SERIES: 1.0}}],
        ),
        400,
        "unknown phase",
    ),
    "certificate days left as text": (
        "/api/v1/results",
        "application/json",
        raw(
            now_result("h12"),
            exchanges=[{"step": "call", "url": "https://x/", "tls": {"days_left": "many"}}],
        ),
        400,
        "days_left: expected a finite number",
    ),
    "heartbeat with a lag bucket named abc": (
        "/api/v1/heartbeats",
        "application/json",
        json.dumps({**heartbeat(sent_at=time.time()), "lag_buckets": {"abc": 1}}).encode(),
        400,
        "bucket bounds must be numbers",
    ),
    "heartbeat from ten years ahead": (
        "/api/v1/heartbeats",
        "application/json",
        json.dumps(heartbeat(sent_at=time.time() + 10 * 365 * 86400)).encode(),
        422,
        "in the future",
    ),
    "artifact name with a trailing newline": (
        "/api/v1/runs/good0/artifacts/x.png%0A",
        "image/png",
        b"\x89PNG\r\n\x1a\n",
        400,
        "artifact name must be",
    ),
    "run id with a trailing newline": (
        "/api/v1/runs/abc%0A/artifacts/x.png",
        "image/png",
        b"\x89PNG\r\n\x1a\n",
        400,
        "run id must be",
    ),
    "artifact for a run that does not exist": (
        "/api/v1/runs/nosuchrun/artifacts/x.png",
        "image/png",
        b"\x89PNG\r\n\x1a\n",
        404,
        "send its result first",
    ),
    "artifact the run never declared": (
        "/api/v1/runs/good0/artifacts/junk.png",
        "image/png",
        b"\x89PNG\r\n\x1a\n" + b"0" * 100,
        400,
        "declared no artifact named junk.png",
    ),
    "artifact larger than declared": (
        "/api/v1/runs/good0/artifacts/step-01.png",
        "image/png",
        b"\x89PNG\r\n\x1a\n" + b"0" * 5000,
        400,
        "was declared as",
    ),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A real collector with a small series limit, and Prometheus scraping it every second."""
    tmp = tmp_path_factory.mktemp("hostile")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = collector_command(port, tmp / "data", "--max-series-per-agent", str(SERIES_LIMIT))
    with (
        serving("collector", args, tmp / "collector.log", f"{url}/-/ready"),
        prometheus(tmp, [f"127.0.0.1:{port}"]) as prom,
    ):
        declared = replace(
            result("good0", started_at=time.time() - 3, finished_at=time.time() - 1),
            artifacts=(Artifact("step-01.png", "screenshot", "image/png", 108),),
        )
        assert (
            send(
                "POST",
                f"{url}/api/v1/results",
                json.dumps(to_dict(declared)).encode(),
                "application/json",
            )[0]
            == 200
        )
        yield url, prom, tmp / "data"


async def prometheus_target(prom: str) -> dict[str, Any] | None:
    """The one scrape target, once Prometheus has discovered it."""
    _, body = await aget(f"{prom}/api/v1/targets")
    targets = json.loads(body)["data"]["activeTargets"]
    return dict(targets[0]) if targets else None


def unix_time(stamp: str) -> float:
    """Prometheus' RFC 3339 time (nanoseconds, Z or an offset) as Unix time."""
    return datetime.fromisoformat(re.sub(r"\.\d+", "", stamp).replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
async def test_a_hostile_request_is_refused_and_the_next_good_result_is_seen_everywhere(
    stack: tuple[str, str, Path], case: str
) -> None:
    collector, prom, data_dir = stack
    path, content_type, body, status, message = HOSTILE[case]
    before = sorted(str(p) for p in (data_dir / "artifacts").rglob("*"))
    sent_at = time.time()

    answered, text = send(
        "PUT" if "/artifacts/" in path else "POST", collector + path, body, content_type
    )

    assert (answered, message in text) == (status, True), text
    assert sorted(str(p) for p in (data_dir / "artifacts").rglob("*")) == before
    run_id = uuid.uuid4().hex
    good = now_result(run_id, journey="good")
    assert (
        send("POST", f"{collector}/api/v1/results", json.dumps(good).encode(), "application/json")[
            0
        ]
        == 200
    )

    async def seen_everywhere() -> bool:
        _, metrics = await aget(f"{collector}/metrics")
        _, overview = await aget(f"{collector}/status")
        _, runs = await aget(f"{collector}/api/v1/runs?journey=good&limit=1")
        return (
            'parcours_journey_success{journey="good",location="paris",device="mobile"} 1.0'
            in metrics
            and "good" in overview
            and json.loads(runs)["runs"][0]["run_id"] == run_id
        )

    await wait_until(seen_everywhere, 20, "the next good result in metrics, status and history")

    async def scraped_up_since() -> dict[str, Any] | None:
        target = await prometheus_target(prom)
        if target is None or unix_time(target["lastScrape"]) < sent_at + 1:
            return None
        return target

    target = await wait_until(scraped_up_since, 20, "a Prometheus scrape after the request")
    assert (target["health"], target["lastError"]) == ("up", "")
    assert (await aget(f"{collector}/-/ready"))[0] == 200


async def test_quoted_and_escaped_names_are_exported_escaped_and_prometheus_stays_up(
    stack: tuple[str, str, Path],
) -> None:
    collector, prom, _ = stack
    name = 'chec"k\\out 50%s %% off'  # a % must not be read as a format directive
    tricky = now_result(
        "tricky1",
        journey=name,
        status="degraded",
        budgets=[asdict(BudgetCheck("page_load", "warn", 3.0, 3.5, 'st"ep'))],
    )
    assert (
        send(
            "POST", f"{collector}/api/v1/results", json.dumps(tricky).encode(), "application/json"
        )[0]
        == 200
    )

    async def in_prometheus() -> list[Any] | None:
        query = urllib.parse.urlencode({"query": 'parcours_budget_exceeded{step="st\\"ep"}'})
        _, body = await aget(f"{prom}/api/v1/query?{query}")
        found = json.loads(body)["data"]["result"]
        return found or None

    (series,) = await wait_until(in_prometheus, 20, "the escaped series in Prometheus")
    assert series["metric"]["journey"] == name
    target = await prometheus_target(prom)
    assert target is not None and target["health"] == "up"


async def test_refusals_are_counted_by_what_and_why(stack: tuple[str, str, Path]) -> None:
    collector, _, _ = stack
    future = raw(
        now_result("skewed"), started_at=time.time() + 3600, finished_at=time.time() + 3602
    )
    send("POST", f"{collector}/api/v1/results", future, "application/json")

    _, metrics = await aget(f"{collector}/metrics")

    line = 'parcours_collector_refused_total{reason="clock_skew",what="result"}'
    assert any(row.startswith(line) and float(row.split()[-1]) >= 1 for row in metrics.splitlines())
