"""Stable slots: when in its interval a scheduled job runs, the same on every restart.

A job's slot starts at a point hashed from its name, so a restart keeps it. Hash points
land in clumps, though (50 jobs in a 30 s interval put several within a second of each
other), and runs that start together wait for each other's browser slots. So jobs
sharing an interval are spread: each keeps its hash point unless the job before it on
the ring is closer than half the even spacing, in which case it moves just past that
one. A job alone in its part of the ring never moves; adding or removing one moves only
the clump around it (and the spacing itself only when the count of jobs grows or
shrinks by a quarter). The agent (embedded default) and the collector (split deployment,
per location) schedule with the same arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger

SLOT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
SPACING_STEP = 1.25


def slot_offset(name: str, interval: float) -> float:
    """Seconds into the interval at which this job runs; the same on every restart."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return digest / 2**64 * interval


def spread_offsets(names: Iterable[str], interval: float) -> dict[str, float]:
    """Offsets for jobs sharing an interval, at least ``interval / (2.5 n)`` apart.

    Sweeps the ring from the end of its widest empty arc (so that pushed jobs rarely wrap
    around onto the first ones), moving each job forward only as far as the spacing
    needs."""
    points = sorted((slot_offset(name, interval), name) for name in set(names))
    count = len(points)
    if count < 2:
        return {name: point for point, name in points}
    # The count is rounded up to a power of 1.25, so that adding or removing a job changes
    # the spacing (and moves every pushed job a little) only once in a while.
    spacing = interval / (2 * SPACING_STEP ** math.ceil(math.log(count, SPACING_STEP)))
    arcs = [((points[(i + 1) % count][0] - points[i][0]) % interval, i) for i in range(count)]
    widest = max(arcs)[1]
    ordered = points[widest + 1 :] + points[: widest + 1]
    base = ordered[0][0]
    offsets: dict[str, float] = {}
    previous = -math.inf
    for point, name in ordered:
        natural = base + (point - base) % interval  # its hash point, unwrapped past base
        if natural >= previous + spacing:
            offsets[name], previous = point, natural  # exactly its hash point: not moved
        else:
            previous += spacing
            offsets[name] = previous % interval
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
