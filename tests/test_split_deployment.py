"""The split deployment as real processes: `parcours collector` and `parcours agent`."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from probes.demo_shop.server import RunningShop
from tests.services import aget, collector_command, free_port, wait_until

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def running(commands: list[list[str]], log_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start processes; on the way out, SIGTERM them all and wait for them."""
    with log_path.open("w") as log:
        processes = [subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT) for c in commands]
        try:
            yield processes
        finally:
            for process in reversed(processes):
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)


async def test_an_agent_in_a_location_reports_to_a_separate_collector(
    shop: RunningShop, tmp_path: Path
) -> None:
    port = free_port()
    collector_url = f"http://127.0.0.1:{port}"
    config = tmp_path / "agent.yaml"
    config.write_text(
        f"""
journeys:
  - name: broken-cart
    base_url: {shop.url}
    interval: 3s
    devices: [desktop]
    retries: 0
    step_timeout: 3s
    steps:
      - name: product
        goto: /product/trail-runner?hide_add_to_cart=1
      - name: add to cart
        click: {{test_id: add-to-cart}}
"""
    )
    base = [sys.executable, "-m", "probes.cli"]
    commands = [
        collector_command(port, tmp_path / "c"),
        [
            *base,
            "agent",
            str(config),
            "--collector",
            collector_url,
            "--location",
            "paris",
            "--agent-name",
            "edge-1",
            "--heartbeat-interval",
            "1",
        ],
    ]
    with running(commands, tmp_path / "processes.log") as processes:

        async def delivered() -> dict[str, object] | None:
            status, body = await aget(f"{collector_url}/api/v1/runs?journey=broken-cart&limit=1")
            runs = json.loads(body)["runs"] if status == 200 else []
            return runs[0] if runs and runs[0]["artifacts"] else None

        run = await wait_until(delivered, 40, "a failed run with its screenshot")
        _, metrics = await aget(f"{collector_url}/metrics")
        shot = next(a["name"] for a in run["artifacts"] if a["kind"] == "screenshot")  # type: ignore[index, union-attr]
        image_status, _ = await aget(f"{collector_url}/runs/{run['run_id']}/artifacts/{shot}")

    assert run["location"] == "paris" and run["agent"] == "edge-1"
    assert run["run_url"] == f"{collector_url}/status/runs/{run['run_id']}"
    assert image_status == 200
    assert 'parcours_agent_up{agent="edge-1",location="paris"} 1.0' in metrics
    assert 'parcours_journey_failed_step{journey="broken-cart",location="paris"' in metrics
    assert [p.returncode for p in processes] == [0, 0]  # both stopped cleanly on SIGTERM
