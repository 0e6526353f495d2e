"""`parcours run` as a real process, scraped by a real Prometheus."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from probes.demo_shop.server import RunningShop
from tests.services import aget, chromium_with_marker, parcours_run, prometheus, promql, wait_until
from tests.test_dashboards import ROOT, fill, load

pytestmark = pytest.mark.slow
INTERVAL = 3.0


def checkout_config(tmp_path: Path, shop: RunningShop) -> Path:
    path = tmp_path / "checkout.yaml"
    path.write_text(
        f"""
journeys:
  - name: checkout
    base_url: {shop.url}
    interval: {INTERVAL:.0f}s
    devices: [desktop]
    retries: 0
    step_timeout: 5s
    steps:
      - name: open home page
        goto: /
      - name: open product
        click: {{role: link, name: Trail Runner shoes}}
      - name: add to cart
        click: {{role: button, name: Add to cart}}
      - name: place order
        click: {{role: button, name: Place order}}
        expect:
          - text: Thank you for your order
"""
    )
    return path


async def one_value(prometheus_url: str, query: str) -> float | None:
    result = await promql(prometheus_url, query)
    return float(result[0]["value"][1]) if len(result) == 1 else None


async def test_prometheus_scrapes_journey_health_and_sees_a_fault_within_two_intervals(
    shop: RunningShop, faults: Callable[..., None], tmp_path: Path
) -> None:
    with parcours_run(checkout_config(tmp_path, shop), tmp_path / "data") as (_, collector):
        target = collector.removeprefix("http://")
        with prometheus(tmp_path, [target]) as prom:
            started = time.monotonic()
            await wait_until(
                lambda: one_value(prom, 'parcours_journey_success{journey="checkout"}'),
                INTERVAL + 60,  # returns when met; Chromium's launch is slow on a busy machine
                "a first successful run in Prometheus",
            )
            seen_at = time.time()
            first_seen = time.monotonic() - started

            duration = await one_value(
                prom, 'parcours_journey_last_duration_seconds{journey="checkout",device="desktop"}'
            )
            ran_at = await one_value(
                prom, 'parcours_journey_last_run_timestamp_seconds{journey="checkout"}'
            )
            lcp = await one_value(
                prom, 'parcours_page_lcp_seconds{journey="checkout",step="open home page"}'
            )
            up = await one_value(prom, 'up{job="parcours"}')
            assert duration is not None and 0 < duration < 10
            assert lcp is not None and 0 < lcp < 2.5
            assert up == 1.0
            assert await one_value(prom, 'probe_success{journey="checkout"}') == 1.0

            faults(checkout_500=True)
            broken_at = time.monotonic()
            failure = (
                'parcours_journey_failures_total{journey="checkout",step="place order",'
                'error_type="http_error"}'
            )

            async def failing() -> bool:
                return (
                    await one_value(prom, 'parcours_journey_success{journey="checkout"}') == 0
                    and (await one_value(prom, failure) or 0) >= 1
                )

            await wait_until(failing, 2 * INTERVAL + 10, "the fault to show in Prometheus")
            seen_after = time.monotonic() - broken_at

            async def failed_twice() -> bool:
                return (await one_value(prom, failure) or 0) >= 2

            await wait_until(failed_twice, 4 * INTERVAL + 20, "a second failed run")
            # The dashboard's table counts every failed run, the series' first one included:
            # the counter was exported at 0 before it, so increase() sees it.
            at = time.time() - 2  # both queries read the same samples
            panel = fill(failures_panel_expr().replace("$__range", "1h"))
            table = {
                (row["metric"]["step"], row["metric"]["error_type"]): float(row["value"][1])
                for row in await promql(prom, panel, at)
            }
            counted = await promql(prom, failure, at)

    # From the end of the run (as the run itself recorded it) to Prometheus showing it: one
    # scrape (1 s) and our polling. The time before the first run (Chromium's launch, slow
    # on a busy machine) is the agent's, not the pipeline's; it is only bounded above.
    assert ran_at is not None and duration is not None
    lag = seen_at - (ran_at + duration)
    assert lag <= 5, (lag, first_seen)
    assert seen_after <= 2 * INTERVAL + 3, seen_after
    assert table == {("place order", "http_error"): float(counted[0]["value"][1])}, counted


def failures_panel_expr() -> str:
    (panel,) = [
        panel
        for panel in load(ROOT / "grafana" / "dashboards" / "parcours-journey.json")["panels"]
        if panel["title"].startswith("Failures by step and error type")
    ]
    expr: str = panel["targets"][0]["expr"]
    return expr


async def test_sighup_reloads_and_sigterm_leaves_no_chromium_behind(
    shop: RunningShop, tmp_path: Path
) -> None:
    marker = f"PARCOURS_TEST_{uuid.uuid4().hex}"
    config = checkout_config(tmp_path, shop)
    with parcours_run(config, tmp_path / "data", env={marker: "1"}) as (process, collector):

        async def ran() -> bool:
            status, body = await aget(f"{collector}/metrics")
            return status == 200 and "parcours_journey_success{" in body

        await wait_until(ran, INTERVAL + 20, "a first run")
        assert chromium_with_marker(marker), "the check cannot see Chromium: it would prove nothing"

        # Same size, same mtime: only SIGHUP, not the file watcher, can notice this edit.
        before = config.stat()
        text = config.read_text()
        config.write_text(text.replace("steps:", "stepz:", 1))
        os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))
        process.send_signal(signal.SIGHUP)

        async def reload_failed() -> bool:
            _, body = await aget(f"{collector}/metrics")
            return "parcours_config_last_reload_successful{agent=" in body and any(
                line.startswith("parcours_config_last_reload_successful") and line.endswith(" 0.0")
                for line in body.splitlines()
            )

        await wait_until(reload_failed, 30, "SIGHUP to reject the invalid config")
        assert await ran(), "the last good config must keep running"

        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)

    assert code == 0
    assert chromium_with_marker(marker) == []


async def test_run_with_no_config_probes_the_demo_shop_on_mobile_and_desktop(
    tmp_path: Path,
) -> None:
    with parcours_run(None, tmp_path / "data") as (_, collector):

        async def both_devices() -> bool:
            _, body = await aget(f"{collector}/metrics")
            return all(
                f'parcours_journey_success{{journey="demo-checkout",location="local",'
                f'device="{device}"}} 1.0' in body
                for device in ("desktop", "mobile")
            )

        # The demo journey runs every 15 s, each device in its own slot of the interval; on a
        # busy machine the first mobile run (4x CPU, 4G) takes a while. Returns when met.
        await wait_until(both_devices, 15 + 75, "the demo journey on both devices")
