"""What every kind of run shares: its request, its outcome, and how a result is finished.

A result's verdict comes from its steps and budgets the same way for every
kind (a failed step fails the run, a fail budget fails it, a warn budget
degrades it), and every result is masked and cut to the contract's limits
before it leaves the runner. No Playwright here: HTTP and TCP runs import this.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import structlog

from probes import assertions
from probes.config.spec import JourneySpec
from probes.result import (
    AssertionResult,
    BudgetCheck,
    ErrorType,
    RunResult,
    Status,
    StepResult,
    fit_document,
    from_dict,
    to_dict,
)
from probes.runners.budgets import describe
from probes.runners.failures import StepFailure
from probes.secrets import Masker

if TYPE_CHECKING:
    from probes.browser import BrowserManager


@dataclass(frozen=True)
class RunRequest:
    """Where and as what a run happens: the labels every result carries."""

    device: str
    location: str = "local"
    agent: str = "local"
    attempt: int = 1
    run_id: str = ""
    run_page_base: str | None = None  # the collector's URL, for the result's run_url


@dataclass(frozen=True)
class RunContext:
    """What a runner gets besides its check: who asks, what to mask, shared resources."""

    request: RunRequest
    masker: Masker
    log: structlog.typing.FilteringBoundLogger
    browsers: BrowserManager | None = None  # launched on first use; only browser runs use it


@dataclass(frozen=True)
class RunOutcome:
    """A run's result, and the bytes of the artifacts it names (uploaded beside it)."""

    result: RunResult
    blobs: Mapping[str, bytes]


def verdict(
    steps: Sequence[StepResult], budgets: Sequence[BudgetCheck]
) -> tuple[Status, ErrorType | None, str | None, StepResult | None]:
    """Status, error type, message and failing step, from steps first, then budgets."""
    failed = next((s for s in steps if s.status is Status.FAILED), None)
    if failed is not None:
        return Status.FAILED, failed.error_type, failed.error_message, failed
    if any(b.level == "fail" for b in budgets):
        message = describe(b for b in budgets if b.level == "fail")
        return Status.FAILED, ErrorType.BUDGET_EXCEEDED, message, None
    if budgets:
        return Status.DEGRADED, None, describe(budgets), None
    return Status.PASSED, None, None, None


def finish_run(
    spec: JourneySpec,
    context: RunContext,
    *,
    started: float,
    steps: Sequence[StepResult],
    budgets: Sequence[BudgetCheck] = (),
    masker: Masker | None = None,
    **measures: Any,
) -> RunResult:
    """The run's result: verdict, labels, the kind's own measures; masked (with ``masker``
    when the run learnt secrets of its own) and cut to the contract's limits."""
    status, error_type, message, failed = verdict(steps, budgets)
    request = context.request
    result = RunResult(
        run_id=request.run_id,
        journey=spec.name,
        kind=spec.kind,
        device=request.device,
        location=request.location,
        agent=request.agent,
        started_at=started,
        finished_at=time.time(),
        status=status,
        steps=tuple(steps),
        budgets=tuple(budgets),
        error_type=error_type,
        error_message=message,
        failed_step=failed.name if failed else None,
        attempt=request.attempt,
        interval_seconds=spec.interval,
        alert_min_locations=spec.alert_min_locations,
        run_url=run_url(request),
        **measures,
    )
    context.log.info(
        "run_finished",
        status=status.value,
        error_type=error_type,
        duration=round(result.duration_seconds, 3),
    )
    return masked_and_fitted(result, masker or context.masker)


def run_url(request: RunRequest) -> str | None:
    """The collector's page for this run, when the agent knows the collector."""
    if not request.run_page_base:
        return None
    return f"{request.run_page_base.rstrip('/')}/status/runs/{request.run_id}"


def masked_and_fitted(result: RunResult, masker: Masker) -> RunResult:
    """Secrets masked in every string (messages, URLs, console lines), then every field cut
    to the contract's limits: a run with a 10 kB URL is reported, not refused."""
    document = to_dict(result)
    if masker:
        document = cast(dict[str, Any], masker.mask_data(document))
    return from_dict(fit_document(document))


def step_result(
    name: str, action: str, *, started: float, clock: float, failure: StepFailure | None
) -> StepResult:
    """A step that ran from ``started`` (wall) / ``clock`` (monotonic) until now, to the
    microsecond: the clock's nanoseconds are noise at this scale and cost every scrape."""
    return StepResult(
        name=name,
        action=action,
        status=Status.FAILED if failure else Status.PASSED,
        started_at=started,
        duration_seconds=round(time.monotonic() - clock, 6),
        error_type=failure.error_type if failure else None,
        error_message=failure.message if failure else None,
    )


def assertion_results(
    expected: Iterable[assertions.Assertion],
    facts: Mapping[str, Any],
    body: Any = assertions.MISSING,
) -> list[AssertionResult]:
    """Every assertion of a step evaluated against what the response or connection showed."""
    results = []
    for assertion in expected:
        outcome = assertions.evaluate(assertion, facts, body)
        results.append(
            AssertionResult(assertion.text, outcome.passed, outcome.message, outcome.actual)
        )
    return results


def failed_assertions(results: Iterable[AssertionResult]) -> StepFailure | None:
    """An assertion_failed naming every failed assertion with its value, or None."""
    failed = [r.message for r in results if not r.passed]
    return StepFailure(ErrorType.ASSERTION_FAILED, "; ".join(failed)) if failed else None


def skipped(name: str, action: str) -> StepResult:
    """A step that did not run because an earlier one failed."""
    return StepResult(name, action, Status.SKIPPED, time.time(), 0.0)


def failed_first(planned: Iterable[tuple[str, str]], failure: StepFailure) -> list[StepResult]:
    """The first planned step failed with ``failure`` before anything ran; the rest skipped."""
    (name, action), *rest = list(planned) or [("run", "run")]
    first = StepResult(
        name, action, Status.FAILED, time.time(), 0.0, failure.error_type, failure.message
    )
    return [first, *(skipped(n, a) for n, a in rest)]
