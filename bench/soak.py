"""Soak: many runs of the demo journey in one agent, memory of every process sampled.

A monitoring agent runs for months: memory that grows with each run is an
outage on a schedule. This runs the demo journey ``--runs`` times through the
agent's own run path (shared Chromium, a fresh context per run, results handed
to a sink), ``--concurrency`` at a time, against the demo shop in a separate
process (so its memory is not counted), and samples the PSS of the agent
(this Python process), Playwright's driver and Chromium every ``--every`` runs.

Growth is the slope of a least-squares line through the samples taken after the
first ``--warmup`` runs, in MiB per 100 runs (target: under 5).

    python -m bench.soak --runs 1000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from bench.common import pss_bytes, write
from probes.browser import BrowserManager
from probes.config import load_config_text
from probes.demo_shop.server import TLS_URL_VARIABLE, URL_VARIABLE, demo_journey_text
from probes.result import AgentHeartbeat, RunResult, Status
from probes.runners.journey import run_outcome
from probes.runners.outcome import RunRequest
from tests.services import descendants, free_port, http_get

MIB = 1024 * 1024


class CountingSink:
    """Counts results by status and keeps nothing (an agent hands results on)."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        self.by_status[result.status.value] = self.by_status.get(result.status.value, 0) + 1

    async def heartbeat(self, heartbeat: AgentHeartbeat) -> None:
        """Not used here."""

    async def close(self) -> None:
        """Nothing queued."""


def pss_by_role(root: int) -> dict[str, float]:
    """PSS in MiB of the agent, Playwright's driver and Chromium below ``root``."""
    roles = {"agent": 0.0, "driver": 0.0, "chromium": 0.0}
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().lower()
        except OSError:
            continue
        role = "agent" if pid == root else "chromium" if b"chrom" in cmdline else "driver"
        roles[role] += pss_bytes(pid) / MIB
    return roles


def slope_per_100(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of (runs, MiB), scaled to MiB per 100 runs."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x in xs)
    return 100 * num / den if den else 0.0


def start_shop() -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    port, tls_port = free_port(), free_port()
    shop = subprocess.Popen(
        [
            *(sys.executable, "-m", "probes.cli", "demo-shop"),
            *("--listen", f"127.0.0.1:{port}", "--tls-listen", f"127.0.0.1:{tls_port}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while http_get(url + "/")[0] != 200:
        if time.monotonic() > deadline or shop.poll() is not None:
            raise RuntimeError("the demo shop did not start")
        time.sleep(0.1)
    return shop, {URL_VARIABLE: url, TLS_URL_VARIABLE: f"https://127.0.0.1:{tls_port}"}


async def soak(shop: dict[str, str], runs: int, concurrency: int, every: int) -> dict[str, object]:
    config = load_config_text(demo_journey_text(), variables=shop, env={})
    journey = config.journeys[0]
    sink = CountingSink()
    samples: list[tuple[int, dict[str, float]]] = []
    started = time.monotonic()
    done = 0
    async with BrowserManager() as browsers:
        await browsers.get()
        samples.append((0, pss_by_role(os.getpid())))
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(runs):
            queue.put_nowait(index)

        async def worker() -> None:
            nonlocal done
            while not queue.empty():
                queue.get_nowait()
                outcome = await run_outcome(
                    journey, browsers, RunRequest("desktop", agent="soak"), config.masker
                )
                await sink.submit(outcome.result, outcome.blobs)
                done += 1
                if done % every == 0:
                    sample = await asyncio.to_thread(pss_by_role, os.getpid())
                    samples.append((done, sample))
                    print(f"{done} runs: {sample}", file=sys.stderr, flush=True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        restarts = browsers.restarts
    return {
        "samples": samples,
        "seconds": time.monotonic() - started,
        "sink": sink,
        "restarts": restarts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--every", type=int, default=50, help="runs between memory samples")
    parser.add_argument("--warmup", type=int, default=100, help="runs before growth is measured")
    args = parser.parse_args()
    shop, variables = start_shop()
    try:
        outcome = asyncio.run(soak(variables, args.runs, args.concurrency, args.every))
    finally:
        shop.send_signal(signal.SIGINT)
        shop.wait(timeout=30)
    samples: list[tuple[int, dict[str, float]]] = outcome["samples"]  # type: ignore[assignment]
    sink: CountingSink = outcome["sink"]  # type: ignore[assignment]
    settled = [(runs, roles) for runs, roles in samples if runs >= args.warmup]
    growth = {
        role: round(slope_per_100([(runs, roles[role]) for runs, roles in settled]), 2)
        for role in ("agent", "driver", "chromium")
    }
    growth["total"] = round(
        slope_per_100([(runs, sum(roles.values())) for runs, roles in settled]), 2
    )
    write(
        "soak",
        {
            "runs": args.runs,
            "device": "desktop",
            "concurrency": args.concurrency,
            "outcomes": sink.by_status,
            "passed_share": sink.by_status.get(Status.PASSED.value, 0) / args.runs,
            "chromium_restarts": outcome["restarts"],
            "seconds": round(float(outcome["seconds"]), 1),  # type: ignore[arg-type]
            "growth_mib_per_100_runs_after_warmup": growth,
            "target_mib_per_100_runs": 5.0,
            "pss_mib": [
                {"runs": runs, **{k: round(v, 1) for k, v in roles.items()}}
                for runs, roles in samples
            ],
            "load_average_at_end": os.getloadavg(),
        },
    )


if __name__ == "__main__":
    main()
