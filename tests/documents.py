"""Result and heartbeat documents for tests, valid unless a test changes them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from probes.result import (
    AgentHeartbeat,
    BrowserSection,
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
        interval_seconds=60.0,
        steps=(
            StepResult("home", "goto", Status.PASSED, 1000.0, 0.8),
            StepResult("buy", "click", Status.PASSED, 1000.8, 1.7),
        ),
        browser=BrowserSection(
            clicks=3,
            click_budget=3,
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


def exchange_result(run_id: str, kind: str, **changes: Any) -> RunResult:
    """A passing HTTP or TCP check with one exchange, TLS included."""
    from probes.result import AssertionResult, Exchange, TlsInfo

    step = "call" if kind == "http" else "connect"
    exchange = Exchange(
        step=step,
        url="https://api.test/health" if kind == "http" else "tcp://gateway.test:443",
        method="GET" if kind == "http" else None,
        status=200 if kind == "http" else None,
        phases={"dns": 0.002, "connect": 0.004, "tls": 0.01, "processing": 0.05, "total": 0.07},
        response_bytes=120,
        tls=TlsInfo(earliest_expiry=2_000_000_000.0, days_left=42.0, version="TLSv1.3"),
        assertions=(AssertionResult("status == 200", True, "status (200) == 200", "200"),),
    )
    base = replace(
        result(run_id),
        journey=f"{kind}-check",
        kind=kind,
        device="none",
        browser=None,
        steps=(
            StepResult(step, "GET" if kind == "http" else "connect", Status.PASSED, 1000.0, 0.07),
        ),
        exchanges=(exchange,),
    )
    return replace(base, **changes)


def sample_of(kind: str, run_id: str) -> RunResult:
    """A typical result of each registered kind (a KeyError for a kind nobody wrote one for)."""
    samples = {"browser": lambda: result(run_id)}
    samples.update({k: (lambda k=k: exchange_result(run_id, k)) for k in ("http", "tcp")})
    return samples[kind]()
