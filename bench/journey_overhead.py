"""Wall time per run of the demo journey: Parcours against a minimal Playwright script.

Both drive the same clicks and wait for the same things in the same Chromium,
against the same demo shop, interleaved run by run so that machine noise hits
both alike. The ratio of medians is Parcours' overhead for everything it
measures (Web Vitals, bytes, requests, errors). Target: at most 1.10. Beside it, the
CPU seconds each run costs the whole process tree (this process, Playwright's driver,
Chromium), and their medians by process: target at most 1.05 of the hand-written
script's. The hand-written script
does what the demo journey does: the cookie banner it accepts when there (waiting up to 2 s
for it, as the journey's optional step does), express delivery and the clean-up.

    .venv/bin/python -m bench.journey_overhead [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import statistics
import time

from playwright.async_api import Browser, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from bench.common import summary, tree_cpu_by_role, write
from probes.browser import BrowserManager
from probes.config import load_config_text
from probes.demo_shop.server import demo_journey_text, start_demo_shop
from probes.devices import BUILTIN_PROFILES
from probes.logs import configure_logging
from probes.runners.journey import run
from probes.runners.outcome import RunRequest


async def hand_written(browser: Browser, url: str) -> None:
    """What a person would write by hand to check the same journey, and nothing more."""
    context = await browser.new_context(**BUILTIN_PROFILES["desktop"])
    try:
        page = await context.new_page()
        await page.goto(url + "/")
        await expect(page).to_have_title(re.compile("^Home"))
        await expect(page.get_by_role("img", name="Autumn collection").first).to_be_visible()
        with contextlib.suppress(PlaywrightTimeoutError):  # a banner that comes on some visits
            await page.get_by_role("button", name="Accept all").first.click(timeout=2000)
        await page.get_by_role("link", name="Trail Runner shoes").first.click()
        await page.wait_for_load_state("load")
        await expect(page.get_by_test_id("price").first).to_be_visible()
        await page.get_by_role("button", name="Add to cart").first.click()
        await page.wait_for_load_state("load")
        await expect(page.get_by_text("1 item in your cart").first).to_be_visible()
        await page.get_by_role("radio", name="Express").first.check()
        await page.get_by_role("button", name="Place order").first.click()
        await page.wait_for_load_state("load")
        await expect(page.get_by_text("Thank you for your order").first).to_be_visible()
        await expect(page.get_by_text("Express delivery").first).to_be_visible()
        await expect(page).to_have_url(re.compile("/order/"))
        order = re.search(r"Order (\w+)", await page.get_by_test_id("order-id").inner_text())
        assert order is not None
        await page.goto(f"{url}/order/{order.group(1)}")  # the clean-up Parcours runs too
        await page.get_by_role("button", name="Cancel order").first.click()
        await page.wait_for_load_state("load")
        await expect(page.get_by_text("is cancelled").first).to_be_visible()
    finally:
        await context.close()


CHROMIUM_MAIN = ("chromium browser", "chromium renderer")


def _chromium_together(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """CPU spent between two readings by role, Chromium's browser and renderers as one: a
    renderer's time moves into the browser's when the browser reaps it, which happens at
    whatever moment, so apart they would swing from run to run."""
    spent: dict[str, float] = {}
    for role in after.keys() | before.keys():
        key = "chromium browser and renderers" if role in CHROMIUM_MAIN else role
        spent[key] = spent.get(key, 0.0) + after.get(role, 0.0) - before.get(role, 0.0)
    return spent


async def main(runs: int, warmup: int) -> None:
    shop = await start_demo_shop()
    config = load_config_text(demo_journey_text(), variables=shop.variables, env={})
    journey = config.journeys[0]
    async with BrowserManager() as browsers:
        browser = await browsers.get()
        baseline: list[float] = []
        parcours: list[float] = []
        cpu: dict[str, list[float]] = {"hand_written": [], "parcours": []}
        by_role: dict[str, dict[str, list[float]]] = {"hand_written": {}, "parcours": {}}
        for index in range(warmup + runs):
            start, start_cpu = time.perf_counter(), await asyncio.to_thread(tree_cpu_by_role)
            await hand_written(browser, shop.url)
            middle, middle_cpu = time.perf_counter(), await asyncio.to_thread(tree_cpu_by_role)
            result = await run(journey, browsers, RunRequest("desktop"), config.masker)
            end, end_cpu = time.perf_counter(), await asyncio.to_thread(tree_cpu_by_role)
            assert result.success, result.error_message
            if index >= warmup:
                baseline.append(middle - start)
                parcours.append(end - middle)
                for name, before, after in (
                    ("hand_written", start_cpu, middle_cpu),
                    ("parcours", middle_cpu, end_cpu),
                ):
                    spent = _chromium_together(after, before)
                    cpu[name].append(sum(spent.values()))
                    for role, seconds in spent.items():
                        by_role[name].setdefault(role, []).append(seconds)
    await shop.stop()
    base, ours = summary(baseline), summary(parcours)
    cpu_base, cpu_ours = summary(cpu["hand_written"]), summary(cpu["parcours"])
    role_medians = {
        name: {role: round(statistics.median(v), 3) for role, v in sorted(roles.items())}
        for name, roles in by_role.items()
    }
    write(
        "journey_overhead",
        {
            "what": "wall seconds per run of the demo journey (4 steps, 3 clicks), desktop",
            "hand_written_playwright": base,
            "parcours": ours,
            "ratio_of_medians": round(ours["median"] / base["median"], 3),
            "ratio_of_means": round(ours["mean"] / base["mean"], 3),
            "target_ratio": 1.10,
            "cpu_what": "CPU seconds per run of this process and everything below it (driver, "
            "Chromium with the renderers it reaped); the demo shop serves from this process "
            "for both alike",
            "cpu_hand_written": cpu_base,
            "cpu_parcours": cpu_ours,
            "cpu_ratio_of_medians": round(cpu_ours["median"] / cpu_base["median"], 3),
            "cpu_ratio_of_means": round(cpu_ours["mean"] / cpu_base["mean"], 3),
            "cpu_target_ratio": 1.05,
            "cpu_median_by_role": role_medians,
            "cpu_roles_what": "agent is this Python process (the demo shop serves from it for "
            "both alike)",
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    options = parser.parse_args()
    configure_logging("warning")
    asyncio.run(main(options.runs, options.warmup))
