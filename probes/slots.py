"""Stable slots: when in its interval a scheduled job runs, the same on every restart.

The agent (embedded default) and the collector (split deployment) schedule with
the same arithmetic, so a journey keeps its slot when it moves between them.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger

SLOT_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def slot_offset(name: str, interval: float) -> float:
    """Seconds into the interval at which this job runs; the same on every restart."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    return digest / 2**64 * interval


def slot_start(name: str, interval: float, now: float) -> float:
    """The start (epoch seconds) of the slot of ``name`` nearest to ``now``: what a run
    fired at ``now`` (a little late, never early) was planned for."""
    first = SLOT_EPOCH.timestamp() + slot_offset(name, interval)
    return first + math.floor((now - first) / interval + 0.5) * interval


def slot_job(name: str, interval: float) -> dict[str, Any]:
    """APScheduler ``add_job`` options: the job's stable slot, never two runs of it at once
    (the skip is counted by whoever listens), a late run coalesced and given half an
    interval of grace."""
    start = SLOT_EPOCH + timedelta(seconds=slot_offset(name, interval))
    return {
        "trigger": IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
        "id": name,
        "name": name,
        "max_instances": 1,
        "coalesce": True,
        "misfire_grace_time": max(1, int(interval / 2)),
        "replace_existing": True,
    }
