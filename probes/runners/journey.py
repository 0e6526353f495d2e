"""The browser journey kind: run a journey's steps in a fresh context of the shared Chromium.

A run never raises for something that happened to the site or the browser:
it returns a RunResult that says what failed, where, and why. Steps after a
failure are recorded as skipped; the context is closed in ``finally``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

import structlog
from playwright.async_api import Browser, BrowserContext, Error, Page

from probes.browser import BrowserManager, BrowserUnavailableError
from probes.conditions import Conditions, resolve_conditions
from probes.config.model import OPTIONAL_TIMEOUT_SECONDS, Step
from probes.config.spec import JourneySpec
from probes.result import (
    BrowserSection,
    BudgetCheck,
    ErrorType,
    PageResult,
    RunResult,
    Status,
    StepResult,
    first_line,
)
from probes.runners import dispatch
from probes.runners.budgets import check_budgets, js_error_checks
from probes.runners.evidence import (
    Evidence,
    capture_page,
    secret_fields,
    start_trace,
    stop_trace,
)
from probes.runners.failures import StepFailure
from probes.runners.outcome import (
    RunContext,
    RunOutcome,
    RunRequest,
    failed_first,
    finish_run,
    skipped,
    step_result,
)
from probes.runners.page_monitor import INIT_SCRIPT, PageMonitor
from probes.runners.steps import Deadline, StepContext, check, perform, read_captures
from probes.secrets import Masker

log = structlog.get_logger(__name__)
# Failures that explain any exception a page threw after them (a missing script's "$ is not
# defined"): they are reported as the cause, not the exception.
ROOT_CAUSES = frozenset({ErrorType.HTTP_ERROR, ErrorType.NAVIGATION_ERROR})
# How an optional step is "not there": anything else (an HTTP 500) fails it like any step.
OPTIONAL_MISSES = frozenset({ErrorType.ELEMENT_NOT_FOUND, ErrorType.TIMEOUT})
CLEANUP_SECONDS = 30.0  # all clean-up steps together, after the journey's own deadline
GRACE_SECONDS = 5.0  # room for saying why (missing, hidden, ambiguous) after a timeout
INTERACTIVE = frozenset(
    {"click", "fill", "select", "press", "hover"}
)  # beyond a step's own timeout, before we stop waiting on Playwright


async def run(
    spec: JourneySpec, browsers: BrowserManager, request: RunRequest, masker: Masker
) -> RunResult:
    """Run one journey once, keeping only the result (artifacts are dropped: see run_outcome)."""
    return (await run_outcome(spec, browsers, request, masker)).result


async def run_outcome(
    spec: JourneySpec, browsers: BrowserManager, request: RunRequest, masker: Masker
) -> RunOutcome:
    """Run one journey once through the wrapper every kind of run goes through."""
    return await dispatch.run_check(spec, request, masker, browsers)


def planned_steps(spec: JourneySpec) -> list[tuple[str, str]]:
    """The journey's steps, for a run that fails before its first one (those of every
    device: the run never got far enough to know)."""
    return [(step.name, step.action) for step in spec.steps]


async def run_check(spec: JourneySpec, context: RunContext) -> RunOutcome:
    """The browser kind: a fresh context of the shared Chromium, every step in it."""
    request, masker, bound = context.request, context.masker, context.log
    browsers = context.browsers
    if browsers is None:
        raise StepFailure(ErrorType.BROWSER_ERROR, "no browser manager was given to a journey")
    try:
        browser = await browsers.get()
        options, conditions = device_setup(spec, browsers, request.device)
    except BrowserUnavailableError as exc:
        failure = StepFailure(ErrorType.BROWSER_ERROR, str(exc))
        return _failed_before_steps(spec, context, time.time(), failure)
    # The clock starts once Chromium is up: a launch is the agent's cost, not the site's.
    started = time.time()
    try:
        browser_context = await _open_context(browsers, browser, options)
    except (Error, BrowserUnavailableError) as exc:
        failure = StepFailure(
            ErrorType.BROWSER_ERROR, f"no browser context: {first_line(str(exc))}"
        )
        return _failed_before_steps(spec, context, started, failure)
    try:
        ran = await _run_in_context(
            spec,
            browser_context,
            bound,
            masker,
            conditions=conditions,
            request=request,
            started=started,
        )
    finally:
        await _close(browser_context)
    steps, evidence = ran.steps, ran.evidence
    browser_section = BrowserSection(
        _clicks(ran.planned, steps),
        spec.click_budget,
        tuple(ran.pages),
        captures=dict(ran.run.captures),
        cleanup=tuple(ran.cleanup),
    )
    result = finish_run(
        spec,
        context,
        started=started,
        steps=steps,
        budgets=ran.budgets,
        masker=masker.extended(ran.secrets),
        browser=browser_section,
        conditions={
            **conditions.describe(),
            "viewport": options.get("viewport"),
            "user_agent": options.get("user_agent"),
        },
        artifacts=tuple(evidence.artifacts),
    )
    return RunOutcome(result, evidence.blobs)


def _failed_before_steps(
    spec: JourneySpec, context: RunContext, started: float, failure: StepFailure
) -> RunOutcome:
    """A run that never got a browser: its first step carries why."""
    steps = failed_first(planned_steps(spec), failure)
    browser = BrowserSection(clicks=0, click_budget=spec.click_budget)
    result = finish_run(spec, context, started=started, steps=steps, browser=browser)
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


@dataclass
class _Ran:
    """What a journey's run in its browser context produced."""

    planned: list[Step]
    steps: list[StepResult]
    pages: list[PageResult]
    budgets: list[BudgetCheck]
    evidence: Evidence
    run: StepContext
    cleanup: list[StepResult]
    secrets: list[str]


