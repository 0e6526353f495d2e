"""The browser journey kind: run a journey's steps in a fresh context of the shared Chromium.

A run never raises for something that happened to the site or the browser:
it returns a RunResult that says what failed, where, and why. Steps after a
failure are recorded as skipped; the context is closed in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import structlog
from playwright.async_api import Browser, BrowserContext, Error, Page

from probes.browser import BrowserManager, BrowserUnavailableError
from probes.conditions import Conditions, resolve_conditions
from probes.config.model import Step
from probes.config.spec import JourneySpec
from probes.result import (
    Artifact,
    BudgetCheck,
    ErrorType,
    PageResult,
    RunResult,
    Status,
    StepResult,
    fit_document,
    from_dict,
    to_dict,
)
from probes.runners.budgets import check_budgets, describe
from probes.runners.evidence import (
    Evidence,
    capture_page,
    secret_fields,
    start_trace,
    stop_trace,
)
from probes.runners.failures import StepFailure, first_line
from probes.runners.page_monitor import INIT_SCRIPT, PageMonitor
from probes.runners.steps import Deadline, check, perform
from probes.secrets import Masker

log = structlog.get_logger(__name__)
KIND = "browser"
GRACE_SECONDS = 2.0
INTERACTIVE = frozenset(
    {"click", "fill", "select", "press", "hover"}
)  # beyond a step's own timeout, before we stop waiting on Playwright


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
class RunOutcome:
    """A run's result, and the bytes of the artifacts it names (uploaded beside it)."""

    result: RunResult
    blobs: Mapping[str, bytes]


async def run(
    spec: JourneySpec, browsers: BrowserManager, request: RunRequest, masker: Masker
) -> RunResult:
    """Run one journey once, keeping only the result (artifacts are dropped: see run_outcome)."""
    return (await run_outcome(spec, browsers, request, masker)).result


async def run_outcome(
    spec: JourneySpec, browsers: BrowserManager, request: RunRequest, masker: Masker
) -> RunOutcome:
    """Run one journey once; every secret is masked in what comes back, artifacts too.

    The one wrapper every run goes through: whatever goes wrong in Parcours, Playwright
    or Chromium, the run ends as a result (failed, with a reason), never as an exception
    that would leave its series silent.
    """
    run_id = request.run_id or uuid.uuid4().hex
    bound = log.bind(
        journey=spec.name, device=request.device, location=request.location, run_id=run_id
    )
    started = time.time()
    try:
        return await _attempt(spec, browsers, request, masker, run_id=run_id, bound=bound)
    except Exception as exc:  # noqa: BLE001 - a run never vanishes: any error is a failed result
        # The traceback is masked here: a renderer would print it after the log scrubber ran.
        bound.error("run_crashed", error=repr(exc)[:500], traceback=traceback.format_exc()[-4000:])
        error_type = ErrorType.TIMEOUT if isinstance(exc, TimeoutError) else None
        failure = StepFailure(
            error_type or ErrorType.BROWSER_ERROR,
            f"the run could not complete: {type(exc).__name__}: {first_line(str(exc))}",
        )
        return _failed_before_steps(spec, request, run_id, started, failure, masker, bound)


