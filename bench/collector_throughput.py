"""Collector ingest throughput and /metrics render time.

The collector runs as `parcours collector` in its own process pinned to one
core; this script, pinned to the other, posts realistic result documents
(5 steps, 5 pages each) over HTTP, one per request and in batches of 100,
then times GET /metrics with 1,000 journeys x 5 steps x 3 devices loaded: right
after every series got a result in a burst (the worst case), and after every series
got one at 1,000 results/s (spread, as agents send them; still 20 times denser than
3,000 series run every minute).
Targets: at least 2,000 results/s; /metrics under 250 ms.

    .venv/bin/python -m bench.collector_throughput [--results 20000] [--baseline GIT_REF]

With --baseline, the collector of that commit (a git worktree) runs the same phases,
in the order this, baseline, baseline, this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import summary, write
from probes.result import BrowserSection, PageResult, RunResult, Status, StepResult, to_dict
from tests.services import collector_command, free_port, http_get

STEPS = ("home", "search", "product", "cart", "checkout")
DEVICES = ("desktop", "mobile", "tablet")
HERE = Path(__file__).resolve().parent.parent  # this checkout
SPREAD_PER_SECOND = 1000.0  # 20 times the rate of 3,000 series run every minute


def document(journey: int, device: str, run: int) -> dict[str, Any]:
    """A result shaped like a real 5-step journey's."""
    start = 1_700_000_000.0 + run
    steps = tuple(
        StepResult(name, "click", Status.PASSED, start + i, 0.3 + i / 10)
        for i, name in enumerate(STEPS)
    )
    pages = tuple(
        PageResult(
            name,
            f"https://shop.example/{name}?q=1",
            ttfb_seconds=0.12,
            fcp_seconds=0.5,
            lcp_seconds=1.1,
            cls=0.02,
            dom_content_loaded_seconds=0.6,
            load_seconds=0.9,
            transfer_bytes=250_000,
            requests=40,
            ratings={
                "ttfb_seconds": "good",
                "fcp_seconds": "good",
                "lcp_seconds": "good",
                "cls": "good",
            },
        )
        for name in STEPS
    )
    result = RunResult(
        run_id=f"{journey}-{device}-{run}",
        journey=f"journey-{journey:04d}",
        kind="browser",
        device=device,
        location="paris",
        agent="bench",
        started_at=start,
        finished_at=start + 4.2,
        status=Status.PASSED,
        steps=steps,
        browser=BrowserSection(clicks=3, click_budget=3, pages=pages),
    )
    return to_dict(replace(result))


def every_series(first_run: int) -> list[dict[str, Any]]:
    """One result for each of the 1,000 journeys x 3 devices, numbered from ``first_run``."""
    pairs = ((j, d) for j in range(1000) for d in DEVICES)
    return [document(j, d, first_run + i) for i, (j, d) in enumerate(pairs)]


def time_get(url: str) -> float:
    """Seconds for one complete GET, body included."""
    start = time.perf_counter()
    status, _ = http_get(url, timeout=30)
    assert status == 200
    return time.perf_counter() - start


