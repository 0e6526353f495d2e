"""/metrics keeps each series' lines between scrapes and renders changed series in lulls,
so a scrape joins lines already written; what it serves must still be every result
accepted before it, and nothing a forgotten series left behind."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from collector.metrics import MetricsRenderer
from collector.state import CollectorState
from probes.result import Status, heartbeat_from_dict
from tests.documents import failed, heartbeat, result


def success_of(body: bytes, journey: str) -> float | None:
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "parcours_journey_success" and sample.labels["journey"] == journey:
                return sample.value
    return None


async def test_results_arriving_between_scrapes_are_rendered_before_the_next_scrape() -> None:
    state, renderer = CollectorState(), MetricsRenderer()
    fresh = asyncio.create_task(renderer.keep_fresh(state))
    try:
        keys = [state.apply(result(f"r{i}", journey=f"journey-{i}")) for i in range(5)]
        renderer.changed(keys)
        assert len(renderer.stale(state)) == 5
        for _ in range(1000):  # up to 10 s on a busy machine; a lull of 5 ms is enough
            if not renderer.stale(state):
                break
            await asyncio.sleep(0.01)

        assert renderer.stale(state) == []
        assert await renderer.refresh(state) == 0  # the scrape formats nothing
        body = await renderer.render(state)
    finally:
        fresh.cancel()
    assert [success_of(body, f"journey-{i}") for i in range(5)] == [1.0] * 5


async def test_a_scrape_serves_a_result_the_renderer_was_never_told_about() -> None:
    state, renderer = CollectorState(), MetricsRenderer()
    state.apply(result("r1"))
    assert success_of(await renderer.render(state), "checkout") == 1.0

    state.apply(failed("r2", started_at=2000.0))  # no changed(): the scrape still sees it

    assert success_of(await renderer.render(state), "checkout") == 0.0


async def test_a_journey_forgotten_then_run_again_shows_its_new_result_not_its_old_lines() -> None:
    state, renderer = CollectorState(), MetricsRenderer()
    state.apply(failed("r1", started_at=1000.0))
    assert success_of(await renderer.render(state), "checkout") == 0.0
    beat = heartbeat_from_dict(heartbeat(jobs=("login@mobile",)))
    state.apply_heartbeat(beat, now=1_000_000.0)  # long quiet and no longer run: forgotten
    assert not state.series

    key = state.apply(result("r2", started_at=2_000_000.0, finished_at=2_000_002.5))

    assert state.series[key].version == 1  # the same key and version as the forgotten one
    assert state.series[key].latest.status is Status.PASSED
    assert success_of(await renderer.render(state), "checkout") == 1.0
