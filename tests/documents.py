"""Result and heartbeat documents for tests, valid unless a test changes them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from probes.result import (
    AgentHeartbeat,
    ErrorType,
    PageResult,
    RunResult,
    Status,
    StepResult,
    heartbeat_to_dict,
)


def result(run_id: str = "r1", **changes: Any) -> RunResult:
    base = RunResult(
        run_id=run_id,
        journey="checkout",
        kind="browser",
        device="mobile",
        location="paris",
        agent="agent-1",
        started_at=1000.0,
        finished_at=1002.5,
        status=Status.PASSED,
        clicks=3,
        click_budget=3,
        interval_seconds=60.0,
        steps=(
            StepResult("home", "goto", Status.PASSED, 1000.0, 0.8),
            StepResult("buy", "click", Status.PASSED, 1000.8, 1.7),
        ),
        pages=(
            PageResult(
                "home",
                "http://shop/",
                ttfb_seconds=0.1,
                fcp_seconds=0.4,
                lcp_seconds=1.2,
                cls=0.01,
                load_seconds=0.9,
                transfer_bytes=5000,
                inp_seconds=0.05,
                dom_content_loaded_seconds=0.5,
                requests=7,
                ratings={"lcp_seconds": "good"},
            ),
        ),
    )
    return replace(base, **changes)


def failed(run_id: str, started_at: float) -> RunResult:
    return result(
        run_id,
        started_at=started_at,
        finished_at=started_at + 1,
        status=Status.FAILED,
        error_type=ErrorType.HTTP_ERROR,
        error_message="HTTP 500",
        failed_step="buy",
        steps=(
            StepResult("home", "goto", Status.PASSED, started_at, 0.5),
            StepResult(
                "buy",
                "click",
                Status.FAILED,
                started_at + 0.5,
                0.5,
                ErrorType.HTTP_ERROR,
                "HTTP 500",
            ),
        ),
    )


def heartbeat(jobs: tuple[str, ...] = ("checkout@mobile",), **changes: Any) -> dict[str, Any]:
    beat = AgentHeartbeat(
        agent="agent-1",
        location="paris",
        started_at=900.0,
        sent_at=1000.0,
        jobs=jobs,
        running=1,
        skipped_runs=2,
        missed_runs=0,
        chromium_restarts=1,
        artifacts_dropped=3,
        results_dropped=0,
        config_reload_successful=True,
        config_last_reload_success_at=950.0,
        lag_buckets={"0.05": 3, "0.25": 4, "+Inf": 4},
        lag_sum=0.3,
        lag_count=4,
    )
    return heartbeat_to_dict(replace(beat, **changes))
