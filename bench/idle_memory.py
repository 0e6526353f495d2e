"""What an agent holds when it runs nothing: the fixed cost of agent, driver and Chromium.

Each variant starts a child process that imports the agent's machinery, launches Chromium
through Playwright as the agent does, and waits; the parent reads the proportional set
size (PSS: shared pages split between their users) of the child's whole process tree,
by process (agent, Playwright's driver, Chromium's browser, GPU, utility, zygote and
renderer processes). Measured twice: with Chromium launched before any journey, and
after one demo checkout on mobile (its context closed: the state between two runs).
Between the two, three demo checkouts: the CPU seconds each costs by role, so a saving
in memory that costs CPU shows. Variants take turns, three rounds, so a busy machine
shifts them alike.

Target: the idle tree under 300 MiB PSS. Each PSS is also split: the part that is pages
of mapped files (mostly the code of Chromium's, Node's and Python's binaries, shared with
every process running them and dropped under memory pressure) and the rest, the memory
the tree holds itself.

    .venv/bin/python -m bench.idle_memory [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

from bench.common import process_role, pss_parts, tree_cpu_by_role, write
from probes.browser import DRIVER_NODE_OPTIONS, LAUNCH_ARGS
from probes.demo_shop.server import start_demo_shop
from tests.services import descendants

MIB = 1024 * 1024


# Candidate ways to cut the fixed cost, each measured against the shipped launch.
@dataclass(frozen=True)
class Variant:
    args: tuple[str, ...] = LAUNCH_ARGS
    env: dict[str, str] = field(default_factory=dict)


# The launch as shipped against the launch before the network service moved in, and
# against the launch before any cut: the fixed cost is measured, not assumed. (Each
# earlier cut alone, in the README: zygote and GPU process 19-24 MiB, the driver's young
# generation 14-18 MiB; a jitless driver saved no more and cost wall time.)
NETWORK_SERVICE_IN_PROCESS = next(a for a in LAUNCH_ARGS if a.startswith("--enable-features="))
BEFORE = tuple(
    arg
    for arg in LAUNCH_ARGS
    if arg not in ("--no-zygote", "--in-process-gpu", NETWORK_SERVICE_IN_PROCESS)
)
NO_DRIVER_OPTIONS = {"NODE_OPTIONS": ""}
VARIANTS: dict[str, Variant] = {
    "shipped": Variant(env={"NODE_OPTIONS": DRIVER_NODE_OPTIONS}),
    "network service in its own process": Variant(
        args=tuple(arg for arg in LAUNCH_ARGS if arg != NETWORK_SERVICE_IN_PROCESS),
        env={"NODE_OPTIONS": DRIVER_NODE_OPTIONS},
    ),
    "before (no cuts)": Variant(args=BEFORE, env=NO_DRIVER_OPTIONS),
}
RUNS = 3  # demo checkouts on mobile between the two measures: their CPU and wall time too
MEMORY = ("launched", "ran", "launched_file_pages", "ran_file_pages")


def tree(root: int) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """PSS in MiB, the part of it that is pages of mapped files (code, in MiB), and CPU
    seconds so far, by role."""
    memory: dict[str, float] = defaultdict(float)
    files: dict[str, float] = defaultdict(float)
    for pid in descendants(root):
        role, parts = process_role(pid, root), pss_parts(pid)
        memory[role] += parts.get("Pss", 0) / MIB
        files[role] += parts.get("Pss_File", 0) / MIB
    return dict(memory), dict(files), tree_cpu_by_role(root)


async def child(variant: str, variables: dict[str, str]) -> None:
    """The agent's imports and its browser, then wait for the parent to measure."""
    from probes.agent import agent  # noqa: F401 - what a running agent has loaded
    from probes.browser import BrowserManager
    from probes.config import load_config_text
    from probes.demo_shop.server import demo_journey_text
    from probes.logs import configure_logging
    from probes.runners.journey import run
    from probes.runners.outcome import RunRequest

    configure_logging("warning", json=True)  # to stderr: stdout is the parent's
    settings = VARIANTS[variant]
    os.environ.update(settings.env)
    config = load_config_text(demo_journey_text(), variables=variables, env={})
    loop = asyncio.get_running_loop()

    async def told() -> None:
        await loop.run_in_executor(None, sys.stdin.readline)

    async with BrowserManager(settings.args) as browsers:
        await browsers.get()
        print("launched", flush=True)
        await told()
        walls, failures = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            result = await run(config.journeys[0], browsers, RunRequest("mobile"), config.masker)
            walls.append(time.perf_counter() - started)
            if not result.success:
                failures.append(result.error_message)
        await asyncio.sleep(2)  # let Chromium free the closed context's renderer
        print("ran", json.dumps({"walls": walls, "failures": failures}), flush=True)
        await told()


