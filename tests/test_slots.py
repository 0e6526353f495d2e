"""Slots: stable across restarts, spread so that runs rarely start together, and a
reload that moves a journey neither skips nor doubles its run."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from probes.agent.scheduler import JourneyScheduler
from probes.agent.stats import AgentStats
from probes.config.loader import load_config_text
from probes.config.spec import JourneySpec
from probes.slots import moved_next_run, slot_offset, spread_offsets


def ring_gaps(offsets: dict[str, float], interval: float, apart: int = 1) -> list[float]:
    """Seconds from each start to the ``apart``-th start after it, round the ring."""
    points = sorted(offsets.values())
    count = len(points)
    return [(points[(i + apart) % count] - points[i]) % interval for i in range(count)]


def names(count: int) -> list[str]:
    return [f"home-{i:02d}@desktop" for i in range(count)]


def moved(before: dict[str, float], after: dict[str, float], interval: float) -> dict[str, float]:
    """Jobs in both whose start changed, and by how many seconds (round the ring)."""
    shifts = {n: abs(after[n] - before[n]) for n in before if n in after}
    return {n: min(s, interval - s) for n, s in shifts.items() if s > 0}


def test_fifty_journeys_rarely_start_three_within_a_browser_run() -> None:
    """Two browser slots: a third run waits only when three starts fall within one run."""
    raw = {name: slot_offset(name, 30.0) for name in names(50)}
    spread = spread_offsets(names(50), 30.0)
    even = 2 * 30.0 / 50  # 1.2 s from a start to the one after next

    assert min(ring_gaps(raw, 30.0, apart=2)) < 0.1  # hash points clump: three in 95 ms here
    assert sum(1 for gap in ring_gaps(raw, 30.0, apart=2) if gap < 0.75 * even) >= 15
    assert min(ring_gaps(spread, 30.0, apart=2)) >= 0.65 * even
    assert sum(1 for gap in ring_gaps(spread, 30.0, apart=2) if gap < 0.75 * even) <= 3


def test_starts_keep_the_order_of_hash_points() -> None:
    spread = spread_offsets(names(50), 30.0)

    by_hash = sorted(names(50), key=lambda name: slot_offset(name, 30.0))
    by_start = sorted(names(50), key=lambda name: spread[name])
    turn = by_start.index(by_hash[0])  # the ring may start anywhere

    assert by_start[turn:] + by_start[:turn] == by_hash


def test_adding_a_journey_moves_only_its_fourteen_neighbours_by_less_than_the_spacing() -> None:
    before = spread_offsets(names(50), 30.0)
    for new in ("new-journey@mobile", "checkout@desktop", "api-health@tablet"):
        after = spread_offsets([*names(50), new], 30.0)

        shifts = moved(before, after, 30.0)

        assert len(shifts) == 14, (new, sorted(shifts))
        assert max(shifts.values()) < 30.0 / 50


def test_removing_a_journey_moves_only_its_fourteen_neighbours() -> None:
    before = spread_offsets(names(200), 60.0)
    after = spread_offsets(names(200)[1:], 60.0)

    assert len(moved(before, after, 60.0)) == 14


def test_fewer_than_fifteen_journeys_are_evenly_spaced() -> None:
    for count in (2, 3, 7, 15):
        gaps = ring_gaps(spread_offsets(names(count), 60.0), 60.0)
        assert max(gaps) - min(gaps) < 1e-9, (count, gaps)


def test_a_lone_journey_starts_at_its_hash_point() -> None:
    assert spread_offsets(["solo@mobile"], 60.0) == {"solo@mobile": slot_offset("solo@mobile", 60)}


def test_the_same_jobs_get_the_same_slots_in_any_order() -> None:
    shuffled = names(40)
    random.Random(7).shuffle(shuffled)

    assert spread_offsets(shuffled, 60.0) == spread_offsets(names(40), 60.0)


def test_every_slot_stays_inside_the_interval() -> None:
    for count in (1, 2, 3, 17, 100, 400):
        offsets = spread_offsets(names(count), 15.0)
        assert all(0 <= value < 15.0 for value in offsets.values())
        assert len(offsets) == count


def test_a_moved_journey_runs_at_its_new_slot_nearest_the_run_it_had_planned() -> None:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    planned = epoch + timedelta(days=9000, seconds=12)  # a run at second 12 of a minute

    earlier = moved_next_run(planned, offset=10.0, interval=60.0)
    later = moved_next_run(planned, offset=15.0, interval=60.0)
    across = moved_next_run(planned, offset=55.0, interval=60.0)

    assert earlier == planned - timedelta(seconds=2)  # may be past: it then runs late, once
    assert later == planned + timedelta(seconds=3)
    assert across == planned - timedelta(seconds=17)  # second 55 of the previous minute


def configs(names: list[str], interval: str) -> tuple[JourneySpec, ...]:
    text = "journeys:" + "".join(
        f"""
  - name: {name}
    base_url: http://127.0.0.1:9
    interval: {interval}
    timeout: 1s
    devices: [desktop]
    steps:
      - name: home
        goto: /
"""
        for name in names
    )
    return tuple(load_config_text(text, env={}).journeys)


async def test_reloads_that_move_journeys_neither_skip_nor_double_a_run() -> None:
    """Every reload adds or removes a journey among five every 3 s, so each one moves."""
    fired: dict[str, list[float]] = defaultdict(list)

    async def record(spec: JourneySpec, device: str, planned: datetime | None) -> None:
        fired[spec.name].append(time.monotonic())

    stable = [f"journey-{i}" for i in range(5)]
    scheduler = JourneyScheduler(record, AgentStats())
    scheduler.apply(configs(stable, "3s"))
    scheduler.start()
    try:
        for round_ in range(60):
            await asyncio.sleep(0.25)
            extra = [f"extra-{round_}"] if round_ % 2 == 0 else []
            change = scheduler.apply(configs([*stable, *extra], "3s"))
            assert change.changed, "every reload moves the others"
    finally:
        scheduler.shutdown()

    for name in stable:
        gaps = [b - a for a, b in zip(fired[name], fired[name][1:], strict=False)]
        assert len(gaps) >= 3, (name, fired[name])
        # A move keeps a run within half an interval of where it was: 1.5 to 4.5 s apart.
        # A skipped run would leave about 6 s, a doubled one less than 1.
        assert all(1.0 < gap < 5.2 for gap in gaps), (name, [round(g, 2) for g in gaps])
