"""One run of any kind of check: the wrapper every run goes through.

It finds the kind's runner in the registry (imported on first use), binds the
run's identity into every log line, holds the run to its timeout, and turns
anything that escapes the runner (a Playwright error, a bug, a timeout) into a
failed result naming the first step: a run never vanishes.

``run_attempts`` is the one run loop: a run, then a retry in a fresh context
while it fails and attempts remain, each attempt handed to a ``Reporter``. The
agent's delivery and ``parcours test``'s table are two reporters of it.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from probes.config.spec import JourneySpec
from probes.kinds import KINDS
from probes.result import ErrorType, RunResult, first_line
from probes.runners.failures import StepFailure
from probes.runners.outcome import (
    RunContext,
    RunOutcome,
    RunRequest,
    failed_first,
    finish_run,
)
from probes.secrets import Masker

if TYPE_CHECKING:
    from probes.browser import BrowserManager

log = structlog.get_logger(__name__)
# Beyond a check's own timeout, before the wrapper stops waiting: evidence capture and a
# trace's export happen after the journey's deadline and are bounded on their own.
BACKSTOP_SECONDS = 60.0


class Runner(Protocol):
    """The module a kind names in the registry."""

    async def run_check(self, spec: JourneySpec, context: RunContext) -> RunOutcome:
        """Run the check once; failures of the target are results, not exceptions."""

    def planned_steps(self, spec: JourneySpec) -> list[tuple[str, str]]:
        """(name, action) of the steps the check will take, for a run that never starts."""


class Reporter(Protocol):
    """Where each attempt's result goes: the agent's sink, or ``parcours test``'s table."""

    async def submit(self, result: RunResult, blobs: Mapping[str, bytes]) -> None:
        """Take one attempt's result and its artifacts' bytes."""


async def run_attempts(
    spec: JourneySpec,
    request: RunRequest,
    *,
    attempts: int,
    masker: Masker,
    browsers: BrowserManager | None,
    reporter: Reporter,
) -> RunResult:
    """Run until an attempt succeeds or ``attempts`` are used; report each; return the last.

    Every attempt is its own run (own run id, fresh browser context), so a retry that
    passes never hides the failure before it: both are reported.
    """
    result: RunResult | None = None
    for attempt in range(1, attempts + 1):
        this = replace(request, attempt=attempt, run_id="")  # run_check gives each its own id
        with structlog.contextvars.bound_contextvars(
            journey=spec.name, device=this.device, attempt=attempt
        ):
            outcome = await run_check(spec, this, masker, browsers)
        result = outcome.result
        if not result.success and attempt < attempts:  # another attempt of this scheduled run
            result = replace(result, final=False)
        await reporter.submit(result, outcome.blobs)
        if result.success:
            break
    assert result is not None, "at least one attempt"
    return result


def runner_for(kind: str) -> Runner:
    """The runner module of a registered kind."""
    module: Any = importlib.import_module(KINDS[kind].runner)
    return module  # type: ignore[no-any-return]


async def run_check(
    spec: JourneySpec,
    request: RunRequest,
    masker: Masker,
    browsers: BrowserManager | None = None,
) -> RunOutcome:
    """Run one check once, whatever its kind; every secret is masked in what comes back."""
    request = replace(request, run_id=request.run_id or uuid.uuid4().hex)
    runner = runner_for(spec.kind)
    bound = log.bind(
        journey=spec.name, device=request.device, location=request.location, run_id=request.run_id
    )
    context = RunContext(request, masker, bound, browsers)
    started = time.time()
    with structlog.contextvars.bound_contextvars(run_id=request.run_id):
        try:
            return await asyncio.wait_for(
                runner.run_check(spec, context), spec.timeout + BACKSTOP_SECONDS
            )
        except Exception as exc:  # noqa: BLE001 - a run never vanishes: any error is a failed result
            failure = _failure(exc, spec)
            # Logged as a string (not exc_info) so that the log scrubber masks it too.
            bound.error(
                "run_crashed", error=repr(exc)[:500], traceback=traceback.format_exc()[-4000:]
            )
    return _failed(spec, context, failure, started)


def failed_run(
    spec: JourneySpec, request: RunRequest, masker: Masker, failure: StepFailure
) -> RunOutcome:
    """A run that could not start (a job whose config the agent cannot resolve), reported
    as a failed result on the first step like any other: it never vanishes."""
    request = replace(request, run_id=request.run_id or uuid.uuid4().hex)
    context = RunContext(request, masker, log.bind(journey=spec.name), None)
    log.error(
        "run_not_started",
        journey=spec.name,
        device=request.device,
        error_type=failure.error_type.value,
        error=str(failure),
    )
    return _failed(spec, context, failure, time.time())


def _failed(
    spec: JourneySpec, context: RunContext, failure: StepFailure, started: float
) -> RunOutcome:
    steps = failed_first(runner_for(spec.kind).planned_steps(spec), failure)
    return RunOutcome(finish_run(spec, context, started=started, steps=steps), {})


def _failure(exc: Exception, spec: JourneySpec) -> StepFailure:
    """A runner's own StepFailure says what it is; timeouts are timeouts; Playwright's
    errors are the browser's; anything else is Parcours' own."""
    if isinstance(exc, StepFailure):
        return exc
    detail = first_line(str(exc))
    if isinstance(exc, TimeoutError):
        error_type = ErrorType.TIMEOUT
        detail = detail or f"no end within {spec.timeout + BACKSTOP_SECONDS:.0f}s"
    elif type(exc).__module__.startswith("playwright"):
        error_type = ErrorType.BROWSER_ERROR
    else:
        error_type = ErrorType.AGENT_ERROR
    return StepFailure(
        error_type, f"the run could not complete: {type(exc).__name__}: {detail}".rstrip(": ")
    )