async def _attempt(
    spec: JourneySpec,
    browsers: BrowserManager,
    request: RunRequest,
    masker: Masker,
    *,
    run_id: str,
    bound: structlog.typing.FilteringBoundLogger,
) -> RunOutcome:
    try:
        browser = await browsers.get()
        options, conditions = device_setup(spec, browsers, request.device)
    except BrowserUnavailableError as exc:
        failure = StepFailure(ErrorType.BROWSER_ERROR, str(exc))
        return _failed_before_steps(spec, request, run_id, time.time(), failure, masker, bound)
    # The clock starts once Chromium is up: a launch is the agent's cost, not the site's.
    started = time.time()
    try:
        context = await _open_context(browsers, browser, options)
    except (Error, BrowserUnavailableError) as exc:
        failure = StepFailure(
            ErrorType.BROWSER_ERROR, f"no browser context: {first_line(str(exc))}"
        )
        return _failed_before_steps(spec, request, run_id, started, failure, masker, bound)
    try:
        steps, pages, budgets, evidence = await _run_in_context(
            spec,
            context,
            bound,
            masker,
            conditions=conditions,
            attempt=request.attempt,
            started=started,
        )
    finally:
        await _close(context)
    result = _finish(
        spec,
        request=request,
        run_id=run_id,
        started=started,
        steps=steps,
        pages=pages,
        budgets=budgets,
        masker=masker,
        bound=bound,
        conditions={
            **conditions.describe(),
            "viewport": options.get("viewport"),
            "user_agent": options.get("user_agent"),
        },
        artifacts=evidence.artifacts,
    )
    return RunOutcome(result, evidence.blobs)


def _failed_before_steps(  # noqa: PLR0917 - one call shape, used three times above
    spec: JourneySpec,
    request: RunRequest,
    run_id: str,
    started: float,
    failure: StepFailure,
    masker: Masker,
    bound: structlog.typing.FilteringBoundLogger,
) -> RunOutcome:
    """A run that never got going (no browser, or a crash): its first step carries why."""
    result = _finish(
        spec,
        request=request,
        run_id=run_id,
        started=started,
        steps=_all_skipped(spec.steps, failure),
        pages=[],
        budgets=[],
        masker=masker,
        bound=bound,
    )
    return RunOutcome(result, {})


async def _open_context(
    browsers: BrowserManager, browser: Browser, options: dict[str, Any]
) -> BrowserContext:
    """A fresh context; a browser that cannot give one (it just crashed) is replaced once."""
    try:
        return await browser.new_context(**options)
    except Error:
        replacement = await browsers.relaunch(browser)
        return await replacement.new_context(**options)


def device_setup(
    spec: JourneySpec, browsers: BrowserManager, device: str
) -> tuple[dict[str, Any], Conditions]:
    """Context options for the device, and the network and CPU it is measured under."""
    custom = spec.device_profiles.get(device)
    options = custom.context_options() if custom else browsers.context_options(device)
    conditions = resolve_conditions(
        bool(options.get("is_mobile")),
        device_network=custom.network if custom else None,
        device_cpu=custom.cpu_slowdown if custom else None,
        journey_network=spec.network,
        journey_cpu=spec.cpu_slowdown,
        custom=dict(spec.network_profiles),
    )
    return options, conditions


async def _run_in_context(
    spec: JourneySpec,
    context: BrowserContext,
    bound: structlog.typing.FilteringBoundLogger,
    masker: Masker,
    *,
    conditions: Conditions,
    attempt: int,
    started: float,
) -> tuple[list[StepResult], list[PageResult], list[BudgetCheck], Evidence]:
    evidence = Evidence()
    settings = spec.evidence
    secrets = secret_fields(spec.steps, masker)
    # A screencast frame would show a typed secret legibly: no frames when one is typed.
    tracing = await start_trace(context, settings, attempt, screencast=not secrets)
    await context.add_init_script(INIT_SCRIPT)
    page = await context.new_page()
    monitor = await PageMonitor.attach(context, page)
    await monitor.emulate(conditions)
    journey_deadline = time.monotonic() + spec.timeout
    results: list[StepResult] = []
    for index, step in enumerate(spec.steps, start=1):
        if results and results[-1].status in (Status.FAILED, Status.SKIPPED):
            results.append(_skipped(step))
            continue
        result = await _run_step(spec, step, page, monitor, journey_deadline)
        results.append(result)
        if result.status is Status.FAILED:
            bound.warning(
                "step_failed",
                step=step.name,
                error_type=result.error_type,
                error=masker.mask(result.error_message or "")[:1000],
            )
            if not monitor.pending_navigation() and not monitor.crashed:
                await capture_page(
                    page,
                    evidence,
                    step=step.name,
                    prefix=f"step-{index:02d}",
                    settings=settings,
                    masker=masker,
                    secrets=secrets,
                )
    await monitor.settle()
    steps, pages = [_with_interaction(r, monitor) for r in results], monitor.results()
    failed = any(r.status is Status.FAILED for r in steps)
    budgets = check_budgets(
        spec.budgets,
        steps=spec.steps,
        step_results=steps,
        pages=pages,
        clicks=_clicks(spec, steps),
        duration=time.time() - started,
    )
    slow = bool(budgets)
    if not failed and (settings.screenshots == "always" or slow):
        await capture_page(
            page,
            evidence,
            step=steps[-1].name,
            prefix="final",
            settings=settings,
            masker=masker,
            secrets=secrets,
        )
    if tracing:
        keep = settings.trace == "always" or failed or slow
        await stop_trace(context, evidence, keep=keep, masker=masker)
    return steps, pages, budgets, evidence


