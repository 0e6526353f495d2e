"""Helpers shared by the benchmarks: robust statistics and writing figures down."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def summary(samples: list[float]) -> dict[str, float]:
    """Median, mean, p90 and spread of a list of seconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "min": ordered[0],
        "max": ordered[-1],
    }


def write(name: str, figures: dict[str, Any]) -> Path:
    """Save figures with when and where they were taken, and print them."""
    RESULTS.mkdir(exist_ok=True)
    record = {
        "benchmark": name,
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        **figures,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User and system time of a process and of the children it has reaped (Chromium's
    closed renderers count in its browser process); 0 for a process already gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / TICKS


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds so far of a process (this one by default) and all its descendants."""
    from tests.services import descendants

    return sum(process_cpu_seconds(pid) for pid in descendants(root or os.getpid()))


def process_role(pid: int, root: int) -> str:
    """Which part of an agent's tree a process is: the agent (``root``), Playwright's
    driver, or a kind of Chromium process."""
    if pid == root:
        return "agent"
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "gone"
    if len(argv) == 1:  # Chromium rewrites its children's command line as one string
        argv = argv[0].split(b" ")
    command = b" ".join(argv).decode(errors="replace")
    if "run-driver" in command or Path(argv[0].decode(errors="replace")).name == "node":
        return "driver"
    for arg in argv:
        if arg.startswith(b"--type="):
            kind = arg.removeprefix(b"--type=").decode(errors="replace")
            if kind == "utility":
                sub = [a for a in argv if a.startswith(b"--utility-sub-type=")]
                name = sub[0].decode().rsplit(".", 1)[-1] if sub else "utility"
                return f"chromium {name}"
            return f"chromium {kind}"
    return "chromium browser"


def tree_cpu_by_role(root: int | None = None) -> dict[str, float]:
    """CPU seconds so far of a process tree, by ``process_role``."""
    from tests.services import descendants

    root = root or os.getpid()
    found: dict[str, float] = {}
    for pid in descendants(root):
        role = process_role(pid, root)
        found[role] = found.get(role, 0.0) + process_cpu_seconds(pid)
    return found


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process (shared pages split among their users); 0 for a
    process already gone."""
    return pss_parts(pid).get("Pss", 0)


def pss_parts(pid: int) -> dict[str, int]:
    """A process' PSS and its parts in bytes: ``Pss_File`` (pages of files mapped, mostly
    the code of Chromium's, Node's and Python's binaries: shared with every process running
    them, and dropped and read again under memory pressure), ``Pss_Anon`` and ``Pss_Shmem``
    (memory the process holds). Empty for a process already gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return {}
    parts = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Pss"):
            parts[key] = int(rest.split()[0]) * 1024
    return parts


def tree_pss_bytes(root: int) -> int:
    """PSS of a process and all its descendants."""
    from tests.services import descendants

    return sum(pss_bytes(pid) for pid in descendants(root))
