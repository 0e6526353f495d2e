"""Start delay with spread slots against plain hash slots, interleaved in one process.

Fifty one-step journeys (the demo shop's home page, desktop) every 30 s on a real agent
with two browser slots: about 45 % of its capacity. Delay = actual start minus planned
start, once a browser slot was free, p50 and p99. The baseline is the previous
arithmetic (every job at its hash point), put back for its turns by replacing the
scheduler's spreading function; runs alternate spread, baseline, spread, baseline.

    .venv/bin/python -m bench.slot_spread [--seconds 120] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from collections.abc import Iterable
from typing import Any

from bench.agent_load import start_delay
from bench.common import write
from probes.agent import scheduler
from probes.demo_shop.server import start_demo_shop
from probes.logs import configure_logging
from probes.slots import slot_offset, spread_by_interval


def hash_points(jobs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The baseline: every job at its hash point."""
    return {name: slot_offset(name, interval) for name, interval in jobs}


async def main(seconds: float, rounds: int) -> None:
    shop = await start_demo_shop()
    figures: dict[str, list[dict[str, Any]]] = {"spread": [], "hash_points": []}
    try:
        for _ in range(rounds):
            for label, spreading in (("spread", spread_by_interval), ("hash_points", hash_points)):
                scheduler.spread_by_interval = spreading  # type: ignore[attr-defined]
                found = await start_delay(shop.url, seconds, 50, interval=30)
                print(label, found["at_start"], flush=True)
                figures[label].append(found)
    finally:
        scheduler.spread_by_interval = spread_by_interval  # type: ignore[attr-defined]
        await shop.stop()
    write(
        "slot_spread",
        {
            "journeys": 50,
            "interval_seconds": 30,
            **figures,
            "target": {"p99_start_delay_seconds": 0.25},
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or ""))
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--rounds", type=int, default=2)
    configure_logging("error")
    options = parser.parse_args()
    asyncio.run(main(options.seconds, options.rounds))
