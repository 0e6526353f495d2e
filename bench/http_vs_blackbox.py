"""Parcours' HTTP check against Prometheus' blackbox_exporter, on the same URL.

A local target (its own process, pinned to CPU 1) answers after an injected
delay and records how long it really waited. Each prober is pinned to CPU 0:

- accuracy: ``--samples`` probes one at a time; the time to first byte each tool
  reports (Parcours' ``processing`` phase, blackbox's ``processing`` phase) and
  its total, against the delay the target measured (the truth);
- throughput: ``--concurrency`` probes at a time for ``--seconds``; checks per
  second on one core, and CPU seconds per check (from /proc).

Both open a fresh connection per probe. Run beside nothing else, and twice.

    python -m bench.http_vs_blackbox
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench.common import write
from tests.services import free_port, http_get

TARGET = """
import asyncio, json, sys, time
from aiohttp import web
delay = float(sys.argv[2])
slept = []
async def slow(_):
    started = time.perf_counter()
    await asyncio.sleep(delay)
    slept.append(time.perf_counter() - started)
    return web.Response(text="ok")
async def truth(_):
    return web.json_response(slept[-500:])
app = web.Application()
app.router.add_get("/slow", slow)
app.router.add_get("/truth", truth)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

DRIVER = """
import asyncio, json, os, sys, time
from probes.config import load_config_text
from probes.logs import configure_logging
from probes.runners.dispatch import run_check
from probes.runners.outcome import RunRequest
configure_logging("info", json=True)  # as an agent runs: one line per run
url, mode, amount, concurrency = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
config = load_config_text(
    "journeys:\\n  - name: bench\\n    kind: http\\n    steps:\\n      - name: get\\n"
    f"        request: {{url: '{url}'}}\\n        expect: [status == 200]\\n",
    env={},
)
spec, masker = config.journeys[0], config.masker
async def one():
    outcome = await run_check(spec, RunRequest("none"), masker)
    (exchange,) = outcome.result.exchanges
    return exchange.phases
async def main():
    if mode == "samples":
        found = [await one() for _ in range(int(amount))]
        print(json.dumps(found))
        return
    done, deadline = 0, time.monotonic() + amount
    async def worker():
        nonlocal done
        while time.monotonic() < deadline:
            await one()
            done += 1
    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    print(json.dumps({"checks": done, "cpu": time.process_time() - started}))
asyncio.run(main())
"""

BLACKBOX_CONFIG = """
modules:
  http_fresh:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
"""


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 30
    while http_get(url)[0] == 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        time.sleep(0.1)


def truth(target: str, count: int) -> list[float]:
    with urllib.request.urlopen(f"{target}/truth", timeout=10) as response:
        slept: list[float] = json.loads(response.read())
    return slept[-count:]


def parcours(url: str, mode: str, amount: float, concurrency: int) -> object:
    done = subprocess.run(
        [*pinned(0), sys.executable, "-c", DRIVER, url, mode, str(amount), str(concurrency)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def blackbox_probe(address: str, url: str) -> dict[str, float]:
    query = f"http://{address}/probe?module=http_fresh&target={urllib.parse.quote(url)}"
    with urllib.request.urlopen(query, timeout=30) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("probe_duration_seconds "):
            found["total"] = float(line.split()[-1])
        elif line.startswith('probe_http_duration_seconds{phase="processing"}'):
            found["processing"] = float(line.split()[-1])
        elif line.startswith("probe_success "):
            found["success"] = float(line.split()[-1])
    return found


async def blackbox_load(address: str, url: str, seconds: float, concurrency: int) -> int:
    import aiohttp

    query = f"http://{address}/probe?module=http_fresh&target={urllib.parse.quote(url)}"
    done, deadline = 0, time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            async with session.get(query) as response:
                await response.read()
            done += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return done


def errors(reported: list[float], served: list[float]) -> dict[str, float]:
    """Median and worst absolute error (ms) of what a tool reported against the truth."""
    gaps = [abs(r - s) * 1000 for r, s in zip(reported, served, strict=True)]
    return {"median_ms": round(statistics.median(gaps), 2), "max_ms": round(max(gaps), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.1, help="injected server delay (s)")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=300)
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})  # this process drives blackbox's load: beside the target
    binary = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if binary is None:
        sys.exit("install blackbox_exporter first (Debian: prometheus-blackbox-exporter)")
    port, bb_port = free_port(), free_port()
    target = f"http://127.0.0.1:{port}"
    url = f"{target}/slow"
    address = f"127.0.0.1:{bb_port}"
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "blackbox.yml"
        config.write_text(BLACKBOX_CONFIG)
        server = subprocess.Popen(
            [*pinned(1), sys.executable, "-c", TARGET, str(port), str(args.delay)]
        )
        exporter = subprocess.Popen(
            [*pinned(0), binary, f"--config.file={config}", f"--web.listen-address={address}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{target}/truth")
            wait_http(f"http://{address}/-/healthy")
            ours = parcours(url, "samples", args.samples, 1)
            ours_truth = truth(target, args.samples)
            theirs = [blackbox_probe(address, url) for _ in range(args.samples)]
            theirs_truth = truth(target, args.samples)
            ours_load = parcours(url, "load", args.seconds, args.concurrency)
            before = cpu_seconds(exporter.pid)
            theirs_done = asyncio.run(blackbox_load(address, url, args.seconds, args.concurrency))
            theirs_cpu = cpu_seconds(exporter.pid) - before
        finally:
            for process in (exporter, server):
                process.terminate()
                process.wait(timeout=10)
    assert isinstance(ours, list)
    assert isinstance(ours_load, dict)
    figures = {
        "injected_delay_seconds": args.delay,
        "samples": args.samples,
        "accuracy_against_server_measured_delay": {
            "parcours_ttfb": errors([p["processing"] for p in ours], ours_truth),
            "blackbox_ttfb": errors([p["processing"] for p in theirs], theirs_truth),
            "parcours_total_minus_delay_ms": round(
                statistics.median(p["total"] - s for p, s in zip(ours, ours_truth, strict=True))
                * 1000,
                2,
            ),
            "blackbox_total_minus_delay_ms": round(
                statistics.median(p["total"] - s for p, s in zip(theirs, theirs_truth, strict=True))
                * 1000,
                2,
            ),
        },
        "load": {
            "seconds": args.seconds,
            "concurrency": args.concurrency,
            "parcours_checks_per_second": round(ours_load["checks"] / args.seconds, 1),
            "blackbox_checks_per_second": round(theirs_done / args.seconds, 1),
            "parcours_cpu_ms_per_check": round(1000 * ours_load["cpu"] / ours_load["checks"], 3),
            "blackbox_cpu_ms_per_check": round(1000 * theirs_cpu / theirs_done, 3),
            # near 1.0: the prober's one core was the limit (saturated), as intended
            "parcours_core_busy": round(ours_load["cpu"] / args.seconds, 2),
            "blackbox_core_busy": round(theirs_cpu / args.seconds, 2),
        },
        "blackbox_probe_success": statistics.fmean(p.get("success", 0.0) for p in theirs),
        "note": "prober pinned to CPU 0, target to CPU 1; fresh connection per probe",
        "load_average_at_end": os.getloadavg(),
    }
    load = figures["load"]
    assert isinstance(load, dict)
    load["throughput_ratio_parcours_vs_blackbox"] = round(
        load["parcours_checks_per_second"] / load["blackbox_checks_per_second"], 3
    )
    write("http_vs_blackbox", figures)


if __name__ == "__main__":
    main()
