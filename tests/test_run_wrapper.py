"""A run never vanishes: whatever breaks, it ends as a result that says what and where."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
from playwright.async_api import Error

from probes.browser import BrowserManager
from probes.demo_shop.server import RunningShop
from probes.result import TEXT_MAX, URL_MAX, ErrorType, Status, from_dict, to_dict
from probes.runners import journey as journey_runner
from probes.runners.journey import run
from probes.runners.outcome import RunRequest
from tests.conftest import RunJourney, config_from, demo_journey
from tests.test_browser_recovery import chromium_main_processes

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Error("Target page, context or browser has been closed"), ErrorType.BROWSER_ERROR),
        (RuntimeError("a bug in Parcours"), ErrorType.AGENT_ERROR),
        (TimeoutError(), ErrorType.TIMEOUT),
    ],
    ids=["playwright-error", "unexpected-error", "timeout"],
)
async def test_an_error_while_setting_up_the_page_is_a_failed_result_not_a_lost_run(
    run_journey: RunJourney, monkeypatch: pytest.MonkeyPatch, error: Exception, expected: ErrorType
) -> None:
    async def broken_attach(*_: Any) -> Any:
        raise error

    monkeypatch.setattr(journey_runner.PageMonitor, "attach", broken_attach)

    result = await run_journey(demo_journey())

    assert result.status is Status.FAILED
    assert (result.error_type, result.failed_step) == (expected, "open home page")
    assert "the run could not complete" in (result.error_message or "")
    assert [s.status for s in result.steps][1:] == [Status.SKIPPED] * 3


async def test_budgets_are_checked_once_per_run(
    run_journey: RunJourney, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    real = journey_runner.check_budgets

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["duration"])
        return real(*args, **kwargs)

    monkeypatch.setattr(journey_runner, "check_budgets", counted)

    result = await run_journey(demo_journey())

    assert result.status is Status.PASSED, result.error_message
    assert len(calls) == 1


async def test_a_failed_request_with_a_huge_url_is_reported_cut_not_refused(
    run_journey: RunJourney,
) -> None:
    long_path = "/missing?" + "q" * 10_000

    result = await run_journey(
        f"""
journeys:
  - name: long-url
    base_url: ${{SHOP}}
    retries: 0
    steps:
      - name: broken link
        goto: {long_path}
"""
    )

    assert (result.status, result.error_type) == (Status.FAILED, ErrorType.HTTP_ERROR)
    assert len(result.error_message or "") <= TEXT_MAX
    assert all(len(page.url) <= URL_MAX for page in result.browser.pages)
    failed = [r for page in result.browser.pages for r in page.failed_requests]
    assert failed and all(len(r.url) <= URL_MAX for r in failed)
    assert from_dict(json.loads(json.dumps(to_dict(result)))) == result  # valid on the wire


async def test_chromium_killed_while_a_step_waits_for_text_is_a_browser_error(
    shop: RunningShop,
) -> None:
    config = config_from(
        """
journeys:
  - name: waiting
    base_url: ${SHOP}
    retries: 0
    step_timeout: 8s
    steps:
      - name: open home page
        goto: /
      - name: wait for a promise
        wait_for: {text: A promise that never comes}
""",
        shop,
    )
    already = set(chromium_main_processes(os.getpid()))  # the session's shared Chromium
    async with BrowserManager() as browsers:
        await browsers.get()
        (victim,) = set(chromium_main_processes(os.getpid())) - already

        async def crash_soon() -> None:
            await asyncio.sleep(2.0)  # the second step is waiting for its text by now
            os.kill(victim, signal.SIGKILL)

        crash = asyncio.create_task(crash_soon())
        result = await run(config.journeys[0], browsers, RunRequest("desktop"), config.masker)
        await crash

    assert result.status is Status.FAILED
    assert result.error_type is ErrorType.BROWSER_ERROR, (result.error_type, result.error_message)