async def _run_in_context(
    spec: JourneySpec,
    context: BrowserContext,
    bound: structlog.typing.FilteringBoundLogger,
    masker: Masker,
    *,
    conditions: Conditions,
    request: RunRequest,
    started: float,
) -> _Ran:
    evidence = Evidence()
    settings = spec.evidence
    planned = [step for step in spec.steps if step.runs_on(request.device)]
    secrets = secret_fields((*spec.steps, *spec.cleanup), masker)  # clean-up types too
    # A screencast frame would show a typed secret legibly: no frames when one is typed.
    tracing = await start_trace(context, settings, request.attempt, screencast=not secrets)
    await context.add_init_script(INIT_SCRIPT)
    page = await context.new_page()
    monitor = await PageMonitor.attach(context, page)
    await monitor.emulate(conditions)
    journey_deadline = time.monotonic() + spec.timeout
    run = StepContext(spec.base_url, spec.source)
    results: list[StepResult] = []
    for index, step in enumerate(planned, start=1):
        if any(r.status is Status.FAILED for r in results):
            results.append(_skipped(step))
            continue
        result = await _run_step(spec, step, page, monitor, journey_deadline, run)
        results.append(result)
        if result.status is Status.FAILED:
            bound.warning(
                "step_failed",
                step=step.name,
                error_type=result.error_type,
                error=_with_captured(masker, spec, run).mask(result.error_message or "")[:1000],
            )
            if not monitor.pending_navigation() and not monitor.crashed:
                await capture_page(
                    page,
                    evidence,
                    step=step.name,
                    prefix=f"step-{index:02d}",
                    settings=settings,
                    masker=_with_captured(masker, spec, run),
                    secrets=secrets,
                )
    await monitor.settle()
    await monitor.end_cpu_slowdown()  # the rest (evidence, clean-up, closing) is not measured
    steps, pages = [_with_interaction(r, monitor) for r in results], monitor.results()
    failed = any(r.status is Status.FAILED for r in steps)
    budgets = check_budgets(
        spec.budgets,
        steps=planned,
        step_results=steps,
        pages=pages,
        clicks=_clicks(planned, steps),
        duration=time.time() - started,
    ) + js_error_checks(spec.js_errors, pages)
    slow = bool(budgets)
    if not failed and (settings.screenshots == "always" or slow):
        await capture_page(
            page,
            evidence,
            step=steps[-1].name,
            prefix="final",
            settings=settings,
            masker=_with_captured(masker, spec, run),
            secrets=secrets,
        )
    cleanup = await _run_cleanup(spec, page, monitor, run, request.device)
    if tracing:
        keep = settings.trace == "always" or failed or slow
        await stop_trace(context, evidence, keep=keep, masker=_with_captured(masker, spec, run))
    captured_secrets = _captured_secrets(spec, run)
    return _Ran(planned, steps, pages, budgets, evidence, run, cleanup, captured_secrets)


def _captured_secrets(spec: JourneySpec, run: StepContext) -> list[str]:
    """Values captured so far that the config marks ``secret: true`` (a one-time code)."""
    return [
        run.captures[name]
        for step in (*spec.steps, *spec.cleanup)
        for name, capture in step.capture.items()
        if capture.secret and name in run.captures
    ]


def _with_captured(masker: Masker, spec: JourneySpec, run: StepContext) -> Masker:
    """The run's masker, knowing the secrets captured so far: evidence taken after a
    secret was captured (its HTML, its trace) masks it like a configured one."""
    return masker.extended(_captured_secrets(spec, run))


async def _run_cleanup(
    spec: JourneySpec, page: Page, monitor: PageMonitor, run: StepContext, device: str
) -> list[StepResult]:
    """The clean-up steps, whatever happened before (as ``finally``), on their own clock:
    a journey that used all its time still cancels its test order."""
    steps = [step for step in spec.cleanup if step.runs_on(device)]
    if not steps or page.is_closed():
        return []
    deadline = time.monotonic() + CLEANUP_SECONDS
    results: list[StepResult] = []
    for step in steps:
        if any(r.status is Status.FAILED for r in results):
            results.append(_skipped(step))
            continue
        results.append(await _run_step(spec, step, page, monitor, deadline, run, cleanup=True))
    return results


