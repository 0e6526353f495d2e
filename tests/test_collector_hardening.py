"""What the collector keeps, it keeps: a bad row, a forged heartbeat or a flood of
uploads from one client cannot stop its writes, silence a series or evict others' evidence."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from collector.app import HISTORY, CollectorSettings, create_app
from collector.artifacts import ArtifactStore, ExpectedArtifacts, RetentionLimits
from collector.history import HistoryRow, RunHistory
from probes.result import to_dict
from tests.documents import failed, heartbeat, result


def row(
    run_id: str, journey: str = "checkout", agent: str = "agent-1", at: float = 1.0
) -> HistoryRow:
    return HistoryRow(run_id, journey, "paris", "mobile", agent, at, "passed", None, None, {})


async def test_a_row_that_cannot_be_written_is_counted_and_later_results_are_still_kept(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    history = RunHistory(tmp_path / "runs.sqlite3", registry=registry)
    await history.open()
    try:
        # Only a bug could bring such a row this far (the contract refuses it); the writer
        # must survive it all the same.
        history.add(row("bad", journey="bad\ud800name"))
        history.add(row("good-1"))
        await history.flush()
        history.add(row("good-2"))
        await history.flush()

        assert registry.get_sample_value("parcours_collector_history_write_failures_total") == 1
        assert await history.run("good-1") is not None
        assert await history.run("good-2") is not None
        assert await history.run("bad") is None
        assert history.problem is None  # a later good write clears the alarm
    finally:
        await history.close()


async def test_results_under_another_agents_name_cannot_push_a_genuine_run_out(
    tmp_path: Path,
) -> None:
    history = RunHistory(tmp_path / "runs.sqlite3", keep_per_series=5)
    await history.open()
    try:
        history.add(row("genuine", agent="agent-1", at=100.0))
        for index in range(50):
            history.add(row(f"forged{index}", agent="intruder", at=1000.0 + index))
        await history.prune()

        assert await history.run("genuine") is not None
        assert len(await history.runs("checkout", None, None, 100, None)) == 6
    finally:
        await history.close()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(CollectorSettings(tmp_path)))) as test_client:
        yield test_client


async def test_a_heartbeat_cannot_remove_a_journey_that_is_failing_now(
    client: TestClient[Any, Any],
) -> None:
    now = time.time()
    breaking = failed("f-now", now - 5)
    assert (await client.post("/api/v1/results", json=to_dict(breaking))).status == 200

    forged = heartbeat(jobs=(), sent_at=now, started_at=now - 60)
    assert (await client.post("/api/v1/heartbeats", json=forged)).status == 200

    metrics = await (await client.get("/metrics")).text()
    assert 'parcours_journey_success{journey="checkout",location="paris",device="mobile"} 0.0' in (
        metrics
    )


async def test_ready_says_so_when_the_history_writer_has_stopped(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.get("/-/ready")).status == 200
    history = client.server.app[HISTORY]
    await history.close()  # the writer ends, as it would if it died

    response = await client.get("/-/ready")

    assert response.status == 503
    assert "history writer has stopped" in await response.text()


def png(size: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"0" * (size - 8)


async def put_screenshot(store: ArtifactStore, run_id: str, agent: str, data: bytes) -> None:
    """Store a run's one declared screenshot, as the collector does for an accepted run."""
    expected = ExpectedArtifacts(agent, {"step-01.png": len(data)})
    await store.put(run_id, "step-01.png", "image/png", data, expected)


async def test_one_agent_flooding_uploads_evicts_its_own_evidence_not_others(
    tmp_path: Path,
) -> None:
    limits = RetentionLimits(max_total_bytes=50_000, max_agent_bytes=1_000_000)
    store = ArtifactStore(tmp_path / "artifacts", limits)
    shot = png(2_000)
    await put_screenshot(store, "genuine", "agent-1", shot)
    junk = png(10_000)
    for index in range(84):
        await put_screenshot(store, f"junk{index}", "flooder", junk)

    assert store.path("genuine", "step-01.png") is not None
    assert store.path("junk83", "step-01.png") is not None  # the newest junk is kept
    assert store.path("junk0", "step-01.png") is None  # its own oldest paid


async def test_an_agent_over_its_quota_loses_its_own_oldest_runs(tmp_path: Path) -> None:
    store = ArtifactStore(
        tmp_path / "artifacts", RetentionLimits(max_agent_bytes=25_000, max_total_bytes=10**9)
    )
    shot = png(10_000)
    for index in range(4):
        await put_screenshot(store, f"run{index}", "agent-1", shot)

    kept = [i for i in range(4) if store.path(f"run{i}", "step-01.png") is not None]
    assert kept == [2, 3]


async def test_a_run_declaring_more_than_its_quota_is_refused(client: TestClient[Any, Any]) -> None:
    from dataclasses import replace

    from probes.result import Artifact

    big = replace(
        result("big", started_at=time.time() - 2, finished_at=time.time() - 1),
        artifacts=tuple(
            Artifact(f"shot-{i}.png", "screenshot", "image/png", 20 * 1024**2) for i in range(4)
        ),
    )
    assert (await client.post("/api/v1/results", json=to_dict(big))).status == 200

    response = await client.put(
        "/api/v1/runs/big/artifacts/shot-0.png",
        data=png(20 * 1024**2),
        headers={"Content-Type": "image/png"},
    )

    assert response.status == 413
    assert "per-run quota" in await response.text()
