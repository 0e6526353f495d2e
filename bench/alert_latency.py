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

from aiohttp import web

from bench.common import write
from probes.demo_shop.app import FAULTS
from probes.demo_shop.faults import Faults
from probes.demo_shop.server import start_demo_shop
from tests.services import alertmanager, free_port, parcours_run, prometheus, promql, wait_until
from tests.test_alerting_e2e import AM_CONFIG, RULES, Webhook, alertmanager_config_for
from tests.test_run_with_prometheus import INTERVAL, checkout_config


async def main(cycles: int) -> None:
    shop = await start_demo_shop()
    receiver = Webhook()
    app = web.Application()
    app.router.add_post("/parcours/{receiver}", receiver.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    pages, resolutions = [], []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with (
            parcours_run(checkout_config(tmp, shop), tmp / "data") as (_, collector),
            alertmanager(tmp, alertmanager_config_for(f"http://127.0.0.1:{port}")) as am,
            prometheus(
                tmp, [collector.removeprefix("http://")], rule_files=[RULES], alertmanager=am
            ) as prom,
        ):

            async def healthy() -> bool:
                query = 'parcours_journey_success{journey="checkout"} == 1'
                return bool(await promql(prom, query))

            for cycle in range(cycles):
                await wait_until(healthy, 60, "a healthy checkout")
                shop.app[FAULTS].current = Faults(checkout_500=True)
                broken = time.monotonic()

                async def paged(n: int = cycle) -> bool:
                    return len(receiver.alerts("ParcoursJourneyFailing", "firing")) > n

                await wait_until(paged, 60, "the page", every=0.05)
                pages.append(time.monotonic() - broken)
                shop.app[FAULTS].current = Faults()
                repaired = time.monotonic()

                async def resolved(n: int = cycle) -> bool:
                    return len(receiver.alerts("ParcoursJourneyFailing", "resolved")) > n

                await wait_until(resolved, 60, "the resolved notice", every=0.05)
                resolutions.append(time.monotonic() - repaired)
    await runner.cleanup()
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=3)
    asyncio.run(main(parser.parse_args().cycles))
