"""The agent under load: scheduler start delay, and memory per running journey.

Part 1 schedules 50 one-step journeys (the demo shop's home page, desktop) on
a real agent, every 30 s (about half its two browser slots' capacity) and
every 15 s (more than it can run: saturated), and reports start delay =
actual start minus planned start, at firing and once a browser slot was
free, p50 and p99.
Part 2 runs the full demo journey 1, 4 and 8 at once in one Chromium and
samples the proportional set size (PSS, so shared pages are not counted
twice) of this process and all its descendants (Playwright's driver,
Chromium's processes) every 50 ms.
Targets: p99 start delay under 250 ms unsaturated; under 150 MB per
concurrently running journey.

    .venv/bin/python -m bench.agent_load [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import textwrap
from collections.abc import Mapping

from bench.common import tree_pss_bytes, write
from probes.agent.agent import Agent, AgentSettings
from probes.agent.stats import AgentStats
from probes.browser import BrowserManager
from probes.config import load_config_text
from probes.demo_shop.server import RunningShop, demo_journey_text, start_demo_shop
from probes.logs import configure_logging
from probes.result import AgentHeartbeat, RunResult
from probes.runners.journey import run
from probes.runners.outcome import RunRequest


class CountingSink:
    """Counts results; the bench measures the agent, not a collector."""

    def __init__(self) -> None:
        self.results = 0
        self.failed = 0
        self.run_seconds: list[float] = []  # how long each run held its browser slot, roughly

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        self.results += 1
        self.failed += 0 if result.success else 1
        self.run_seconds.append(result.finished_at - result.started_at)

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        return None

    async def close(self) -> None:
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def start_delay(
    shop_url: str, seconds: float, journeys: int, interval: int
) -> dict[str, object]:
    steps = "".join(
        f"""
  - name: home-{i:02d}
    base_url: {shop_url}
    interval: {interval}s
    devices: [desktop]
    retries: 0
    steps:
      - name: home
        goto: /
"""
        for i in range(journeys)
    )
    config = load_config_text("journeys:" + steps, env={})
    sink = CountingSink()
    stats = AgentStats()
    agent = Agent(AgentSettings(name="bench"), lambda: config, sink, BrowserManager(), stats=stats)
    await agent.start()
    await asyncio.sleep(seconds)
    await agent.stop()
    at_fire = [fire for fire, _ in stats.recent_lags]
    at_start = [start for _, start in stats.recent_lags]
    return {
        "journeys": journeys,
        "interval_seconds": interval,
        "ran_for_seconds": seconds,
        "max_concurrency": agent.settings.max_concurrency,
        "runs": sink.results,
        "failed_runs": sink.failed,
        "skipped_runs": stats.skipped_runs,
        # Runs that take longer (a busy machine) make the next starts wait for a slot.
        "run_seconds": {
            "p50": percentile(sink.run_seconds, 0.5),
            "p99": percentile(sink.run_seconds, 0.99),
        },
        "load_average_1m_after": os.getloadavg()[0],
        "at_fire": {
            "p50": percentile(at_fire, 0.5),
            "p99": percentile(at_fire, 0.99),
            "max": max(at_fire),
        },
        "at_start": {
            "p50": percentile(at_start, 0.5),
            "p99": percentile(at_start, 0.99),
            "max": max(at_start),
            "mean": statistics.fmean(at_start),
        },
    }


async def memory(shop: RunningShop, concurrency: int) -> dict[str, float]:
    config = load_config_text(demo_journey_text(), variables=shop.variables, env={})
    journey = config.journeys[0]
    async with BrowserManager() as browsers:
        await browsers.get()
        idle = tree_pss_bytes(os.getpid())
        peak = idle
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, await asyncio.to_thread(tree_pss_bytes, os.getpid()))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        for _ in range(3):  # three rounds, so the peak is not one lucky moment
            results = await asyncio.gather(
                *(
                    run(journey, browsers, RunRequest("mobile"), config.masker)
                    for _ in range(concurrency)
                )
            )
            assert all(r.success for r in results), [r.error_message for r in results]
        done.set()
        await sampler
    mib = 1024 * 1024
    return {
        "concurrent_journeys": concurrency,
        "idle_with_chromium_mib": round(idle / mib, 1),
        "peak_mib": round(peak / mib, 1),
        "peak_per_journey_mib": round(peak / mib / concurrency, 1),
        "added_per_journey_mib": round((peak - idle) / mib / concurrency, 1),
    }


async def main(seconds: float) -> None:
    shop = await start_demo_shop()
    try:
        memory_figures = [await memory(shop, n) for n in (1, 4, 8)]
        unsaturated = await start_delay(shop.url, seconds, 50, interval=30)
        saturated = await start_delay(shop.url, seconds, 50, interval=15)
    finally:
        await shop.stop()
    write(
        "agent_load",
        {
            "start_delay_seconds": {"unsaturated": unsaturated, "saturated": saturated},
            "memory": memory_figures,
            "targets": {"p99_start_delay_seconds": 0.25, "mib_per_running_journey": 150},
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or ""))
    parser.add_argument("--seconds", type=float, default=120.0)
    configure_logging("error")
    asyncio.run(main(parser.parse_args().seconds))
