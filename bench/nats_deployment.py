"""The split deployment on NATS JetStream, measured: ingest, latency, agents, failover.

1. Ingest: ``--results`` 5-step results waiting in the stream; a new collector (its own
   durable consumer, pinned to one core) reads them all. Baseline in the same run: the
   same documents posted over HTTP (batches of 100) to an HTTP collector on the same core.
2. Latency: one result at a time published, polled for in ``/metrics`` every 5 ms.
3. Agents at saturation: 1, 2 and 4 agent processes in one location (``--max-concurrency
   2`` each) on the demo shop (its own process), thirty demo journeys every 15 s on
   desktop (far more than two cores run). Runs completed per minute over a window, CPU
   seconds per run of the agents' whole process trees (agent, driver, Chromium, from
   /proc), the highest PSS of one agent's tree, the oldest waiting job's age.
4. Failover: two agents, a check whose first request hangs; the agent running it is
   SIGKILLed; time until the job's result is in the collector, at the default ack wait
   (30 s) and at 5 s.

    python -m bench.nats_deployment
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats

from bench.collector_throughput import document, post_all
from bench.common import tree_cpu_seconds, tree_pss_bytes, write
from bench.soak import start_shop
from probes.bus import contract as c
from probes.demo_shop.server import URL_VARIABLE
from tests.services import (
    NatsHub,
    free_port,
    http_get,
    nats_server,
    started_process,
    wait_until,
)
from tests.test_http_checks import serve
from tests.test_nats_deployment import CountingApi, all_runs, nats_agent, nats_collector

LOCATION = "bench"
MIB = 1024 * 1024


@contextlib.contextmanager
def pinned(args: list[str], log: Path, cpu: int) -> Iterator[subprocess.Popen[bytes]]:
    """``started_process`` held to one core, so that what it does is measured on that core."""
    with started_process(args, log) as started:
        os.sched_setaffinity(started.pid, {cpu})
        yield started


def wait_ready(url: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while http_get(f"{url}/-/ready")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not get ready")
        time.sleep(0.05)


def metric(url: str, prefix: str) -> float:
    """The sum of the samples whose line starts with ``prefix``."""
    _, body = http_get(f"{url}/metrics", timeout=30)
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(prefix)
    )


ACCEPTED = 'parcours_collector_results_received_total{outcome="accepted"}'


def documents(count: int, first: int) -> list[dict[str, Any]]:
    docs = [
        document(j % 1000, ("desktop", "mobile", "tablet")[j % 3], first + j) for j in range(count)
    ]
    for doc in docs:
        doc["location"] = LOCATION
        doc["run_id"] = f"r{doc['run_id']}"
    return docs


async def publish(hub: NatsHub, docs: list[dict[str, Any]]) -> float:
    """Publish every document as an agent of the location would; seconds taken."""
    nc = await hub.connect(LOCATION)
    js = nc.jetstream()
    start = time.perf_counter()
    for i in range(0, len(docs), 500):
        await asyncio.gather(
            *(
                js.publish(
                    c.results_subject(LOCATION),
                    json.dumps(doc).encode(),
                    headers={c.MSG_ID: doc["run_id"]},
                    timeout=30,
                )
                for doc in docs[i : i + 500]
            )
        )
    took = time.perf_counter() - start
    await nc.close()
    return took


async def ingest_and_latency(tmp: Path, count: int) -> dict[str, Any]:
    with nats_server(tmp, [LOCATION]) as hub:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        limits = ("--max-series-per-agent", "10000")
        command = nats_collector(hub, port, tmp / "lat", "latency", None, *limits)
        with pinned(command, tmp / "latency.log", cpu=0):
            wait_ready(url)
            delays = []
            for i in range(30):
                doc = documents(1, 10_000_000 + i)[0]
                doc["journey"] = f"latency-{i}"
                sent = time.perf_counter()
                await publish(hub, [doc])
                needle = f'journey="latency-{i}"'
                shows = functools.partial(_shows, url, needle)
                await wait_until(shows, 30, needle, every=0.005)
                delays.append(time.perf_counter() - sent)
        docs = documents(count, 0)
        published = await publish(hub, docs)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        command = nats_collector(hub, port, tmp / "ingest", "ingest", None, *limits)
        with pinned(command, tmp / "ingest.log", cpu=0):
            stream_rate = await consumed_per_second(hub, "collector-ingest")
            accepted = metric(url, ACCEPTED)  # once, after: a scrape costs the collector CPU
        assert accepted == count + 30, accepted  # the latency part's 30 came first
    http_port = free_port()
    http_url = f"http://127.0.0.1:{http_port}"
    command = [
        sys.executable,
        "-m",
        "probes.cli",
        "collector",
        "--listen",
        f"127.0.0.1:{http_port}",
    ]
    command += ["--data-dir", str(tmp / "http"), *limits]
    with pinned(command, tmp / "http.log", cpu=0):
        wait_ready(http_url)
        http_seconds = await post_all(http_url, documents(count, 0), batch=100, parallel=4)
    return {
        "results": count,
        "publish_seconds": round(published, 2),
        "stream_results_per_second": round(stream_rate),
        "http_results_per_second_same_run": round(count / http_seconds),
        "ratio_stream_to_http": round(stream_rate / (count / http_seconds), 3),
        "publication_to_metrics_seconds": {
            "median": round(statistics.median(delays), 4),
            "p90": round(sorted(delays)[int(0.9 * len(delays))], 4),
            "max": round(max(delays), 4),
        },
    }


async def _shows(url: str, needle: str) -> bool | None:
    return needle in http_get(f"{url}/metrics")[1] or None


async def consumed_per_second(hub: NatsHub, durable: str) -> float:
    """Results per second a collector's consumer got through, from NATS' own account of
    it (delivered, then acknowledged up to the stream's last message): polling the
    collector's /metrics would cost it the CPU being measured."""
    nc = await hub.connect("collector")
    js = nc.jetstream()
    last = (await js.stream_info(c.RESULTS_STREAM)).state.last_seq
    start: tuple[float, int] | None = None
    try:
        while True:
            await asyncio.sleep(0.05)
            try:
                info = await js.consumer_info(c.RESULTS_STREAM, durable)
            except nats.js.errors.NotFoundError:
                continue
            now = time.perf_counter()
            delivered = info.delivered.stream_seq or 0
            if start is None and delivered > 0:
                start = (now, delivered)
            if start is not None and (info.ack_floor.stream_seq or 0) >= last:
                return (last - start[1]) / (now - start[0])
    finally:
        await nc.close()


def journeys_config(path: Path, shop_url: str, copies: int) -> Path:
    import yaml

    from probes.demo_shop.server import demo_journey_text

    demo = yaml.safe_load(demo_journey_text())
    checkout = next(j for j in demo["journeys"] if j["name"] == "demo-checkout")
    checkout["base_url"] = shop_url
    checkout.pop("cleanup", None)
    journeys = [{**checkout, "name": f"demo-{i:02d}"} for i in range(copies)]
    defaults = {**demo.get("defaults", {}), "interval": "15s", "retries": 0}
    defaults.update(devices=["desktop"], locations=[LOCATION])
    path.write_text(yaml.safe_dump({"defaults": defaults, "journeys": journeys}))
    return path


async def saturation(tmp: Path, agents: int, warmup: float, window: float) -> dict[str, Any]:
    shop, variables = start_shop()
    try:
        config = journeys_config(tmp / f"sat-{agents}.yaml", variables[URL_VARIABLE], 30)
        with nats_server(tmp / f"sat-{agents}", [LOCATION]) as hub:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = nats_collector(hub, port, tmp / f"sat-{agents}-data", "c", config)
            with contextlib.ExitStack() as stack:
                stack.enter_context(started_process(command, tmp / f"sat-{agents}-collector.log"))
                pids = []
                for i in range(agents):
                    args = nats_agent(hub, LOCATION, f"agent-{i}")
                    args[args.index("--max-concurrency") + 1] = "2"
                    log = tmp / f"sat-{agents}-agent-{i}.log"
                    pids.append(stack.enter_context(started_process(args, log)).pid)
                wait_ready(url)
                await asyncio.sleep(warmup)
                start, cpu_start = time.time(), sum(tree_cpu_seconds(p) for p in pids)
                peak, ages = 0, []
                while time.time() - start < window:
                    peak = max(peak, *(tree_pss_bytes(p) for p in pids))
                    ages.append(metric(url, "parcours_location_oldest_job_age_seconds"))
                    await asyncio.sleep(5)
                end, cpu_end = time.time(), sum(tree_cpu_seconds(p) for p in pids)
                await asyncio.sleep(2)  # results of the window's last runs land
                done = [r for r in await all_runs(url) if start <= r["finished_at"] < end]
                missed = metric(url, "parcours_agent_missed_runs_total")
    finally:
        shop.send_signal(signal.SIGTERM)
        shop.wait(timeout=30)
    minutes = (end - start) / 60
    return {
        "agents": agents,
        "window_seconds": round(end - start),
        "runs_per_minute": round(len(done) / minutes, 1),
        "passed": sum(1 for r in done if r["status"] == "passed"),
        "runs": len(done),
        "cpu_seconds_per_run": round((cpu_end - cpu_start) / max(len(done), 1), 2),
        "peak_pss_per_agent_mib": round(peak / MIB),
        "oldest_job_age_seconds": {"median": statistics.median(ages), "max": max(ages)},
        "jobs_missed_by_deadline": missed,
        "load_average": os.getloadavg(),
    }


async def failover(tmp: Path, ack_wait: float) -> dict[str, Any]:
    server = CountingApi()
    runner, api_port = await serve(server.app)
    config = tmp / f"hang-{ack_wait:.0f}.yaml"
    config.write_text(
        f"""
defaults: {{interval: 60s, retries: 0, locations: [{LOCATION}]}}
journeys:
  - name: slow-api
    kind: http
    base_url: http://127.0.0.1:{api_port}
    steps:
      - name: call
        request: {{url: /hang/slow-api}}
        expect: [status == 200]
"""
    )
    try:
        with nats_server(tmp / f"fo-{ack_wait:.0f}", [LOCATION]) as hub:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            extra = ("--job-ack-wait", str(ack_wait))
            command = nats_collector(
                hub, port, tmp / f"fo-{ack_wait:.0f}-data", "c", config, *extra
            )
            with contextlib.ExitStack() as stack:
                stack.enter_context(started_process(command, tmp / f"fo-{ack_wait:.0f}-c.log"))
                agents = {}
                for name in ("one", "two"):
                    log = tmp / f"fo-{ack_wait:.0f}-{name}.log"
                    agents[name] = (
                        stack.enter_context(started_process(nats_agent(hub, LOCATION, name), log)),
                        log,
                    )
                await asyncio.wait_for(server.hung.wait(), 150)
                await asyncio.sleep(0.5)
                holder = next(
                    n for n, (_, log) in agents.items() if '"job_started"' in log.read_text()
                )
                killed = time.time()
                agents[holder][0].send_signal(signal.SIGKILL)
                while True:
                    status, body = http_get(f"{url}/api/v1/runs?limit=5")
                    runs = json.loads(body)["runs"] if status == 200 else []
                    if runs:
                        break
                    await asyncio.sleep(0.05)
                landed = time.time()
    finally:
        server.release.set()
        await runner.cleanup()
    return {
        "ack_wait_seconds": ack_wait,
        "kill_to_result_seconds": round(landed - killed, 2),
        "ran_on": runs[0]["agent"],
        "killed": holder,
    }


PARTS = ("ingest", "saturation", "failover")


async def main(count: int, warmup: float, window: float, parts: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        figures: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
        if "ingest" in parts:
            figures["ingest"] = await ingest_and_latency(tmp, count)
            print(json.dumps(figures["ingest"]), flush=True)
        if "saturation" in parts:
            figures["saturation"] = []
            for agents in (1, 2, 4):
                found = await saturation(tmp, agents, warmup, window)
                print(json.dumps(found), flush=True)
                figures["saturation"].append(found)
        if "failover" in parts:
            figures["failover"] = [await failover(tmp, wait) for wait in (30.0, 5.0)]
    name = "nats_deployment" if len(parts) == len(PARTS) else f"nats_deployment_{'_'.join(parts)}"
    write(name, figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=20_000)
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=90.0)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    options = parser.parse_args()
    asyncio.run(main(options.results, options.warmup, options.window, options.parts))
