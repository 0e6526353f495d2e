"""The agent on schedule, in real Chromium, shipping to a real (in-process) collector."""

from __future__ import annotations

import asyncio
import itertools
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from collector.history import RunHistory
from collector.ingest import Ingestor
from collector.state import CollectorState
from probes.agent.agent import Agent, AgentSettings
from probes.agent.scheduler import JourneyScheduler, job_id
from probes.agent.stats import AgentStats
from probes.browser import BrowserManager
from probes.config import load_config
from probes.demo_shop.server import RunningShop
from probes.embedded import LocalSink
from probes.slots import slot_offset
from tests.services import wait_until


@dataclass
class Collector:
    state: CollectorState
    history: RunHistory
    sink: LocalSink


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[Collector]:
    history = RunHistory(tmp_path / "runs.sqlite3")
    await history.open()
    state = CollectorState()
    yield Collector(state, history, LocalSink(Ingestor(state, history, CollectorRegistry())))
    await history.close()


def write_config(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def journey(name: str, shop: RunningShop, query: str = "", interval: str = "1s") -> str:
    return f"""
  - name: {name}
    base_url: {shop.url}
    interval: {interval}
    devices: [desktop]
    retries: 0
    steps:
      - name: home
        goto: /{query}
"""


API_CHECK = """
  - name: api
    kind: http
    base_url: http://127.0.0.1:9
    interval: 1h
    steps:
      - name: call
        request: {url: /}
"""


def agent_for(config: Path, collector: Collector, **settings: object) -> Agent:
    options = {"name": "test-agent", "heartbeat_interval": 0.5, **settings}
    return Agent(
        AgentSettings(**options),  # type: ignore[arg-type]
        lambda: load_config([config]),
        collector.sink,
        BrowserManager(),
    )


async def all_runs(collector: Collector) -> list[dict[str, object]]:
    await collector.history.flush()
    return await collector.history.runs(None, None, None, 500, None)


@pytest.mark.slow
async def test_a_slow_journey_never_overlaps_itself_and_the_skip_is_counted(
    shop: RunningShop, collector: Collector, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "slow.yaml", "journeys:" + journey("slow", shop, "?delay_ms=1800")
    )
    agent = agent_for(config, collector)
    await agent.start()
    try:
        # Generous bounds (they return at once when met): a busy machine can take 10 s just
        # to launch Chromium before the first run.
        await wait_until(lambda: _async(agent.stats.skipped_runs >= 2), 60, "two skipped runs")
        await wait_until(lambda: _async(len(collector.state.series) == 1), 60, "a result")
    finally:
        await agent.stop()

    runs = sorted(await all_runs(collector), key=lambda r: float(r["started_at"]))  # type: ignore[arg-type]
    assert runs, "no run finished"
    for earlier, later in itertools.pairwise(runs):
        assert float(earlier["finished_at"]) <= float(later["started_at"])  # type: ignore[arg-type]
    assert agent.heartbeat().skipped_runs == agent.stats.skipped_runs


@pytest.mark.slow
async def test_concurrent_browser_runs_never_exceed_the_cap(
    shop: RunningShop, collector: Collector, tmp_path: Path
) -> None:
    text = "journeys:" + "".join(journey(f"j{i}", shop, "?delay_ms=400") for i in range(3))
    agent = agent_for(write_config(tmp_path / "three.yaml", text), collector, max_concurrency=1)
    peak = 0

    async def count_runs() -> bool:
        nonlocal peak
        peak = max(peak, agent.stats.running)
        return len(await all_runs(collector)) >= 5

    await agent.start()
    try:
        await wait_until(count_runs, 60, "five runs", every=0.02)
    finally:
        await agent.stop()

    runs = sorted(await all_runs(collector), key=lambda r: float(r["started_at"]))  # type: ignore[arg-type]
    assert peak == 1
    assert len({r["journey"] for r in runs}) >= 2
    for earlier, later in itertools.pairwise(runs):
        assert float(earlier["finished_at"]) <= float(later["started_at"]) + 0.01  # type: ignore[arg-type]


def test_slots_spread_a_hundred_journeys_over_the_interval() -> None:
    offsets = [slot_offset(job_id(f"journey-{i}", "mobile"), 60.0) for i in range(100)]

    per_ten_seconds = [sum(1 for o in offsets if lo <= o < lo + 10) for lo in range(0, 60, 10)]
    assert all(5 <= count <= 30 for count in per_ten_seconds), per_ten_seconds
    assert all(0 <= o < 60 for o in offsets)


async def test_a_restart_keeps_each_journey_in_its_slot(shop: RunningShop, tmp_path: Path) -> None:
    config = load_config(
        [write_config(tmp_path / "a.yaml", "journeys:" + journey("slot", shop, interval="1m"))]
    )

    async def never(*_: object) -> None:
        return None

    times = []
    for _ in range(2):  # two agent lifetimes
        scheduler = JourneyScheduler(never, AgentStats())
        scheduler.apply(config.journeys)
        scheduler.start()
        times.append(scheduler.next_run_time("slot@desktop"))
        scheduler.shutdown()

    first, second = times
    assert first is not None and first == second
    expected = slot_offset("slot@desktop", 60.0) % 60
    seconds_into_minute = (first - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() % 60
    assert seconds_into_minute == pytest.approx(expected, abs=0.001)


async def test_an_agent_launches_chromium_at_start_so_its_first_runs_do_not_wait_for_it(
    shop: RunningShop, collector: Collector, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "a.yaml", "journeys:" + journey("hourly", shop, interval="1h"))
    agent = agent_for(path, collector)
    browsers = agent.browsers
    await agent.start()
    agent.scheduler.pause()  # no run at all: what launches Chromium is the start itself
    try:
        await wait_until(lambda: _async(browsers.launched), 60, "Chromium launched at start")
        assert not await all_runs(collector)
    finally:
        await agent.stop()
    assert not browsers.launched


async def test_an_agent_with_api_checks_only_never_launches_chromium(
    collector: Collector, tmp_path: Path
) -> None:
    agent = agent_for(write_config(tmp_path / "a.yaml", "journeys:" + API_CHECK), collector)
    await agent.start()
    try:
        await asyncio.sleep(1)  # a launch takes about a second on this machine
        assert not agent.browsers.launched
        assert agent.browsers.choice is None  # not even looked for
    finally:
        await agent.stop()


async def test_a_reload_that_brings_the_first_browser_journey_launches_chromium_before_it_runs(
    shop: RunningShop, collector: Collector, tmp_path: Path
) -> None:
    path = write_config(tmp_path / "a.yaml", "journeys:" + API_CHECK)
    agent = agent_for(path, collector)
    await agent.start()
    agent.scheduler.pause()  # no run at all: what launches Chromium is the reload itself
    try:
        assert not agent.browsers.launched
        write_config(path, "journeys:" + API_CHECK + journey("hourly", shop, interval="1h"))
        assert await agent.reload("test")
        await wait_until(lambda: _async(agent.browsers.launched), 60, "Chromium launched")
        assert not await all_runs(collector)
    finally:
        await agent.stop()


async def test_hot_reload_adds_removes_and_changes_jobs_without_touching_the_others(
    shop: RunningShop, collector: Collector, tmp_path: Path
) -> None:
    path = write_config(
        tmp_path / "live.yaml",
        "journeys:"
        + journey("keep", shop, interval="2h")  # alone in its interval: no neighbour moves it
        + journey("change", shop, interval="1h")
        + journey("drop", shop, interval="1h"),
    )
    agent = agent_for(path, collector, watch_paths=(str(path),), watch_interval=0.1)
    await agent.start()
    try:
        kept_before = agent.scheduler.next_run_time("keep@desktop")
        path.write_text(
            "journeys:"
            + journey("keep", shop, interval="2h")
            + journey("change", shop, "?v=2", interval="1h")
            + journey("added", shop, interval="1h")
        )

        await wait_until(
            lambda: _async("added@desktop" in agent.scheduler.job_ids),
            30,
            "the reload to add a job",
        )

        assert set(agent.scheduler.job_ids) == {"keep@desktop", "change@desktop", "added@desktop"}
        assert agent.scheduler.next_run_time("keep@desktop") == kept_before
        assert agent.stats.config_reload_successful

        path.write_text("journeys:\n  - name: broken\n    stepz: []\n")
        await wait_until(
            lambda: _async(not agent.stats.config_reload_successful),
            30,
            "the invalid config to be rejected",
        )

        assert set(agent.scheduler.job_ids) == {"keep@desktop", "change@desktop", "added@desktop"}
        seen = collector.state.agents[("test-agent", "local")]
        assert seen.heartbeat.config_reload_successful is False
    finally:
        await agent.stop()


async def test_an_invalid_config_at_start_is_refused_with_file_and_line(
    collector: Collector, tmp_path: Path
) -> None:
    from probes.config import ConfigError

    path = write_config(tmp_path / "bad.yaml", "journeys:\n  - name: x\n    stepz: []\n")
    agent = agent_for(path, collector)

    with pytest.raises(ConfigError, match=r"bad.yaml:3: journey \"x\", stepz: unknown key"):
        await agent.start()
    await agent.stop()


async def _async(value: object) -> object:
    return value


BILLION_LAUGHS = "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['lol'] * 9)}]\n"
    for i in range(10)
)


@pytest.mark.parametrize(
    ("hostile", "logged"),
    [
        (BILLION_LAUGHS, "once aliases are expanded"),
        ("journeys: &x\n  - *x\n", "nested deeper than 64 levels"),
        ("journeys:\n  - name: x\n    interval: 99999999999h\n    steps: []\n", "at most 24h"),
        (
            "journeys:\n  - name: x\n    interval: 10s\n    timeout: 20s\n"
            "    steps:\n      - name: a\n        goto: /\n",
            "must be shorter than the interval",
        ),
    ],
    ids=["billion-laughs", "recursive-alias", "interval-beyond-a-day", "timeout-over-interval"],
)
async def test_a_hostile_reload_keeps_the_last_good_config_and_the_watcher_goes_on(
    shop: RunningShop, collector: Collector, tmp_path: Path, hostile: str, logged: str
) -> None:
    from structlog.testing import capture_logs

    path = write_config(tmp_path / "live.yaml", "journeys:" + journey("keep", shop, interval="1h"))
    agent = agent_for(path, collector, watch_paths=(str(path),), watch_interval=0.1)
    await agent.start()
    try:
        with capture_logs() as logs:
            path.write_text(hostile)
            await wait_until(
                lambda: _async(not agent.stats.config_reload_successful),
                30,
                "the hostile config to be refused",
            )
            failure = next(e for e in logs if e["event"] == "config_reload_failed")

        assert any(logged in problem and "live.yaml:" in problem for problem in failure["problems"])
        assert agent.scheduler.job_ids == ("keep@desktop",)

        path.write_text("journeys:" + journey("fixed", shop, interval="1h"))
        await wait_until(
            lambda: _async(agent.stats.config_reload_successful),
            30,
            "the watcher to pick up the repaired file",
        )
        assert agent.scheduler.job_ids == ("fixed@desktop",)
    finally:
        await agent.stop()


async def test_a_scheduling_error_on_reload_puts_the_old_jobs_back(
    shop: RunningShop, collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path / "live.yaml", "journeys:" + journey("keep", shop, interval="1h"))
    agent = agent_for(path, collector)
    await agent.start()
    try:
        path.write_text("journeys:" + journey("other", shop, interval="1h"))
        real_apply = agent.scheduler.apply
        calls = itertools.count()

        def apply_failing_once(journeys: object) -> object:
            if next(calls) == 0:
                raise OverflowError("date value out of range")
            return real_apply(journeys)  # type: ignore[arg-type]

        monkeypatch.setattr(agent.scheduler, "apply", apply_failing_once)

        assert await agent.reload("test") is False
        assert agent.stats.config_reload_successful is False
        assert agent.scheduler.job_ids == ("keep@desktop",)
    finally:
        await agent.stop()


async def test_a_reload_stuck_in_its_load_neither_blocks_stop_nor_keeps_the_process(
    shop: RunningShop, collector: Collector, tmp_path: Path
) -> None:
    import asyncio
    import threading

    path = write_config(tmp_path / "live.yaml", "journeys:" + journey("keep", shop, interval="1h"))
    release = threading.Event()
    loads = itertools.count()

    def load() -> object:
        if next(loads) > 0:  # every reload hangs, as a hostile file once made it
            release.wait(60)
        return load_config([path])

    agent = Agent(
        AgentSettings(name="test-agent", heartbeat_interval=0.5),
        load,  # type: ignore[arg-type]
        collector.sink,
        BrowserManager(),
    )
    await agent.start()
    stuck = asyncio.create_task(agent.reload("SIGHUP"))
    await wait_until(
        lambda: _async(any(t.name == "blocking-work" for t in threading.enumerate())),
        10,
        "the reload to be loading",
    )
    try:
        await asyncio.wait_for(agent.stop(), 30)
        stuck.cancel()
        loader = next(t for t in threading.enumerate() if t.name == "blocking-work")
        assert loader.daemon  # abandoned at exit, unlike a pool thread, which is joined
    finally:
        release.set()
