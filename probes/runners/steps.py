"""Performing one step's action and checking its expectations in a real page.

Every Playwright exception is turned into a StepFailure with one of the
bounded error types and a message that names the locator, what was
expected and what was found.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

from playwright.async_api import Error, Page, expect
from playwright.async_api import TimeoutError as PwTimeoutError

from probes.config.durations import format_duration
from probes.config.model import Capture, Expectation, Locator, Step, fill_captures
from probes.result import ErrorType, first_line, shorten
from probes.runners import python_step
from probes.runners.failures import StepFailure
from probes.runners.locators import all_matches, ambiguity, candidates, visible

# Looking whether a locator matches anything, after a timeout: generous, because a busy
# machine answers slowly and "missing" or "hidden" is what on-call reads first.
COUNT_TIMEOUT_SECONDS = 3.0


class Deadline:
    """Time left for a step, handed to each Playwright call in milliseconds."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def ms(self) -> float:
        """Milliseconds left, at least 1 so that Playwright never reads 0 as 'no timeout'."""
        return max(1.0, (self._end - time.monotonic()) * 1000)


async def perform(
    page: Page,
    step: Step,
    run: StepContext,
    deadline: Deadline,
    pending_navigation: Callable[[], str | None],
) -> None:
    """Do the step's action, then wait for any page it started loading."""
    try:
        await _act(page, step, run, deadline)
        await page.wait_for_load_state("load", timeout=deadline.ms())
    except PwTimeoutError as exc:
        waiting = pending_navigation()
        if waiting is not None:  # the page itself is still waiting for its server
            limit = format_duration(deadline.seconds)
            raise StepFailure(
                ErrorType.TIMEOUT, f"no response within {limit} for {waiting}"
            ) from None
        raise await _timeout_failure(page, step, deadline, exc) from None
    except Error as exc:
        target = _locator_of(step)
        message = await ambiguity(page, target, exc) if target is not None else None
        if message is not None:
            raise StepFailure(ErrorType.AMBIGUOUS_LOCATOR, message) from None
        raise _error_failure(step, exc) from None


def _locator_of(step: Step) -> Locator | None:
    """The element the step acts on, if any (``press`` acts on ``on`` when given)."""
    if step.action == "press":
        return step.on
    target = getattr(step, step.action)
    return target if isinstance(target, Locator) else None


@dataclass
class StepContext:
    """What a step may use besides the page: the journey's base URL and where its config
    lives, and the values earlier steps captured (which a step may add to)."""

    base_url: str | None
    source: str = ""
    captures: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        """``{{name}}`` replaced by its captured value (checked at load to exist)."""
        return fill_captures(text, self.captures)


async def _act(page: Page, step: Step, run: StepContext, deadline: Deadline) -> None:
    action = step.action
    if action == "goto":
        path = run.fill(str(step.goto))
        url = urljoin(run.base_url, path) if run.base_url else path
        await page.goto(url, timeout=deadline.ms(), wait_until="load")
    elif action == "press":
        key = run.fill(str(step.press))
        if step.on is not None:
            await visible(page, step.on).press(key, timeout=deadline.ms())
        else:
            await page.keyboard.press(key)
    elif action == "wait_for_load":
        await page.wait_for_load_state(step.wait_for_load, timeout=deadline.ms())
    elif action == "python":
        function = python_step.load(str(step.python), run.source)
        run.captures.update(
            await asyncio.wait_for(
                python_step.call(function, page, run.captures), deadline.ms() / 1000
            )
        )
    else:
        await _on_element(page, step, run, deadline)


async def _on_element(page: Page, step: Step, run: StepContext, deadline: Deadline) -> None:
    action, target = step.action, visible(page, _target(step))
    if action == "click":
        await target.click(timeout=deadline.ms())
    elif action == "fill":
        await target.fill(run.fill(str(step.value)), timeout=deadline.ms())
    elif action == "select":
        await target.select_option(run.fill(str(step.option)), timeout=deadline.ms())
    elif action == "check":
        await target.check(timeout=deadline.ms())
    elif action == "uncheck":
        await target.uncheck(timeout=deadline.ms())
    elif action == "hover":
        await target.hover(timeout=deadline.ms())
    else:
        state = step.state or "visible"
        if state in ("attached", "detached"):  # about the DOM, visible or not
            wanted = _target(step)
            target = all_matches(page, wanted)
            target = target.nth(wanted.nth) if wanted.nth is not None else target
        await target.wait_for(state=state, timeout=deadline.ms())


async def read_captures(page: Page, step: Step, run: StepContext, deadline: Deadline) -> None:
    """Read what the step captures off the page, into the run's captures."""
    for name, capture in step.capture.items():
        if capture.url:
            raw: str | None = page.url
        elif capture.text is not None:
            raw = await _read(page, capture.text, deadline, None)
        else:
            raw = await _read(page, _capture_of(capture), deadline, capture.attribute)
        value = _matched(raw, capture.pattern)
        if value is None:
            raise StepFailure(
                ErrorType.ASSERTION_FAILED,
                f"capture '{name}' found nothing"
                + (f" matching /{capture.pattern}/ in {shorten(raw, 120)!r}" if raw else "")
                + f" on {page.url}",
            )
        run.captures[name] = value


def _capture_of(capture: Capture) -> Locator:
    assert capture.of is not None  # guaranteed by Capture validation
    return capture.of


