"""The split deployment's transport: an agent's results and artifacts reach a collector by HTTP."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from aiohttp import web

from collector.app import ARTIFACTS, STATE, CollectorSettings, create_app
from probes.agent.shipper import HttpShipper
from probes.agent.stats import AgentStats
from probes.result import Artifact, BrowserSection, RunResult, Status, StepResult
from tests.services import free_port, wait_until

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def result(run_id: str) -> RunResult:
    return RunResult(
        run_id=run_id,
        journey="checkout",
        kind="browser",
        device="mobile",
        location="paris",
        agent="edge-1",
        started_at=1000.0,
        finished_at=1001.0,
        status=Status.FAILED,
        browser=BrowserSection(clicks=1, click_budget=3),
        steps=(StepResult("buy", "click", Status.FAILED, 1000.0, 1.0),),
        artifacts=(Artifact("step-01.png", "screenshot", "image/png", len(PNG), "buy"),),
    )


async def start_collector(tmp_path: Path, port: int) -> web.AppRunner:
    runner = web.AppRunner(create_app(CollectorSettings(tmp_path)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _truthy(value: object) -> object:
    return value


async def test_results_and_artifacts_reach_the_collector_even_if_it_starts_late(
    tmp_path: Path,
) -> None:
    port = free_port()
    stats = AgentStats()
    shipper = HttpShipper(f"http://127.0.0.1:{port}", stats, max_backoff=0.5)
    await shipper.submit(result("late-1"), {"step-01.png": PNG})  # nobody listens yet
    runner = await start_collector(tmp_path, port)
    try:
        app = runner.app
        await wait_until(
            lambda: _truthy(app[ARTIFACTS].path("late-1", "step-01.png")),
            15,
            "the result and its screenshot at the collector",
        )

        series = app[STATE].series[("checkout", "paris", "mobile")]
        assert series.latest.run_id == "late-1"
        assert app[ARTIFACTS].path("late-1", "step-01.png").read_bytes() == PNG  # type: ignore[union-attr]
        assert (stats.results_dropped, stats.artifacts_dropped) == (0, 0)
    finally:
        await shipper.close()
        await runner.cleanup()


async def test_a_result_the_collector_refuses_is_counted_not_retried_forever(
    tmp_path: Path,
) -> None:
    port = free_port()
    runner = await start_collector(tmp_path, port)
    stats = AgentStats()
    shipper = HttpShipper(f"http://127.0.0.1:{port}", stats)
    try:
        bad = replace(result("bad"), steps=(StepResult("", "click", Status.FAILED, 1.0, 1.0),))
        await shipper.submit(bad, {})
        await shipper.submit(result("good"), {})

        await wait_until(lambda: _truthy(stats.results_dropped == 1), 10, "the refusal")
        await wait_until(
            lambda: _truthy(("checkout", "paris", "mobile") in runner.app[STATE].series),
            10,
            "the good result after the bad one",
        )
    finally:
        await shipper.close()
        await runner.cleanup()
