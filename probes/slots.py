"""Stable slots: when in its interval a scheduled job runs, the same on every restart.

A job's slot comes from a hash of its name, so a restart keeps it. Hash points
land in clumps, though (50 jobs in a 30 s interval put several within a second of each
other), and runs that start together wait for each other's browser slots. So jobs
sharing an interval go in a table of equal slots at least 1.56 times as many as they are:
each job takes the slot its hash point falls in, or the next free one (linear probing,
in hash-point order). Starts are then at least ``interval / (2 n)`` apart; adding or
removing a job moves only the jobs right after it, and the table is resized only when
the count of jobs changes by a quarter. The agent (embedded default) and the collector
(split deployment, per location) schedule with the same arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger

SLOT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SPACING_STEP = 1.25  # table sizes are powers of this: resized when the count moves a quarter
TABLE_SLACK = SPACING_STEP**2  # slots per job, at least: short probe runs, few moves


def slot_offset(name: str, interval: float) -> float:
    """Seconds into the interval at which this job runs; the same on every restart."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return digest / 2**64 * interval


def spread_offsets(names: Iterable[str], interval: float) -> dict[str, float]:
    """Offsets for jobs sharing an interval: a table of equal slots, 1.56 to 1.95 per job,
    each job in the slot its hash point falls in, or the next free one.

    Jobs are placed in the order of their hash points, so adding or removing one moves
    only the jobs after it in its run of taken slots; the table's size changes only when
    the count of jobs grows or shrinks by a quarter."""
    ordered = sorted((slot_offset(name, interval), name) for name in set(names))
    if len(ordered) < 2:
        return {name: point for point, name in ordered}
    wanted = TABLE_SLACK * len(ordered)
    size = math.ceil(SPACING_STEP ** math.ceil(math.log(wanted, SPACING_STEP)))
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


def slot_start(offset: float, interval: float, now: float) -> float:
    """The start (epoch seconds) of the slot at ``offset`` nearest to ``now``: what a run
    fired at ``now`` (a little late, never early) was planned for."""
    first = SLOT_EPOCH.timestamp() + offset
    return first + math.floor((now - first) / interval + 0.5) * interval


def slot_job(name: str, interval: float, offset: float) -> dict[str, Any]:
    """APScheduler ``add_job`` options: the job's slot, never two runs of it at once
    (the skip is counted by whoever listens), a late run coalesced and given half an
    interval of grace."""
    start = SLOT_EPOCH + timedelta(seconds=offset)
    return {
        "trigger": IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
        "id": name,
        "name": name,
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": max(1, int(interval / 2)),
        "replace_existing": True,
    }


def spread_by_interval(jobs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """``spread_offsets`` for each group of jobs sharing an interval."""
    groups: dict[float, list[str]] = {}
    for name, interval in jobs:
        groups.setdefault(interval, []).append(name)
    offsets: dict[str, float] = {}
    for interval, names in groups.items():
        offsets.update(spread_offsets(names, interval))
    return offsets
