"""Start delay with neighbour-mean slots against the previous slot table, interleaved.

Fifty one-step journeys (the demo shop's home page, desktop) every 30 s on a real agent
with two browser slots: about 45 % of its capacity. Delay = actual start minus planned
start, once a browser slot was free, p50 and p99. The baseline is the previous
arithmetic (a table of 1.56-1.95 equal slots per job, each job in the slot its hash point
falls in or the next free one), put back for its turns by replacing the scheduler's
spreading function; runs alternate new, baseline, baseline, new (ABBA).

The arithmetic part (no agent) adds journeys one at a time to fleets of 20 to 1,000 and
counts what moves: how many other jobs, by how much against the even spacing, and how
close three consecutive starts come (what makes a run wait with two browser slots).

    .venv/bin/python -m bench.slot_spread [--seconds 120] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import statistics
import textwrap
from collections.abc import Iterable
from typing import Any

from bench.agent_load import start_delay
from bench.common import write
from probes.agent import scheduler
from probes.demo_shop.server import start_demo_shop
from probes.logs import configure_logging
from probes.slots import Spreading, slot_offset, spread_by_interval, spread_offsets


def table_offsets(names: Iterable[str], interval: float) -> dict[str, float]:
    """The baseline, as it was: 1.25**k slots, at least 1.56 per job, linear probing."""
    ordered = sorted((slot_offset(name, interval), name) for name in set(names))
    if len(ordered) < 2:
        return {name: point for point, name in ordered}
    size = math.ceil(1.25 ** math.ceil(math.log(1.25**2 * len(ordered), 1.25)))
    width = interval / size
    taken: set[int] = set()
    offsets: dict[str, float] = {}
    for point, name in ordered:
        slot = min(int(point / width), size - 1)
        while slot in taken:
            slot = (slot + 1) % size
        taken.add(slot)
        offsets[name] = slot * width
    return offsets


def moves(spreading: Spreading, fleet: int, additions: int = 50) -> dict[str, float]:
    """Add one journey at a time to a fleet: what moved, and how the starts bunch."""
    interval, even = 60.0, 60.0 / fleet
    names = [f"journey-{i}@mobile" for i in range(fleet)]
    before = spreading(names, interval)
    points = sorted(before.values())
    triples = [(points[(i + 2) % fleet] - points[i]) % interval for i in range(fleet)]
    counts, shifts = [], []
    for added in range(additions):
        after = spreading([*names, f"added-{added}@desktop"], interval)
        gone = [abs(after[n] - before[n]) for n in names]
        moved = [min(shift, interval - shift) for shift in gone]
        counts.append(sum(1 for shift in moved if shift > 0))
        shifts.append(max(moved) / even)
    return {
        "fleet": fleet,
        "moved_per_addition_mean": statistics.fmean(counts),
        "moved_per_addition_max": max(counts),
        "largest_move_in_even_spacings": round(max(shifts), 2),
        "closest_three_starts_in_even_spacings": round(min(triples) / (2 * even), 2),
        "three_starts_within_1_5_spacings": sum(1 for t in triples if t < 1.5 * even) / fleet,
    }


async def main(seconds: float, rounds: int) -> None:
    arithmetic = {
        label: [moves(spreading, fleet) for fleet in (20, 50, 200, 1000)]
        for label, spreading in (("neighbour_means", spread_offsets), ("table", table_offsets))
    }
    for label, rows in arithmetic.items():
        for row in rows:
            print(label, row, flush=True)
    shop = await start_demo_shop()
    figures: dict[str, list[dict[str, Any]]] = {"neighbour_means": [], "table": []}
    try:
        table = functools.partial(spread_by_interval, spread=table_offsets)
        variants = [("neighbour_means", spread_by_interval), ("table", table)]
        for round_ in range(rounds):
            # ABBA: neither variant always runs second, after the other's Chromium.
            for label, spreading in variants if round_ % 2 == 0 else variants[::-1]:
                scheduler.spread_by_interval = spreading  # type: ignore[attr-defined,assignment]
                found = await start_delay(shop.url, seconds, 50, interval=30)
                shown = ("at_start", "run_seconds", "load_average_1m_after")
                print(label, *(found[key] for key in shown), flush=True)
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
            "moves": arithmetic,
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
