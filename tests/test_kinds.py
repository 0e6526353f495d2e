"""Every registered kind of check has all its pieces, or this fails (as the SM agent's does)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import CollectorSettings, create_app
from probes.config.document import json_schema
from probes.kinds import KINDS
from probes.result import STEP_ERROR_TYPES, to_dict
from probes.runners.dispatch import runner_for
from tests.documents import sample_of


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(CollectorSettings(tmp_path)))) as test_client:
        yield test_client


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_has_a_runner_with_the_protocol(kind: str) -> None:
    runner = runner_for(kind)

    assert inspect.iscoroutinefunction(runner.run_check)
    assert list(inspect.signature(runner.run_check).parameters) == ["spec", "context"]
    assert callable(runner.planned_steps)


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_has_its_settings_in_the_json_schema(kind: str) -> None:
    schema = json_schema()
    model = KINDS[kind].settings

    assert model.__name__ in schema["$defs"]  # type: ignore[operator]
    assert "kind" in model.model_fields


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_kind_says_what_its_steps_fail_with_so_failure_counters_start_at_zero(
    kind: str,
) -> None:
    assert "timeout" in STEP_ERROR_TYPES[kind]
    assert "agent_error" in STEP_ERROR_TYPES[kind]


@pytest.mark.parametrize("kind", list(KINDS))
async def test_each_kind_is_exported_in_metrics_and_shown_on_its_run_page(
    client: TestClient[Any, Any], kind: str
) -> None:
    sample = sample_of(kind, f"{kind}-run")
    assert (await client.post("/api/v1/results", json=to_dict(sample))).status == 200

    metrics = await (await client.get("/metrics")).text()
    page = await client.get(f"/status/runs/{sample.run_id}")

    for family in KINDS[kind].metric_families:
        assert f"\n{family}{{" in metrics, family
    assert f'parcours_journey_info{{journey="{sample.journey}"' in metrics
    assert f'kind="{kind}"' in metrics
    assert page.status == 200
    text = await page.text()
    assert ("<h2>Pages</h2>" in text) or ("<h2>Requests</h2>" in text)