async def measure(variant: str, variables: dict[str, str]) -> dict[str, dict[str, float]]:
    """PSS by role at both moments, and the CPU the runs between them cost by role."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.idle_memory",
        "--child",
        variant,
        json.dumps(variables),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    found: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    try:
        for moment in ("launched", "ran"):
            line = (await asyncio.wait_for(process.stdout.readline(), 300)).decode()
            said, _, detail = line.strip().partition(" ")
            if said != moment:
                raise RuntimeError(f"the child said {line!r}, not {moment!r}")
            if detail:
                runs = json.loads(detail)
                found["wall_seconds_per_run"] = {"median": statistics.median(runs["walls"])}
                if runs["failures"]:
                    print(f"{variant}: {runs['failures']}", file=sys.stderr)  # measured anyway
            await asyncio.sleep(3)  # settled: nothing starting up
            measured = await asyncio.to_thread(tree, process.pid)
            found[moment], found[f"{moment}_file_pages"], cpu[moment] = measured
            process.stdin.write(b"\n")
            await process.stdin.drain()
        await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    roles = cpu["launched"].keys() | cpu["ran"].keys()
    found["cpu_seconds_per_run"] = {
        r: (cpu["ran"].get(r, 0.0) - cpu["launched"].get(r, 0.0)) / RUNS for r in roles
    }
    return found


def medians(samples: list[dict[str, float]], digits: int) -> dict[str, float]:
    roles = sorted({r for sample in samples for r in sample})
    table = {r: round(statistics.median(s.get(r, 0.0) for s in samples), digits) for r in roles}
    table["total"] = round(statistics.median(sum(s.values()) for s in samples), digits)
    return table


async def main(rounds: int) -> None:
    shop = await start_demo_shop()
    samples: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    try:
        for _ in range(rounds):
            for variant in VARIANTS:
                for moment, table in (await measure(variant, shop.variables)).items():
                    samples[variant][moment].append(table)
    finally:
        await shop.stop()
    figures = {
        variant: {
            moment: medians(tables, 1 if moment in MEMORY else 3)
            for moment, tables in moments.items()
        }
        for variant, moments in samples.items()
    }
    shipped = figures["shipped"]
    comparison = {
        variant: {
            "idle_launched_mib": table["launched"]["total"],
            "idle_after_runs_mib": table["ran"]["total"],
            "chromium_after_runs_mib": round(
                sum(v for r, v in table["ran"].items() if r.startswith("chromium")), 1
            ),
            # Of the idle tree, pages of mapped files (the binaries' code, shared and
            # reclaimable) and what is left: the memory the tree holds itself.
            "file_pages_launched_mib": table["launched_file_pages"]["total"],
            "held_launched_mib": round(
                table["launched"]["total"] - table["launched_file_pages"]["total"], 1
            ),
            "file_pages_after_runs_mib": table["ran_file_pages"]["total"],
            "held_after_runs_mib": round(
                table["ran"]["total"] - table["ran_file_pages"]["total"], 1
            ),
            "cpu_seconds_per_run": table["cpu_seconds_per_run"]["total"],
            "cpu_vs_shipped": round(
                table["cpu_seconds_per_run"]["total"] / shipped["cpu_seconds_per_run"]["total"], 3
            ),
            "wall_seconds_per_run": table["wall_seconds_per_run"]["total"],
        }
        for variant, table in figures.items()
    }
    write(
        "idle_memory",
        {
            "rounds": rounds,
            "runs_between_measures": RUNS,
            "load_average": os.getloadavg(),
            "variants": {name: asdict(variant) for name, variant in VARIANTS.items()},
            "comparison": comparison,
            "by_role": figures,
            "target_total_mib": 300,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "VARIABLES"))
    options = parser.parse_args()
    if options.child:
        asyncio.run(child(options.child[0], json.loads(options.child[1])))
    else:
        asyncio.run(main(options.rounds))
