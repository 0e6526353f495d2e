"""On-call as a team lives it: two locations, two devices, the shipped rules and routes.

Real processes throughout: `parcours collector`, one `parcours agent` per location,
Prometheus scraping and evaluating every 5 s with the shipped rule file, Alertmanager
with the shipped config (only the receivers' URLs changed, its timings as shipped).
One test, in the order an incident happens: a blip, a sustained break, the collector
stopped for 3 minutes while the shop stays broken, the repair.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from probes.demo_shop.server import RunningShop
from tests.services import (
    Webhook,
    aget,
    alertmanager,
    collector_command,
    free_port,
    prometheus,
    promql,
    started_process,
    stop_process,
    wait_until,
    webhook_server,
)
from tests.test_alerting_e2e import AM_CONFIG, RULES, alertmanager_config_for

pytestmark = pytest.mark.slow
INTERVAL = 10.0  # seconds between scheduled runs, per device
OUTAGE = 180.0  # the collector's outage, while the shop stays broken
LOCATIONS = ("paris", "lyon")


def shipped_config_with_receivers(url: str) -> dict[str, Any]:
    """The shipped Alertmanager config, its timings as shipped: only the URLs change."""
    config = alertmanager_config_for(url)
    shipped = yaml.safe_load(AM_CONFIG.read_text())
    config["route"] = shipped["route"]
    return config


def agent_command(config: Path, collector: str, location: str, *extra: str) -> list[str]:
    """`parcours agent` for one location, named after it."""
    return [
        *(sys.executable, "-m", "probes.cli", "agent", str(config)),
        *("--collector", collector, "--location", location, "--agent-name", f"agent-{location}"),
        *extra,
    ]


def checkout_journey(path: Path, shop: RunningShop, defaults: str) -> Path:
    """The demo checkout in three steps on mobile and desktop, with the given defaults."""
    path.write_text(
        f"""
defaults:
  {textwrap.indent(textwrap.dedent(defaults).strip(), "  ").lstrip()}
  devices: [desktop, mobile]
journeys:
  - name: checkout
    base_url: {shop.url}
    steps:
      - name: product
        goto: /product/trail-runner
      - name: add to cart
        click: {{role: button, name: Add to cart}}
      - name: place order
        click: {{role: button, name: Place order}}
        expect:
          - text: Thank you for your order
"""
    )
    return path


def pages(receiver: Webhook) -> dict[str, list[dict[str, Any]]]:
    """Firing notifications of ParcoursJourneyFailing to on-call, by Alertmanager group."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for _, path, body in receiver.notifications:
        failing = body["groupLabels"].get("alertname") == "ParcoursJourneyFailing"
        if path == "/parcours/oncall" and body["status"] == "firing" and failing:
            groups.setdefault(body["groupKey"], []).append(body)
    return groups


def resolved_failing(receiver: Webhook) -> list[float]:
    return [at for at, _, alert in receiver.alerts("ParcoursJourneyFailing", "resolved")]


async def test_two_locations_page_once_hold_through_a_collector_outage_and_resolve_on_repair(
    shop: RunningShop, faults: Callable[..., None], tmp_path: Path
) -> None:
    config = checkout_journey(
        tmp_path / "oncall.yaml",
        shop,
        f"""
        interval: {INTERVAL:.0f}s
        timeout: 9s
        step_timeout: 6s
        retries: 1
        """,
    )
    port = free_port()
    collector = f"http://127.0.0.1:{port}"
    log = tmp_path / "processes.log"
    collector_args = collector_command(port, tmp_path / "collector", "--public-url", collector)
    async with webhook_server() as (webhook, url):
        with (
            alertmanager(tmp_path, shipped_config_with_receivers(url)) as am,
            prometheus(
                tmp_path, [f"127.0.0.1:{port}"], rule_files=[RULES], alertmanager=am, interval="5s"
            ) as prom,
            contextlib.ExitStack() as stack,
        ):
            collector_process = stack.enter_context(started_process(collector_args, log))
            for location in LOCATIONS:
                agent = agent_command(config, collector, location, "--heartbeat-interval", "2")
                stack.enter_context(started_process(agent, log))

            async def healthy_everywhere() -> bool:
                found = await promql(prom, 'parcours_journey_success{journey="checkout"} == 1')
                return len(found) == 2 * len(LOCATIONS)

            await wait_until(healthy_everywhere, 120, "both locations and devices healthy")

            # 1. A blip: one order fails and the retry passes. Nobody is paged.
            faults(blip_checkouts=1)

            async def blip_seen() -> bool:
                status, body = await aget(f"{collector}/api/v1/runs?journey=checkout&limit=50")
                runs = json.loads(body)["runs"] if status == 200 else []
                return any(r["status"] == "failed" for r in runs)

            await wait_until(blip_seen, 3 * INTERVAL, "the blip's failed attempt")
            # One more run, a scrape, an evaluation and Alertmanager's 10 s group_wait.
            await _quiet_for(INTERVAL + 35)
            assert pages(webhook) == {}, "a blip paged"

            # 2. A sustained break: one page, within two intervals + 60 s.
            faults(checkout_500=True)
            broken_at = time.monotonic()

            async def paged() -> dict[str, list[dict[str, Any]]]:
                return pages(webhook)

            await wait_until(paged, 2 * INTERVAL + 60, "the page for the broken checkout")
            paged_after = time.monotonic() - broken_at
            await _quiet_for(40)  # both devices of both locations join the same incident
            (incident,) = pages(webhook).values()
            alerts = {
                (a["labels"]["location"], a["labels"]["device"])
                for body in incident
                for a in body["alerts"]
                if a["status"] == "firing"
            }
            assert {location for location, _ in alerts} == set(LOCATIONS)
            notes = [a["annotations"] for body in incident for a in body["alerts"]]
            # Every page names the step, the error type and the error itself (on a very busy
            # machine a run may time out before the checkout's 500: that is what it names).
            assert all(re.search(r' at step "[^"]+" \(\w+\)$', n["summary"]) for n in notes)
            assert all(n["error"] and not n["error"].startswith("unknown") for n in notes)
            assert all("latest-failure?location=" in n["run"] for n in notes), notes

            # 3. The collector stops for 3 minutes while the shop stays broken: no all-clear.
            stop_process(collector_process)
            await _quiet_for(OUTAGE)
            assert resolved_failing(webhook) == [], "a false all-clear during the outage"
            stack.enter_context(started_process(collector_args, log))

            async def collector_back() -> bool:
                return (await aget(f"{collector}/-/ready"))[0] == 200

            await wait_until(collector_back, 60, "the collector back")
            await _quiet_for(2 * INTERVAL)
            assert resolved_failing(webhook) == [], "an all-clear once the collector returned"

            # 4. The repair: one resolved notice within one interval + 60 s.
            faults()
            repaired_at = time.monotonic()

            async def resolved() -> list[float]:
                return resolved_failing(webhook)

            await wait_until(resolved, INTERVAL + 60, "the resolved notice")
            resolved_after = time.monotonic() - repaired_at
            assert len(pages(webhook)) == 1, "the incident paged more than once"

    print(f"break -> page {paged_after:.0f}s, repair -> resolved {resolved_after:.0f}s")


async def _quiet_for(seconds: float) -> None:
    """Let the stack run (schedules, scrapes, evaluations, notifications) for a while."""
    await asyncio.sleep(seconds)
