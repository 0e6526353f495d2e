"""Stable slots: when in its interval a scheduled job runs, the same on every restart.

A job's slot comes from a hash of its name, so a restart keeps it. Hash points
land in clumps, though (50 jobs in a 30 s interval put several within a second of each
other), and runs that start together wait for each other's browser slots. So jobs
sharing an interval sit on a ring in the order of their hash points, and each starts at
the mean of its own hash point and those of its seven neighbours either side: gaps between
starts are averages of fifteen gaps between hash points, close to the even spacing, and
adding or removing a job moves only the fourteen around it, each by about one even spacing
at most (fewer than fifteen jobs: they are evenly spaced). A moved job's next run is
the new slot nearest to the one it had, so a reload neither skips nor doubles a run.
The agent (embedded default) and the collector (split deployment, per location) schedule
with the same arithmetic.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

SLOT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
NEIGHBOURS = 7  # each side: a start is the mean of fifteen hash points


def slot_offset(name: str, interval: float) -> float:
    """The job's hash point: seconds into the interval, the same on every restart."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return digest / 2**64 * interval


def spread_offsets(names: Iterable[str], interval: float) -> dict[str, float]:
    """Offsets for jobs sharing an interval: each the mean of the hash points of itself
    and its ``NEIGHBOURS`` either side on the ring (all of them, for small groups).

    Every window is summed afresh in ring order, so a job whose window did not change
    keeps exactly the same float: a far-away change never re-adds its job."""
    ordered = sorted((slot_offset(name, interval), name) for name in set(names))
    count = len(ordered)
    window = min(2 * NEIGHBOURS + 1, count)
    first = -((window - 1) // 2)

    def unwrapped(index: int) -> float:
        """The hash point at a ring position, a lap earlier or later past either end."""
        laps, position = divmod(index, count)
        return ordered[position][0] + laps * interval

    offsets: dict[str, float] = {}
    for index, (_, name) in enumerate(ordered):
        start = index + first
        mean = sum(unwrapped(j) for j in range(start, start + window)) / window
        offset = mean % interval
        offsets[name] = offset if offset < interval else 0.0  # -1e-17 % 30 is 30.0
    return offsets


def slot_start(offset: float, interval: float, now: float) -> float:
    """The start (epoch seconds) of the slot at ``offset`` nearest to ``now``: what a run
    fired at ``now`` (a little late, never early) was planned for."""
    first = SLOT_EPOCH.timestamp() + offset
    return first + math.floor((now - first) / interval + 0.5) * interval


def moved_next_run(previous: datetime, offset: float, interval: float) -> datetime:
    """A moved job's next run: its new slot nearest to the run it had planned.

    APScheduler starts a re-added job at the first slot after now: a job moved to an
    earlier point whose new time just passed would lose a whole interval, and one moved
    to a later point just after it ran would run again at once. The nearest slot may be a
    moment ago; it then runs at once (a late run within its grace time), so the gap
    between two runs stays within half an interval of the interval."""
    return datetime.fromtimestamp(slot_start(offset, interval, previous.timestamp()), UTC)


def kept_next_run(
    scheduler: BaseScheduler, name: str, offset: float, interval: float, was: float | None
) -> datetime | None:
    """The next run of a job re-added with the same interval (``was``): its new slot
    nearest the run it had planned; ``None`` (the trigger decides) for a new job."""
    planned = getattr(scheduler.get_job(name), "next_run_time", None)
    if was != interval or planned is None:
        return None
    return moved_next_run(planned, offset, interval)


def slot_job(
    name: str, interval: float, offset: float, next_run: datetime | None = None
) -> dict[str, Any]:
    """APScheduler ``add_job`` options: the job's slot, never two runs of it at once
    (the skip is counted by whoever listens), a late run coalesced and given half an
    interval of grace; ``next_run`` for a job moved from a slot it had."""
    start = SLOT_EPOCH + timedelta(seconds=offset)
    options: dict[str, Any] = {
        "trigger": IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
        "id": name,
        "name": name,
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": max(1, int(interval / 2)),
        "replace_existing": True,
    }
    if next_run is not None:
        options["next_run_time"] = next_run
    return options


Spreading = Callable[[Iterable[str], float], dict[str, float]]


def spread_by_interval(
    jobs: Iterable[tuple[str, float]], spread: Spreading = spread_offsets
) -> dict[str, float]:
    """``spread`` (``spread_offsets``; a benchmark's baseline) for each group of jobs
    sharing an interval."""
    groups: dict[float, list[str]] = {}
    for name, interval in jobs:
        groups.setdefault(interval, []).append(name)
    offsets: dict[str, float] = {}
    for interval, names in groups.items():
        offsets.update(spread(names, interval))
    return offsets