def _clicks(steps: list[Step], results: list[StepResult]) -> int:
    """Clicks the journey actually made (a failed click did not take the customer anywhere)."""
    return sum(
        1
        for s, r in zip(steps, results, strict=True)
        if s.action == "click" and r.status is Status.PASSED
    )


def _with_interaction(result: StepResult, monitor: PageMonitor) -> StepResult:
    """Interactions are reported after the next paint, so they are matched to steps at the end."""
    if result.action not in INTERACTIVE or result.status is Status.SKIPPED:
        return result
    end = result.started_at + result.duration_seconds
    return replace(result, interaction_seconds=monitor.interactions_between(result.started_at, end))


async def _run_step(  # noqa: PLR0917 - the step, where it runs, and the run's shared state
    spec: JourneySpec,
    step: Step,
    page: Page,
    monitor: PageMonitor,
    journey_deadline: float,
    run: StepContext,
    *,
    cleanup: bool = False,
) -> StepResult:
    monitor.step = step.name
    monitor.step_exceptions.clear()
    monitor.step_third_party_exceptions.clear()
    left = journey_deadline - time.monotonic()
    own = step.timeout or (OPTIONAL_TIMEOUT_SECONDS if step.optional else spec.step_timeout)
    limit = min(own, max(left, 0.001))
    deadline = Deadline(limit)
    started, clock = time.time(), time.monotonic()
    failure: StepFailure | None = None
    try:
        await asyncio.wait_for(
            _step_body(step, page, monitor, deadline, run), limit + GRACE_SECONDS
        )
    except StepFailure as exc:
        failure = exc
    except TimeoutError:
        failure = StepFailure(ErrorType.TIMEOUT, f"step did not finish within {limit:.1f}s")
    if failure is not None and left < own and not cleanup:
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
    result = step_result(step.name, step.action, started=started, clock=clock, failure=failure)
    if failure is not None and step.optional and failure.error_type in OPTIONAL_MISSES:
        # Not there this time (a cookie banner that comes and goes): skipped, said why.
        return replace(
            result,
            status=Status.SKIPPED,
            error_type=None,
            error_message=f"optional step not done: {failure.message}",
        )
    return result


async def _step_body(
    step: Step, page: Page, monitor: PageMonitor, deadline: Deadline, run: StepContext
) -> None:
    documents_before = len(monitor.documents)
    await perform(page, step, run, deadline, monitor.pending_navigation)
    _raise_for_documents(monitor, documents_before)
    for expectation in step.expect:
        await check(page, expectation, deadline)
    await read_captures(page, step, run, deadline)


def _raise_for_documents(monitor: PageMonitor, since: int) -> None:
    """A page the step loaded failed to load (Chromium then shows its error page, which
    must not be checked or measured as the site) or answered with an HTTP error."""
    for document in monitor.navigation_errors(since):
        raise StepFailure(
            ErrorType.NAVIGATION_ERROR,
            f"{document.method} {document.url} failed: {document.navigation_error}",
        )
    for document in monitor.documents[since:]:
        if document.status is not None and document.status >= 400:
            raise StepFailure(
                ErrorType.HTTP_ERROR,
                f"HTTP {document.status} for {document.method} {document.url}",
            )


def _js_failure(
    spec: JourneySpec, monitor: PageMonitor, failure: StepFailure | None
) -> StepFailure | None:
    """An uncaught exception the policy says fails the run is the likely root cause of
    whatever else went wrong (unless a page failed to load first)."""
    policy = spec.js_errors
    thrown = (monitor.step_exceptions if policy.own == "fail" else []) + (
        monitor.step_third_party_exceptions if policy.third_party == "fail" else []
    )
    if not thrown:
        return failure
    message = f"uncaught exception: {thrown[0]}"
    if failure is not None and failure.error_type not in ROOT_CAUSES:
        message += f" (then: {failure.message})"
    elif failure is not None:
        return failure
    return StepFailure(ErrorType.JS_ERROR, message)


def _browser_gone(page: Page) -> bool:
    """Chromium died under the step: whatever the step saw then was the browser's fault."""
    browser = page.context.browser
    return page.is_closed() or (browser is not None and not browser.is_connected())


def _skipped(step: Step) -> StepResult:
    return skipped(step.name, step.action)


async def _close(context: BrowserContext) -> None:
    try:
        await asyncio.wait_for(context.close(), 10)
    except (Error, TimeoutError) as exc:
        log.warning("context_close_failed", error=first_line(str(exc)))
