"""Time from a broken shop to the on-call page, and from the repair to the resolved notice.

The stack is the end-to-end test's: `parcours run` (journey every 3 s, no
retry), Prometheus with the project's rules (scrape and evaluation every
1 s), Alertmanager with the project's config (group_wait 1 s), a webhook
receiver here. The checkout is broken (HTTP 500) and repaired several times.
Production figures scale with the journey interval (two failed runs are
needed) and the scrape, evaluation and group_wait settings.

    .venv/bin/python -m bench.alert_latency [--cycles 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import write
from probes.demo_shop.app import FAULTS
from probes.demo_shop.faults import Faults
from probes.demo_shop.server import RunningShop, start_demo_shop
from tests.services import (
    Webhook,
    alertmanager,
    parcours_run,
    prometheus,
    promql,
    wait_until,
    webhook_server,
)
from tests.test_alerting_e2e import AM_CONFIG, RULES, alertmanager_config_for
from tests.test_run_with_prometheus import INTERVAL, checkout_config


async def main(cycles: int) -> None:
    shop = await start_demo_shop()
    pages: list[float] = []
    resolutions: list[float] = []
    try:
        async with webhook_server() as (receiver, hook_url):
            with tempfile.TemporaryDirectory() as tmp_name:
                tmp = Path(tmp_name)
                with (
                    parcours_run(checkout_config(tmp, shop), tmp / "data") as (_, collector),
                    alertmanager(tmp, alertmanager_config_for(hook_url)) as am,
                    prometheus(
                        tmp,
                        [collector.removeprefix("http://")],
                        rule_files=[RULES],
                        alertmanager=am,
                    ) as prom,
                ):
                    for cycle in range(cycles):
                        page, resolution = await break_and_repair(shop, receiver, prom, cycle)
                        pages.append(page)
                        resolutions.append(resolution)
    finally:
        await shop.stop()
    write(
        "alert_latency",
        {
            "what": "seconds, demo shop checkout broken (HTTP 500) then repaired",
            "settings": {
                "journey_interval_seconds": INTERVAL,
                "retries": 0,
                "scrape_and_evaluation_seconds": 1,
                "group_wait_seconds": 1,
                "alertmanager_config": str(AM_CONFIG.relative_to(AM_CONFIG.parents[2])),
            },
            "break_to_page": {
                "each": [round(p, 2) for p in pages],
                "median": round(statistics.median(pages), 2),
            },
            "repair_to_resolved": {
                "each": [round(r, 2) for r in resolutions],
                "median": round(statistics.median(resolutions), 2),
            },
        },
    )


async def break_and_repair(
    shop: RunningShop, receiver: Webhook, prom: str, cycle: int
) -> tuple[float, float]:
    """Seconds from breaking the checkout to the page, and from repairing it to the resolve."""

    async def healthy() -> bool:
        return bool(await promql(prom, 'parcours_journey_success{journey="checkout"} == 1'))

    async def notified(status: str) -> bool:
        return len(receiver.alerts("ParcoursJourneyFailing", status)) > cycle

    await wait_until(healthy, 60, "a healthy checkout")
    shop.app[FAULTS].current = Faults(checkout_500=True)
    broken = time.monotonic()
    await wait_until(lambda: notified("firing"), 60, "the page", every=0.05)
    paged = time.monotonic() - broken
    shop.app[FAULTS].current = Faults()
    repaired = time.monotonic()
    await wait_until(lambda: notified("resolved"), 60, "the resolved notice", every=0.05)
    return paged, time.monotonic() - repaired


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=3)
    asyncio.run(main(parser.parse_args().cycles))
