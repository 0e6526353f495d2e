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
from urllib.parse import urljoin

from playwright.async_api import Error, Page, expect
from playwright.async_api import TimeoutError as PwTimeoutError

from probes.config.durations import format_duration
from probes.config.model import Expectation, Locator, Step
from probes.result import ErrorType, first_line
from probes.runners.failures import StepFailure
from probes.runners.locators import resolve

COUNT_TIMEOUT_SECONDS = 1.0  # looking whether a locator matches anything, after a timeout


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
    base_url: str | None,
    deadline: Deadline,
    pending_navigation: Callable[[], str | None],
) -> None:
    """Do the step's action, then wait for any page it started loading."""
    try:
        await _act(page, step, base_url, deadline)
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
        raise _error_failure(step, exc) from None


async def _act(page: Page, step: Step, base_url: str | None, deadline: Deadline) -> None:
    action = step.action
    if action == "goto":
        url = urljoin(base_url, step.goto) if base_url else str(step.goto)
        await page.goto(url, timeout=deadline.ms(), wait_until="load")
    elif action == "press":
        if step.on is not None:
            await resolve(page, step.on).press(str(step.press), timeout=deadline.ms())
        else:
            await page.keyboard.press(str(step.press))
    else:
        target = resolve(page, _target(step))
        if action == "click":
            await target.click(timeout=deadline.ms())
        elif action == "fill":
            await target.fill(str(step.value), timeout=deadline.ms())
        elif action == "select":
            await target.select_option(str(step.option), timeout=deadline.ms())
        elif action == "hover":
            await target.hover(timeout=deadline.ms())
        else:
            await target.wait_for(state=step.state or "visible", timeout=deadline.ms())


def _target(step: Step) -> Locator:
    target = getattr(step, step.action)
    assert isinstance(target, Locator)  # guaranteed by Step validation
    return target


async def _timeout_failure(
    page: Page, step: Step, deadline: Deadline, exc: PwTimeoutError
) -> StepFailure:
    limit = format_duration(deadline.seconds)
    if step.action in ("goto", "press") and step.on is None:
        return StepFailure(ErrorType.TIMEOUT, f"page did not load within {limit}: {page.url}")
    locator = _target(step) if step.action != "press" else step.on
    assert locator is not None
    try:
        count = await asyncio.wait_for(resolve(page, locator).count(), COUNT_TIMEOUT_SECONDS)
    except (Error, TimeoutError):
        count = -1
    if count == 0:
        return StepFailure(
            ErrorType.ELEMENT_NOT_FOUND,
            f"no element matches {locator.describe()} on {page.url} after {limit}",
        )
    return StepFailure(
        ErrorType.TIMEOUT,
        f"{step.action} on {locator.describe()} did not complete within {limit}: "
        f"{first_line(str(exc.message))}",
    )


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
        if expectation.text is not None:
            await expect(page.get_by_text(expectation.text).first).to_be_visible(timeout=timeout)
        elif expectation.visible is not None:
            await expect(resolve(page, expectation.visible)).to_be_visible(timeout=timeout)
        elif expectation.hidden is not None:
            await expect(resolve(page, expectation.hidden)).to_be_hidden(timeout=timeout)
        elif expectation.url is not None:
            await expect(page).to_have_url(re.compile(expectation.url), timeout=timeout)
        elif expectation.title is not None:
            await expect(page).to_have_title(re.compile(expectation.title), timeout=timeout)
    except AssertionError:
        raise StepFailure(ErrorType.ASSERTION_FAILED, await _describe(page, expectation)) from None
    except Error as exc:
        raise _error_failure_for_check(exc) from None


def _error_failure_for_check(exc: Error) -> StepFailure:
    return StepFailure(
        ErrorType.BROWSER_ERROR, f"could not check the page: {first_line(exc.message)}"
    )


async def _describe(page: Page, expectation: Expectation) -> str:
    if expectation.text is not None:
        return f'expected text "{expectation.text}" to be visible on {page.url}; it was not'
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
