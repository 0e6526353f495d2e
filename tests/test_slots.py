"""Slots: stable across restarts, spread so that runs rarely start together."""

from __future__ import annotations

import random

from probes.slots import slot_offset, spread_offsets


def ring_gaps(offsets: dict[str, float], interval: float) -> list[float]:
    points = sorted(offsets.values())
    return [(points[(i + 1) % len(points)] - points[i]) % interval for i in range(len(points))]


def names(count: int) -> list[str]:
    return [f"home-{i:02d}@desktop" for i in range(count)]


def test_fifty_journeys_start_at_least_half_the_even_spacing_apart() -> None:
    raw = {name: slot_offset(name, 30.0) for name in names(50)}
    spread = spread_offsets(names(50), 30.0)

    assert min(ring_gaps(raw, 30.0)) < 0.05  # hash points clump: 6 ms apart here
    assert min(ring_gaps(spread, 30.0)) >= 30.0 / (2 * 50) - 1e-9


def test_every_journey_starts_within_a_few_slots_of_its_hash_point() -> None:
    spread = spread_offsets(names(50), 30.0)
    width = 30.0 / 87  # the table for 50 jobs has 87 slots

    def slots_moved(name: str) -> int:
        own = int(slot_offset(name, 30.0) / width) * width
        return round(((spread[name] - own) % 30.0) / width) % 87

    moved = [slots_moved(name) for name in names(50)]
    assert max(moved) <= 3
    assert moved.count(0) >= 25


def test_adding_a_journey_moves_only_the_clump_around_it() -> None:
    before = spread_offsets(names(50), 30.0)
    after = spread_offsets([*names(50), "new-journey@mobile"], 30.0)

    moved = [n for n in names(50) if abs(after[n] - before[n]) > 1e-9]

    assert len(moved) <= 5, moved


def test_the_same_jobs_get_the_same_slots_in_any_order() -> None:
    shuffled = names(40)
    random.Random(7).shuffle(shuffled)

    assert spread_offsets(shuffled, 60.0) == spread_offsets(names(40), 60.0)


def test_every_slot_stays_inside_the_interval() -> None:
    for count in (1, 2, 3, 17, 100, 400):
        offsets = spread_offsets(names(count), 15.0)
        assert all(0 <= value < 15.0 for value in offsets.values())
        assert len(offsets) == count
