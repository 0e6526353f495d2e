"""Evidence for on-call: screenshots, HTML, traces, their storage, and the run page."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import HISTORY, CollectorSettings, create_app
from collector.artifacts import (
    ArtifactRefused,
    ArtifactStore,
    ExpectedArtifacts,
    RetentionLimits,
)
from probes.browser import BrowserManager
from probes.result import Artifact, ErrorType, Status, to_dict
from probes.runners.evidence import secret_fields
from probes.runners.journey import run_outcome
from probes.runners.outcome import RunOutcome, RunRequest
from tests.conftest import config_from
from tests.documents import result as stored_result

SECRET = "VOUCHER-evidence-9876"
CHECKOUT = """
journeys:
  - name: checkout
    base_url: ${{SHOP}}
    retries: 0
    evidence: {{trace: {trace}}}
    steps:
      - name: product
        goto: /product/trail-runner
      - name: add to cart
        click: {{role: button, name: Add to cart}}
      - name: voucher
        fill: {{label: Voucher code}}
        value: ${{secret:SHOP_VOUCHER}}
      - name: place order
        click: {{role: button, name: Place order}}
        expect:
          - text: Thank you for your order
"""


async def checkout(shop: Any, browsers: BrowserManager, trace: str, attempt: int = 1) -> RunOutcome:
    config = config_from(CHECKOUT.format(trace=trace), shop, env={"SHOP_VOUCHER": SECRET})
    request = RunRequest("desktop", attempt=attempt)
    return await run_outcome(config.journeys[0], browsers, request, config.masker)


@pytest.mark.slow
async def test_a_broken_checkout_keeps_a_screenshot_and_the_html_of_the_failing_page(
    shop: Any, browsers: BrowserManager, faults: Callable[..., None]
) -> None:
    faults(checkout_500=True)

    outcome = await checkout(shop, browsers, trace="never")

    result = outcome.result
    assert (result.failed_step, result.error_type) == ("place order", ErrorType.HTTP_ERROR)
    names = {a.name: a for a in result.artifacts}
    assert set(names) == {"step-04.png", "step-04.html"}
    assert names["step-04.png"].step == "place order"
    assert outcome.blobs["step-04.png"].startswith(b"\x89PNG\r\n\x1a\n")
    assert names["step-04.png"].size == len(outcome.blobs["step-04.png"]) > 1000
    assert b"payment service unavailable" in outcome.blobs["step-04.html"]


@pytest.mark.slow
async def test_a_passing_run_keeps_no_evidence(shop: Any, browsers: BrowserManager) -> None:
    outcome = await checkout(shop, browsers, trace="on_failure")

    assert outcome.result.status is Status.PASSED, outcome.result.error_message
    assert outcome.result.artifacts == ()
    assert outcome.blobs == {}


@pytest.mark.slow
async def test_the_trace_is_a_playwright_trace_and_no_artifact_holds_the_secret(
    shop: Any, browsers: BrowserManager, faults: Callable[..., None]
) -> None:
    faults(checkout_500=True)

    # on_failure records in the retry that follows a failure: attempt 2
    outcome = await checkout(shop, browsers, trace="on_failure", attempt=2)

    trace = outcome.blobs["trace.zip"]
    with zipfile.ZipFile(io.BytesIO(trace)) as archive:
        entries = archive.namelist()
        assert archive.testzip() is None
        contents = [archive.read(name) for name in entries]
    assert "trace.trace" in entries
    assert "trace.network" in entries
    assert any(name.startswith("resources/") for name in entries)
    assert any(b"***" in content for content in contents), "the typed voucher was masked"
    for name, data in outcome.blobs.items():
        assert SECRET.encode() not in data, name
    for content in contents:
        assert SECRET.encode() not in content


def test_retention_deletes_the_oldest_runs_past_the_limits_and_nothing_else(
    tmp_path: Path,
) -> None:
    import asyncio

    root = tmp_path / "artifacts"
    neighbour = tmp_path / "keep-me.txt"
    neighbour.write_text("not an artifact")
    page = b"<html>" + b"x" * 994  # 1,000 bytes a run
    limits = RetentionLimits(max_age_seconds=3600, max_total_bytes=2500)
    now = time.time()

    declared = ExpectedArtifacts("agent-1", {"step-01.html": len(page)})

    async def scenario() -> None:
        unlimited = ArtifactStore(root, RetentionLimits(max_age_seconds=1e9, max_total_bytes=10**9))
        for run_id, age in (("old", 7200), ("a", 300), ("b", 200), ("c", 100)):
            await unlimited.put(run_id, "step-01.html", "text/html", page, declared)
            os.utime(root / run_id, (now - age, now - age))
        await ArtifactStore(root, limits).put("d", "step-01.html", "text/html", page, declared)

    asyncio.run(scenario())

    assert sorted(p.name for p in root.iterdir()) == ["c", "d"]
    assert neighbour.read_text() == "not an artifact"


@pytest.mark.parametrize(
    ("run_id", "name", "content_type", "status"),
    [
        ("..", "x.png", "image/png", 400),
        ("run", "../x.png", "image/png", 400),
        ("run", "shot.exe", "application/octet-stream", 400),
        ("run", "shot.png", "text/html", 415),
        ("a" * 200, "shot.png", "image/png", 400),
        ("run", "Shot.PNG", "image/png", 400),
    ],
)
def test_a_hostile_artifact_is_refused_before_any_path_is_built(
    tmp_path: Path, run_id: str, name: str, content_type: str, status: int
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")

    with pytest.raises(ArtifactRefused) as caught:
        store.check(run_id, name, content_type, 10, ExpectedArtifacts("a", {name: 10}))

    assert caught.value.status == status


def tree(root: Path) -> list[str]:
    """Every path below root, but the history database (its WAL files come and go)."""
    return sorted(str(p) for p in root.rglob("*") if "runs.sqlite3" not in str(p))


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    settings = CollectorSettings(
        tmp_path / "data", retention=RetentionLimits(max_artifact_bytes=64 * 1024)
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        # the client resolves %2e%2e before sending: no route matches, and nothing is written
        ("/api/v1/runs/%2e%2e/artifacts/x.png", b"\x89PNG\r\n\x1a\n", "image/png", 404),
        ("/api/v1/runs/run/artifacts/%2e%2e%2fx.png", b"\x89PNG\r\n\x1a\n", "image/png", 400),
        ("/api/v1/runs/run/artifacts/..%2f..%2fevil.png", b"\x89PNG\r\n\x1a\n", "image/png", 400),
        ("/api/v1/runs/run/artifacts/shot.png", b"<script>", "image/png", 415),
        ("/api/v1/runs/run/artifacts/shot.png", b"\x89PNG\r\n\x1a\n", "text/html", 415),
        (
            "/api/v1/runs/run/artifacts/shot.png",
            b"\x89PNG\r\n\x1a\n" + b"0" * 70_000,
            "image/png",
            413,
        ),
    ],
    ids=["dot-dot-run", "dot-dot-name", "nested-dot-dot", "not-a-png", "wrong-type", "huge"],
)
async def test_a_malicious_upload_gets_a_4xx_and_writes_nothing(
    collector: TestClient[Any, Any],
    tmp_path: Path,
    path: str,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    declared = replace(
        stored_result("run"),
        artifacts=(Artifact("shot.png", "screenshot", "image/png", len(body)),),
    )
    assert (await collector.post("/api/v1/results", json=to_dict(declared))).status == 200
    before = tree(tmp_path)

    response = await collector.put(path, data=body, headers={"Content-Type": content_type})

    assert response.status == status, await response.text()
    assert tree(tmp_path) == before


@pytest.mark.slow
async def test_the_run_page_shows_the_error_and_the_screenshot_of_the_broken_page(
    shop: Any,
    browsers: BrowserManager,
    faults: Callable[..., None],
    collector: TestClient[Any, Any],
) -> None:
    faults(checkout_500=True)
    outcome = await checkout(shop, browsers, trace="never")
    run_id = outcome.result.run_id
    assert (await collector.post("/api/v1/results", json=to_dict(outcome.result))).status == 200
    for name, data in outcome.blobs.items():
        kind = "image/png" if name.endswith(".png") else "text/html"
        put = await collector.put(
            f"/api/v1/runs/{run_id}/artifacts/{name}", data=data, headers={"Content-Type": kind}
        )
        assert put.status == 201, await put.text()

    page = await (await collector.get(f"/status/runs/{run_id}")).text()
    image = await collector.get(f"/runs/{run_id}/artifacts/step-04.png")
    html = await collector.get(f"/runs/{run_id}/artifacts/step-04.html")
    await collector.app[HISTORY].flush()  # the history is written in batches, behind ingest
    latest = await collector.get("/status/journeys/checkout/latest-failure", allow_redirects=False)

    assert "HTTP 500 for POST" in page
    assert f'src="/runs/{run_id}/artifacts/step-04.png"' in page
    assert image.status == 200 and image.content_type == "image/png"
    assert await image.read() == outcome.blobs["step-04.png"]
    assert "sandbox" in html.headers["Content-Security-Policy"]
    assert latest.headers["Location"] == f"/status/runs/{run_id}"


def test_fields_typed_with_a_secret_are_the_ones_masked_in_screenshots() -> None:
    env = {"SHOP_VOUCHER": SECRET, "SHOP": "http://shop.test"}
    config = config_from(CHECKOUT.format(trace="never"), env=env)

    (field,) = secret_fields(config.journeys[0].steps, config.masker)

    assert field.label == "Voucher code"


@pytest.mark.slow
async def test_each_result_carries_the_url_of_its_run_page(
    shop: Any, browsers: BrowserManager
) -> None:
    config = config_from(CHECKOUT.format(trace="never"), shop, env={"SHOP_VOUCHER": SECRET})
    request = RunRequest("desktop", run_id="r-42", run_page_base="http://collector:9480/")

    outcome = await run_outcome(config.journeys[0], browsers, request, config.masker)

    assert outcome.result.run_url == "http://collector:9480/status/runs/r-42"