async def _read(page: Page, locator: Locator, deadline: Deadline, attribute: str | None) -> str:
    target = visible(page, locator)
    try:
        if attribute is not None:
            return await target.get_attribute(attribute, timeout=deadline.ms()) or ""
        return await target.inner_text(timeout=deadline.ms())
    except PwTimeoutError:
        missing = await _why_missing(page, locator, format_duration(deadline.seconds))
        raise StepFailure(
            ErrorType.ELEMENT_NOT_FOUND, missing or f"could not read {locator.describe()}"
        ) from None


def _matched(raw: str | None, pattern: str | None) -> str | None:
    """The captured value: the regex's first group, or its whole match, or the raw text."""
    if raw is None:
        return None
    if pattern is None:
        return raw.strip() or None
    found = re.search(pattern, raw)
    if found is None:
        return None
    return found.group(1) if found.groups() else found.group(0)


def _target(step: Step) -> Locator:
    target = getattr(step, step.action)
    assert isinstance(target, Locator)  # guaranteed by Step validation
    return target


async def _timeout_failure(
    page: Page, step: Step, deadline: Deadline, exc: PwTimeoutError
) -> StepFailure:
    limit = format_duration(deadline.seconds)
    locator = _locator_of(step)
    if locator is None:
        return StepFailure(ErrorType.TIMEOUT, f"page did not load within {limit}: {page.url}")
    missing = await _why_missing(page, locator, limit)
    if missing is not None:
        return StepFailure(ErrorType.ELEMENT_NOT_FOUND, missing)
    return StepFailure(
        ErrorType.TIMEOUT,
        f"{step.action} on {locator.describe()} did not complete within {limit}: "
        f"{first_line(str(exc.message))}",
    )


async def _why_missing(page: Page, locator: Locator, limit: str) -> str | None:
    """Tell "does not exist" from "exists but hidden" (a search box behind the menu);
    None when the element was there and the action itself timed out."""
    everything = all_matches(page, locator)
    try:
        total, shown = await asyncio.wait_for(
            asyncio.gather(everything.count(), everything.filter(visible=True).count()),
            COUNT_TIMEOUT_SECONDS,
        )
    except (Error, TimeoutError):
        return None
    if total == 0:
        return f"no element matches {locator.describe()} on {page.url} after {limit}"
    if shown == 0:
        listing = "; ".join(await candidates(everything))
        return (
            f"{locator.describe()} exists but is hidden on {page.url} after {limit} "
            f"({total} matching, none visible: behind a menu, a banner or a closed dialog?): "
            f"{listing}"
        )
    if locator.nth is not None and not -shown <= locator.nth < shown:
        return (
            f"nth={locator.nth} asks for more than the {shown} visible elements matching "
            f"{locator.describe()} on {page.url}"
        )
    return None


def _error_failure(step: Step, exc: Error) -> StepFailure:
    message = first_line(str(exc.message))
    if "net::ERR_" in message or "NS_ERROR" in message:
        return StepFailure(ErrorType.NAVIGATION_ERROR, f"{step.action} failed: {message}")
    if "crash" in message.lower() or "closed" in message.lower():
        return StepFailure(
            ErrorType.BROWSER_ERROR, f"browser failed during {step.action}: {message}"
        )
    return StepFailure(ErrorType.BROWSER_ERROR, f"{step.action} failed: {message}")


async def check(page: Page, expectation: Expectation, deadline: Deadline) -> None:
    """Wait until the expectation holds, or fail saying what was there instead."""
    timeout = deadline.ms()
    try:
        if expectation.text is not None or expectation.text_matches is not None:
            found = page.get_by_text(_text_matcher(expectation), exact=expectation.exact)
            await expect(found.filter(visible=True).first).to_be_visible(timeout=timeout)
        elif expectation.visible is not None:
            # Seeing it is what matters: any one visible match will do.
            await expect(visible(page, expectation.visible).first).to_be_visible(timeout=timeout)
        elif expectation.hidden is not None:
            # Hidden means no visible match at all.
            await expect(visible(page, expectation.hidden)).to_have_count(0, timeout=timeout)
        elif expectation.url is not None:
            await expect(page).to_have_url(re.compile(expectation.url), timeout=timeout)
        elif expectation.title is not None:
            await expect(page).to_have_title(re.compile(expectation.title), timeout=timeout)
    except AssertionError:
        raise StepFailure(ErrorType.ASSERTION_FAILED, await _describe(page, expectation)) from None
    except Error as exc:
        raise _error_failure_for_check(exc) from None


def _text_matcher(expectation: Expectation) -> str | re.Pattern[str]:
    """What get_by_text receives: the text (substring, any case; or exact) or a regex."""
    if expectation.text_matches is not None:
        return re.compile(expectation.text_matches)
    text = str(expectation.text)
    return re.compile(re.escape(text)) if expectation.case_sensitive else text


def _error_failure_for_check(exc: Error) -> StepFailure:
    return StepFailure(
        ErrorType.BROWSER_ERROR, f"could not check the page: {first_line(exc.message)}"
    )


async def _describe(page: Page, expectation: Expectation) -> str:
    if expectation.text is not None or expectation.text_matches is not None:
        return f"expected {expectation.describe_text()} to be visible on {page.url}; it was not"
    if expectation.visible is not None:
        return f"expected {expectation.visible.describe()} to be visible on {page.url}; it was not"
    if expectation.hidden is not None:
        return (
            f"expected {expectation.hidden.describe()} to be hidden on {page.url}; it was visible"
        )
    if expectation.url is not None:
        return f"expected the URL to match /{expectation.url}/, got {page.url}"
    try:
        title = await page.title()
    except Error:
        title = "(unreadable)"
    return f'expected the title to match /{expectation.title}/, got "{title}"'