def _clicks(spec: JourneySpec, steps: list[StepResult]) -> int:
    """Clicks the journey actually made (a failed click did not take the customer anywhere)."""
    return sum(
        1
        for s, r in zip(spec.steps, steps, strict=True)
        if s.action == "click" and r.status is Status.PASSED
    )


def _with_interaction(result: StepResult, monitor: PageMonitor) -> StepResult:
    """Interactions are reported after the next paint, so they are matched to steps at the end."""
    if result.action not in INTERACTIVE or result.status is Status.SKIPPED:
        return result
    end = result.started_at + result.duration_seconds
    return replace(result, interaction_seconds=monitor.interactions_between(result.started_at, end))


async def _run_step(
    spec: JourneySpec, step: Step, page: Page, monitor: PageMonitor, journey_deadline: float
) -> StepResult:
    monitor.step = step.name
    monitor.step_exceptions.clear()
    left = journey_deadline - time.monotonic()
    limit = min(step.timeout or spec.step_timeout, max(left, 0.001))
    deadline = Deadline(limit)
    started, clock = time.time(), time.monotonic()
    failure: StepFailure | None = None
    try:
        await asyncio.wait_for(
            _step_body(spec, step, page, monitor, deadline), limit + GRACE_SECONDS
        )
    except StepFailure as exc:
        failure = exc
    except TimeoutError:
        failure = StepFailure(ErrorType.TIMEOUT, f"step did not finish within {limit:.1f}s")
    if failure is not None and left < (step.timeout or spec.step_timeout):
        failure = StepFailure(
            failure.error_type,
            f"{failure.message} (journey deadline of {spec.timeout:.0f}s reached)",
        )
    failure = _js_failure(spec, monitor, failure)
    if monitor.crashed:
        failure = StepFailure(ErrorType.BROWSER_ERROR, "the page crashed")
    elif failure is not None and _browser_gone(page):
        failure = StepFailure(
            ErrorType.BROWSER_ERROR, f"the browser closed or crashed ({failure.message})"
        )
    return StepResult(
        name=step.name,
        action=step.action,
        status=Status.FAILED if failure else Status.PASSED,
        started_at=started,
        duration_seconds=time.monotonic() - clock,
        error_type=failure.error_type if failure else None,
        error_message=failure.message if failure else None,
    )


async def _step_body(
    spec: JourneySpec, step: Step, page: Page, monitor: PageMonitor, deadline: Deadline
) -> None:
    documents_before = len(monitor.documents)
    await perform(page, step, spec.base_url, deadline, monitor.pending_navigation)
    _raise_for_documents(monitor, documents_before)
    for expectation in step.expect:
        await check(page, expectation, deadline)


def _raise_for_documents(monitor: PageMonitor, since: int) -> None:
    """A page the step loaded answered with an HTTP error: say which and with what."""
    for document in monitor.documents[since:]:
        if document.status is not None and document.status >= 400:
            raise StepFailure(
                ErrorType.HTTP_ERROR,
                f"HTTP {document.status} for {document.method} {document.url}",
            )