def time_gzip_get(url: str) -> tuple[float, int]:
    """Seconds for one complete GET as Prometheus asks (gzip accepted), and the bytes sent."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        assert response.headers["Content-Encoding"] == "gzip"
    return time.perf_counter() - start, len(body)


async def post_all(url: str, docs: list[dict[str, Any]], batch: int, parallel: int) -> float:
    """Seconds to post every document, ``batch`` per request, ``parallel`` requests in flight."""
    chunks = [docs[i : i + batch] for i in range(0, len(docs), batch)]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)

    async def worker(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            chunk = queue.get_nowait()
            body = chunk[0] if batch == 1 else chunk
            async with http.post(f"{url}/api/v1/results", json=body) as response:
                assert response.status == 200, await response.text()

    connector = aiohttp.TCPConnector(limit=parallel)
    async with aiohttp.ClientSession(connector=connector) as http:
        start = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(parallel)))
        return time.perf_counter() - start


async def post_paced(url: str, docs: list[dict[str, Any]], per_second: float) -> None:
    """Post ``docs`` in batches of 10 at ``per_second`` results a second, as agents whose
    starts are spread over their interval send them (3,000 series every 60 s is 50/s)."""
    start = time.perf_counter()
    async with aiohttp.ClientSession() as http:
        for i in range(0, len(docs), 10):
            delay = start + i / per_second - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with http.post(f"{url}/api/v1/results", json=docs[i : i + 10]) as response:
                assert response.status == 200, await response.text()


async def small_scale(url: str, count: int) -> tuple[list[float], int]:
    """/metrics at about 15,000 samples (55 journeys x 3 devices), every series changed."""
    docs = [
        document(j, d, 90 * count + i)
        for i, (j, d) in enumerate((j, d) for j in range(55) for d in DEVICES)
    ]
    seconds = []
    for round_ in range(9):
        for doc in docs:
            doc["run_id"] = f"{doc['run_id']}-s{round_}"
            doc["started_at"] += 1
            doc["finished_at"] += 1
        await post_all(url, docs, batch=100, parallel=4)
        seconds.append(time_get(f"{url}/metrics"))
    _, body = http_get(f"{url}/metrics", timeout=30)
    return seconds[1:], sum(1 for line in body.splitlines() if line and line[0] != "#")


def start_collector(data_dir: Path, port: int, code: Path) -> subprocess.Popen[bytes]:
    """`parcours collector` from the checkout at ``code`` (this one, or a baseline's)."""
    process = subprocess.Popen(
        # 1,000 journeys x 3 devices from one agent name: over the default series limit.
        collector_command(port, data_dir, "--max-series-per-agent", "10000"),
        cwd=code,  # python -m finds the checkout's own packages first
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.sched_setaffinity(process.pid, {0})
    deadline = time.monotonic() + 20
    while http_get(f"http://127.0.0.1:{port}/-/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("collector did not start")
        time.sleep(0.05)
    return process


async def measure(count: int, code: Path) -> dict[str, Any]:
    """Every phase against one fresh collector running the code at ``code``."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        collector = start_collector(Path(tmp), port, code)
        url = f"http://127.0.0.1:{port}"
        try:
            small, small_samples = await small_scale(url, count)
            single_docs = [document(j % 1000, DEVICES[j % 3], j) for j in range(count // 4)]
            single = await post_all(url, single_docs, batch=1, parallel=8)
            batch_docs = [
                document(j % 1000, DEVICES[(j // 1000) % 3], count + j) for j in range(count)
            ]
            batched = await post_all(url, batch_docs, batch=100, parallel=4)
            cold, changed, unchanged, size = [], [], [], 0
            cold_gzip, gzip_size = [], 0
            for round_ in range(8):
                everything = every_series(20 * count + round_ * 3000)
                await post_all(url, everything, batch=100, parallel=4)
                if round_ % 2:  # alternate: each scrape renders every series afresh
                    seconds, gzip_size = time_gzip_get(f"{url}/metrics")
                    cold_gzip.append(seconds)
                else:
                    cold.append(time_get(f"{url}/metrics"))
                quarter = everything[::4]
                for doc in quarter:
                    doc["run_id"] += "-q"
                    doc["started_at"] += 0.5
                await post_all(url, quarter, batch=100, parallel=4)
                changed.append(time_get(f"{url}/metrics"))
                unchanged.append(time_get(f"{url}/metrics"))
            spread, spread_gzip = [], []
            for round_ in range(6):
                everything = every_series(40 * count + round_ * 3000)
                await post_paced(url, everything, SPREAD_PER_SECOND)
                if round_ % 2:
                    spread_gzip.append(time_gzip_get(f"{url}/metrics")[0])
                else:
                    spread.append(time_get(f"{url}/metrics"))
            _, body = http_get(f"{url}/metrics", timeout=30)
            size = len(body)
            series = sum(1 for line in body.splitlines() if line and not line.startswith("#"))
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(timeout=30)
    return {
        "single_result_per_request": {
            "results": len(single_docs),
            "results_per_second": round(len(single_docs) / single),
        },
        "batches_of_100": {
            "results": len(batch_docs),
            "results_per_second": round(len(batch_docs) / batched),
        },
        "metrics_render_15k": {
            "samples": small_samples,
            "every_series_changed_seconds": summary(small),
            "target_seconds": 0.05,
        },
        "metrics_render": {
            "journeys": 1000,
            "steps": 5,
            "devices": 3,
            "samples": series,
            "bytes": size,
            "every_series_changed_seconds": summary(cold),
            "every_series_changed_gzip_seconds": summary(cold_gzip),
            "gzip_bytes": gzip_size,
            "every_series_changed_spread_seconds": summary(spread),
            "every_series_changed_spread_gzip_seconds": summary(spread_gzip),
            "spread_results_per_second": SPREAD_PER_SECOND,
            "a_quarter_changed_seconds": summary(changed),
            "nothing_changed_seconds": summary(unchanged),
        },
    }


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A detached worktree of ``ref``, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(where), ref], cwd=HERE, check=True
        )
        try:
            yield where
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(where)], cwd=HERE, check=True
            )


async def main(count: int, baseline: str | None) -> None:
    os.sched_setaffinity(0, {1})
    figures: dict[str, Any] = {
        "what": "collector pinned to one core; results of 5 steps and 5 pages each",
        "targets": {"results_per_second": 2000, "metrics_seconds": 0.25},
    }
    if baseline is None:
        figures.update(await measure(count, HERE))
    else:
        with checkout(baseline) as old:
            runs = []
            for name in ("this", "baseline", "baseline", "this"):  # ABBA: drift cancels out
                runs.append(
                    {"code": name, **await measure(count, old if name == "baseline" else HERE)}
                )
        figures.update(baseline=baseline, order="ABBA", runs=runs)
    write("collector_throughput", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=int, default=20_000)
    parser.add_argument(
        "--baseline", metavar="GIT_REF", help="also run this commit's collector, ABBA"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.results, arguments.baseline))
