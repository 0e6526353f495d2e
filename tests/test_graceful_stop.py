"""SIGTERM or Ctrl-C mid-run: the run finishes, its result is kept, no Chromium is left."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from probes.demo_shop.server import RunningShop
from tests.services import aget, chromium_with_marker, parcours_run, wait_until

pytestmark = pytest.mark.slow


def slow_journey(tmp_path: Path, shop: RunningShop, delay_ms: int) -> Path:
    path = tmp_path / "slow.yaml"
    path.write_text(
        f"""
journeys:
  - name: slow
    base_url: {shop.url}
    interval: 3s
    devices: [desktop]
    retries: 0
    step_timeout: 2m
    steps:
      - name: slow page
        goto: /?delay_ms={delay_ms}
"""
    )
    return path


async def a_run_in_flight(collector: str) -> bool:
    _, metrics = await aget(f"{collector}/metrics")
    return any(
        line.startswith("parcours_agent_running_journeys{") and line.endswith(" 1.0")
        for line in metrics.splitlines()
    )


def stored_runs(data_dir: Path) -> list[tuple[str, str, float]]:
    """(journey, status, finished_at) of every run in the collector's history file."""
    with sqlite3.connect(data_dir / "runs.sqlite3") as db:
        rows = db.execute("SELECT journey, status, document FROM runs")
        return [(j, s, json.loads(doc)["finished_at"]) for j, s, doc in rows]


def _sigterm(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)


def _ctrl_c(process: subprocess.Popen[str]) -> None:
    """As a terminal does: the whole foreground process group, Playwright's driver included
    (the driver must leave Chromium to the agent's own graceful stop)."""
    os.killpg(process.pid, signal.SIGINT)


@pytest.mark.parametrize(
    ("send_stop", "own_process_group"),
    [
        pytest.param(_sigterm, False, id="sigterm"),
        pytest.param(_ctrl_c, True, id="ctrl-c-in-a-terminal"),
    ],
)
async def test_a_stop_during_a_run_lets_it_finish_and_keeps_its_result(
    send_stop: Callable[[subprocess.Popen[str]], None],
    own_process_group: bool,
    shop: RunningShop,
    tmp_path: Path,
) -> None:
    marker = f"PARCOURS_TEST_{uuid.uuid4().hex}"
    data_dir = tmp_path / "data"
    config = slow_journey(tmp_path, shop, delay_ms=3000)
    with parcours_run(config, data_dir, env={marker: "1"}, own_process_group=own_process_group) as (
        process,
        collector,
    ):
        await wait_until(lambda: a_run_in_flight(collector), 60, "a run in flight")
        assert not stored_runs(data_dir)  # nothing finished yet: the run below is the one
        signalled = time.time()
        send_stop(process)
        code = await asyncio.to_thread(process.wait, 60)
        seen_chromium = chromium_with_marker(marker)
    output = await asyncio.to_thread(_logs, tmp_path)

    runs = stored_runs(data_dir)
    assert code == 0
    # Finished, not cut short: a 3 s page is over the 3 s page-load budget, so degraded.
    assert [(journey, status) for journey, status, _ in runs] == [("slow", "degraded")]
    assert runs[0][2] > signalled  # in flight at the signal (see above), finished after it
    assert "Traceback" not in output
    assert "exception was never retrieved" not in output
    assert seen_chromium == []


async def test_a_second_sigterm_stops_at_once_without_waiting_for_the_grace(
    shop: RunningShop, tmp_path: Path
) -> None:
    marker = f"PARCOURS_TEST_{uuid.uuid4().hex}"
    config = slow_journey(tmp_path, shop, delay_ms=90_000)
    with parcours_run(config, tmp_path / "data", env={marker: "1"}, extra=("--grace", "120")) as (
        process,
        collector,
    ):
        await wait_until(lambda: a_run_in_flight(collector), 60, "a run in flight")
        process.send_signal(signal.SIGTERM)
        # Signals of one kind are not queued: send the second once the first was taken.
        await wait_until(lambda: _logged(tmp_path, "stop_requested"), 30, "the first signal")
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.to_thread(process.wait, 60)
        took = time.monotonic() - started
        left = chromium_with_marker(marker)

    # The page would answer after 90 s and the grace is 120 s: only the second signal
    # explains an exit within a minute.
    assert code == 0
    assert took < 60
    assert left == []


def _logs(folder: Path) -> str:
    return "\n".join(log.read_text() for log in folder.glob("parcours-*.log"))


async def _logged(folder: Path, event: str) -> bool:
    return event in await asyncio.to_thread(_logs, folder)
