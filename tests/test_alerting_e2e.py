"""On-call, end to end: a broken shop pages with journey, step and error; repaired, it resolves.

Everything is real: `parcours run`, Prometheus loading the project's rule file,
Alertmanager loading the project's config (only the webhook URL and the
timings are changed for the test), and a webhook receiver in this test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from probes.demo_shop.server import RunningShop
from tests.services import (
    Webhook,
    alertmanager,
    parcours_run,
    prometheus,
    wait_until,
    webhook_server,
)
from tests.test_run_with_prometheus import checkout_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "configs" / "prometheus" / "parcours-rules.yml"
AM_CONFIG = ROOT / "configs" / "alertmanager" / "alertmanager.yml"


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    async with webhook_server() as served:
        yield served


def alertmanager_config_for(webhook_url: str) -> dict[str, Any]:
    """The shipped Alertmanager config, pointed at the test and with short timings."""
    config: dict[str, Any] = yaml.safe_load(AM_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace("http://127.0.0.1:9099", webhook_url)
    routes = [config["route"], *config["route"]["routes"]]
    for route in routes:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


async def test_a_broken_checkout_pages_with_journey_step_and_error_then_resolves(
    shop: RunningShop,
    faults: Callable[..., None],
    webhook: tuple[Webhook, str],
    tmp_path: Path,
) -> None:
    receiver, url = webhook
    with (
        parcours_run(checkout_config(tmp_path, shop), tmp_path / "data") as (_, collector),
        alertmanager(tmp_path, alertmanager_config_for(url)) as am,
        prometheus(
            tmp_path, [collector.removeprefix("http://")], rule_files=[RULES], alertmanager=am
        ) as _prom,
    ):

        async def healthy() -> bool:
            from tests.services import promql

            return bool(await promql(_prom, 'parcours_journey_success{journey="checkout"} == 1'))

        await wait_until(healthy, 30, "a healthy checkout in Prometheus")
        faults(checkout_500=True)
        broken_at = time.monotonic()

        async def paged() -> list[Any]:
            return receiver.alerts("ParcoursJourneyFailing", "firing")

        ((paged_at, path, alert), *_) = await wait_until(paged, 40, "the page")
        faults()  # repair: every switch back off
        repaired_at = time.monotonic()

        async def resolved() -> list[Any]:
            return receiver.alerts("ParcoursJourneyFailing", "resolved")

        ((resolved_at, _, done), *_) = await wait_until(resolved, 40, "the resolved notice")

    assert path == "/parcours/oncall"  # critical goes to the on-call receiver
    labels = alert["labels"]
    assert (labels["journey"], labels["step"], labels["error_type"]) == (
        "checkout",
        "place order",
        "http_error",
    )
    assert labels["severity"] == "critical"
    assert 'fails at step "place order" (http_error)' in alert["annotations"]["summary"]
    assert "var-journey=checkout" in alert["annotations"]["dashboard"]
    assert done["labels"]["journey"] == "checkout"
    print(
        f"break -> page {paged_at - broken_at:.1f}s, repair -> resolved "
        f"{resolved_at - repaired_at:.1f}s"
    )
    # Two failed runs 3 s apart, a 1 s scrape and evaluation, Alertmanager's 1 s group_wait.
    assert paged_at - broken_at < 20
