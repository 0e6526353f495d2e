"""How the values in results change what a burst /metrics costs to render.

`bench.collector_throughput` posts results whose measures are short decimals (0.12 s,
0.3 s). Real runs send longer ones: Chromium's page timings come in 0.1 ms steps carried
through a 32-bit float (125.2 ms arrives as 0.12520000000298023 s) and step durations come
from the monotonic clock at full precision (0.558093125000596 s); formatting such a float
costs two to three times a short one. Agents now send page timings at the 0.1 ms browsers
measure and durations to the microsecond. This renders, in one process, a burst of one
result for each of the 3,000 series of that benchmark, with its short values, with values
shaped as measured, and with those as agents send them: what the scrape's own rendering
costs for each (min of 5 bursts, the three kinds in turns, 2 rounds).

    .venv/bin/python -m bench.metrics_values
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import time
from collections.abc import Callable
from typing import Any

from bench.collector_throughput import every_series
from bench.common import write
from collector.metrics import MetricsRenderer
from collector.state import CollectorState
from probes.result import from_dict

TIMINGS = ("ttfb_seconds", "fcp_seconds", "lcp_seconds", "dom_content_loaded_seconds")
BURSTS = 5
KINDS = (
    "short decimals (the throughput benchmark's)",
    "as measured",
    "as agents send them (timings to 0.1 ms, durations to 1 us)",
)


def as_chromium_reports(seconds: float, rng: random.Random) -> float:
    """A page timing near ``seconds`` as Chromium's come: 0.1 ms steps, a 32-bit float."""
    ms = round(seconds * 1000 + rng.uniform(-50, 50), 1)
    return float(struct.unpack("f", struct.pack("f", ms))[0]) / 1000


def as_measured(rng: random.Random, as_sent: bool) -> Callable[[dict[str, Any]], None]:
    """Give a document values shaped as measured; ``as_sent``: as agents send them since
    they drop the noise (page timings to 0.1 ms, durations to the microsecond)."""

    def change(document: dict[str, Any]) -> None:
        for step in document["steps"]:
            duration = step["duration_seconds"] + rng.random() / 10
            step["duration_seconds"] = round(duration, 6) if as_sent else duration
        for page in document["browser"]["pages"]:
            for name in (*TIMINGS, "load_seconds"):
                timing = as_chromium_reports(page[name], rng)
                page[name] = round(timing, 4) if as_sent else timing
            page["cls"] = rng.random() / 20  # a sum of shift scores: sent as it is

    return change


def documents(kind: str, first_run: int) -> list[dict[str, Any]]:
    """One result for each series, with values of ``kind`` (one of ``KINDS``)."""
    found = every_series(first_run)
    if kind != KINDS[0]:
        change = as_measured(random.Random(first_run), as_sent=kind == KINDS[2])
        for document in found:
            change(document)
    return found


async def burst_render(kind: str) -> dict[str, float]:
    """Seconds to render the burst (the best of ``BURSTS``) and the exposition's size."""
    state, renderer = CollectorState(), MetricsRenderer()
    for document in documents(kind, 0):
        state.apply(from_dict(document))
    await renderer.render(state)
    times, size = [], 0
    for burst in range(1, BURSTS + 1):
        results = [from_dict(document) for document in documents(kind, burst * 10_000)]
        for result in results:
            state.apply(result)
        started = time.perf_counter()
        size = len(await renderer.render(state))
        times.append(time.perf_counter() - started)
    return {"render_seconds": round(min(times), 4), "megabytes": round(size / 1e6, 2)}


async def main() -> None:
    rounds: list[dict[str, dict[str, float]]] = []
    for round_ in range(2):
        order = KINDS if round_ % 2 == 0 else KINDS[::-1]
        found = {kind: await burst_render(kind) for kind in order}
        for kind in KINDS:
            print(round_, kind, found[kind], flush=True)
        rounds.append(found)
    write(
        "metrics_values",
        {
            "what": "one process renders a burst of 3,000 series (1,000 journeys x 3 devices,"
            " 5 steps), best of 5 bursts, by the kind of values in the results",
            "rounds": rounds,
            "load_average": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