def _js_failure(
    spec: JourneySpec, monitor: PageMonitor, failure: StepFailure | None
) -> StepFailure | None:
    """An uncaught exception is the likely root cause of whatever else went wrong."""
    if not monitor.step_exceptions or not spec.fail_on_js_error:
        return failure
    message = f"uncaught exception: {monitor.step_exceptions[0]}"
    if failure is not None and failure.error_type is not ErrorType.HTTP_ERROR:
        message += f" (then: {failure.message})"
    elif failure is not None:
        return failure
    return StepFailure(ErrorType.JS_ERROR, message)


def _browser_gone(page: Page) -> bool:
    """Chromium died under the step: whatever the step saw then was the browser's fault."""
    browser = page.context.browser
    return page.is_closed() or (browser is not None and not browser.is_connected())


def _skipped(step: Step) -> StepResult:
    return StepResult(step.name, step.action, Status.SKIPPED, time.time(), 0.0)


def _all_skipped(steps: Sequence[Step], failure: StepFailure) -> list[StepResult]:
    first, *rest = steps
    failed = StepResult(
        first.name,
        first.action,
        Status.FAILED,
        time.time(),
        0.0,
        failure.error_type,
        failure.message,
    )
    return [failed, *(_skipped(step) for step in rest)]


async def _close(context: BrowserContext) -> None:
    try:
        await asyncio.wait_for(context.close(), 10)
    except (Error, TimeoutError) as exc:
        log.warning("context_close_failed", error=first_line(str(exc)))


def _finish(
    spec: JourneySpec,
    *,
    request: RunRequest,
    run_id: str,
    started: float,
    steps: list[StepResult],
    pages: list[PageResult],
    budgets: list[BudgetCheck],
    masker: Masker,
    bound: structlog.typing.FilteringBoundLogger | None = None,
    conditions: dict[str, Any] | None = None,
    artifacts: list[Artifact] | None = None,
) -> RunResult:
    """The verdict from steps and budgets (checked once, by the caller), masked and fitted."""
    finished = time.time()
    clicks = _clicks(spec, steps)
    failed_step = next((s for s in steps if s.status is Status.FAILED), None)
    status, error_type, message = Status.PASSED, None, None
    if failed_step is not None:
        status, error_type, message = (
            Status.FAILED,
            failed_step.error_type,
            failed_step.error_message,
        )
    elif any(b.level == "fail" for b in budgets):
        status, error_type = Status.FAILED, ErrorType.BUDGET_EXCEEDED
        message = describe(b for b in budgets if b.level == "fail")
    elif budgets:
        status, message = Status.DEGRADED, describe(budgets)
    result = RunResult(
        run_id=run_id,
        journey=spec.name,
        kind=KIND,
        device=request.device,
        location=request.location,
        agent=request.agent,
        started_at=started,
        finished_at=finished,
        status=status,
        clicks=clicks,
        click_budget=spec.click_budget,
        steps=tuple(steps),
        pages=tuple(pages),
        budgets=tuple(budgets),
        error_type=error_type,
        error_message=message,
        failed_step=failed_step.name if failed_step else None,
        attempt=request.attempt,
        conditions=conditions or {},
        interval_seconds=spec.interval,
        artifacts=tuple(artifacts or ()),
        run_url=f"{request.run_page_base.rstrip('/')}/status/runs/{run_id}"
        if request.run_page_base
        else None,
    )
    if bound is not None:
        bound.info(
            "run_finished",
            status=status.value,
            error_type=error_type,
            duration=round(result.duration_seconds, 3),
            clicks=clicks,
        )
    return _masked_and_fitted(result, masker)


def _masked_and_fitted(result: RunResult, masker: Masker) -> RunResult:
    """Secrets masked in every string (messages, URLs, console lines), then every field cut
    to the contract's limits: a run with a 10 kB URL is reported, not refused."""
    document = to_dict(result)
    if masker:
        document = cast(dict[str, Any], masker.mask_data(document))
    return from_dict(fit_document(document))
