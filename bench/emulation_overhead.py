"""What device emulation and throttling add to a run's own overhead, not to the page time.

A run's own overhead is its wall time minus the time its steps took: context
creation, DevTools set-up (network and CPU emulation included), the final
settle, and closing. Measured for the demo journey on an unthrottled desktop
(the baseline) and under emulation and throttling, interleaved run by run in
one Chromium; beside it, the CPU seconds each run costs the whole process tree (this
process with the demo shop, Playwright's driver, Chromium), which is what bounds how
many runs a machine takes.

    .venv/bin/python -m bench.emulation_overhead [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from bench.common import tree_cpu_seconds, write
from probes.browser import BrowserManager
from probes.config import load_config_text
from probes.demo_shop.server import demo_journey_text, start_demo_shop
from probes.logs import configure_logging
from probes.result import RunResult
from probes.runners.journey import run
from probes.runners.outcome import RunRequest

# label -> (device, journey-level network, journey-level cpu slowdown)
PROFILES = {
    "desktop, unthrottled (baseline)": ("desktop", "none", 1.0),
    "mobile emulation, unthrottled": ("mobile", "none", 1.0),
    "mobile, 4g + 4x CPU (the default)": ("mobile", None, None),
    "desktop, 3g-slow": ("desktop", "3g-slow", 1.0),
}


def own_overhead(result: RunResult) -> float:
    return result.duration_seconds - sum(step.duration_seconds for step in result.steps)


async def main(runs: int) -> None:
    shop = await start_demo_shop()
    text = demo_journey_text()
    specs = {}
    for label, (_, network, cpu) in PROFILES.items():
        extra = "" if network is None else f"\n    network: {network}\n    cpu_slowdown: {cpu}"
        variant = text.replace(
            "    base_url: ${PARCOURS_DEMO_URL}", "    base_url: ${PARCOURS_DEMO_URL}" + extra, 1
        )  # the browser journey only: the API checks have no network profile
        specs[label] = load_config_text(variant, variables=shop.variables, env={})
    overhead: dict[str, list[float]] = {label: [] for label in PROFILES}
    page_time: dict[str, list[float]] = {label: [] for label in PROFILES}
    cpu_used: dict[str, list[float]] = {label: [] for label in PROFILES}
    async with BrowserManager() as browsers:
        for index in range(runs + 2):
            for label, (device, _, _) in PROFILES.items():
                config = specs[label]
                before = await asyncio.to_thread(tree_cpu_seconds)
                result = await run(config.journeys[0], browsers, RunRequest(device), config.masker)
                used = await asyncio.to_thread(tree_cpu_seconds) - before
                assert result.success, result.error_message
                if index >= 2:  # two warm-up rounds
                    cpu_used[label].append(used)
                    overhead[label].append(own_overhead(result))
                    page_time[label].append(result.duration_seconds - own_overhead(result))
    await shop.stop()
    baseline = statistics.median(overhead["desktop, unthrottled (baseline)"])
    write(
        "emulation_overhead",
        {
            "what": "median seconds per demo-journey run; own overhead = wall time minus step time",
            "runs_per_profile": runs,
            "profiles": {
                label: {
                    "own_overhead_median": round(statistics.median(overhead[label]), 4),
                    "added_vs_baseline": round(statistics.median(overhead[label]) - baseline, 4),
                    "step_time_median": round(statistics.median(page_time[label]), 3),
                    "cpu_seconds_per_run_median": round(statistics.median(cpu_used[label]), 3),
                }
                for label in PROFILES
            },
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    configure_logging("error")
    asyncio.run(main(parser.parse_args().runs))
