"""The journey engine against the real demo shop in real headless Chromium."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from probes.demo_shop.app import DELAYS
from probes.demo_shop.server import RunningShop
from probes.result import ErrorType, PageResult, RunResult, Status, to_dict
from tests.conftest import RunJourney, demo_journey

pytestmark = pytest.mark.slow


def step(result: RunResult, name: str) -> Any:
    return next(s for s in result.steps if s.name == name)


def page_of(result: RunResult, step_name: str) -> PageResult:
    return next(p for p in result.browser.pages if p.step == step_name)


async def test_healthy_checkout_passes_in_three_clicks_with_every_measure(
    run_journey: RunJourney,
) -> None:
    result = await run_journey(demo_journey())

    assert result.status is Status.PASSED, result.error_message
    assert (result.browser.clicks, result.browser.click_budget) == (3, 3)
    assert [s.status for s in result.steps] == [Status.PASSED] * 4
    assert [p.step for p in result.browser.pages] == [s.name for s in result.steps]
    for page in result.browser.pages:
        for measure in (
            "ttfb_seconds",
            "fcp_seconds",
            "lcp_seconds",
            "cls",
            "load_seconds",
            "dom_content_loaded_seconds",
        ):
            assert getattr(page, measure) is not None, (page.url, measure, page.missing)
        assert page.ratings["lcp_seconds"] == "good"
        assert page.transfer_bytes and page.transfer_bytes > 500
        assert page.requests >= 3
        assert page.failed_requests == ()
    home = page_of(result, "open home page")
    assert home.lcp_seconds and home.fcp_seconds and home.lcp_seconds >= home.fcp_seconds
    assert result.budgets == ()


async def test_measures_come_at_the_resolution_they_were_taken_with_no_float_noise(
    run_journey: RunJourney,
) -> None:
    """Browsers time pages in 0.1 ms steps through a 32-bit float (125.2 ms arrived as
    0.12520000000298023 s) and the monotonic clock counts nanoseconds: every scrape
    formatted those 17 digits (bench.metrics_values). Pages come at 0.1 ms, steps and the
    run at the microsecond."""
    result = await run_journey(demo_journey())

    assert result.status is Status.PASSED, result.error_message
    timings = ("ttfb_seconds", "fcp_seconds", "lcp_seconds", "dom_content_loaded_seconds")
    for page in result.browser.pages:
        for measure in (*timings, "load_seconds"):
            value = getattr(page, measure)
            assert value is not None and round(value, 4) == value, (page.step, measure, value)
    for taken in result.steps:
        assert round(taken.duration_seconds, 6) == taken.duration_seconds, taken
    assert round(result.duration_seconds, 6) == result.duration_seconds


async def test_mobile_run_reports_the_mobile_device(run_journey: RunJourney) -> None:
    result = await run_journey(demo_journey(), device="mobile")

    assert result.status is Status.PASSED, result.error_message
    assert result.device == "mobile"


@pytest.mark.parametrize(
    ("switches", "failed_step", "error_type", "message_part"),
    [
        ({"checkout_500": True}, "place order", ErrorType.HTTP_ERROR, "HTTP 500 for POST"),
        (
            {"hide_add_to_cart": True},
            "add to cart",
            ErrorType.ELEMENT_NOT_FOUND,
            'role=button[name="Add to cart"]',
        ),
        ({"js_error": True}, "open product", ErrorType.JS_ERROR, "price widget crashed"),
        ({"hang": "cart"}, "add to cart", ErrorType.TIMEOUT, "within"),
    ],
    ids=["checkout-500", "add-to-cart-missing", "js-exception", "hung-cart-page"],
)
async def test_each_fault_fails_the_right_step_with_the_right_error(
    run_journey: RunJourney,
    faults: Callable[..., None],
    switches: dict[str, Any],
    failed_step: str,
    error_type: ErrorType,
    message_part: str,
) -> None:
    faults(**switches)

    # The site's own exceptions fail the run when the journey says so (they degrade it by
    # default: tests/test_real_shop_steps.py).
    result = await run_journey(demo_journey("2s", extra="\n    js_errors: {own: fail}"))

    assert result.status is Status.FAILED
    assert (result.failed_step, result.error_type) == (failed_step, error_type)
    assert result.error_message and message_part in result.error_message
    names = [s.name for s in result.steps]
    after = names[names.index(failed_step) + 1 :]
    assert all(step(result, name).status is Status.SKIPPED for name in after)


async def test_a_hung_page_fails_at_the_step_timeout_not_later(
    run_journey: RunJourney, faults: Callable[..., None]
) -> None:
    faults(hang="product")
    clock = time.monotonic()

    result = await run_journey(demo_journey(step_timeout="2s"))

    elapsed = time.monotonic() - clock
    hung = step(result, "open product")
    assert (hung.status, hung.error_type) == (Status.FAILED, ErrorType.TIMEOUT)
    assert 1.9 <= hung.duration_seconds <= 2.6, hung.duration_seconds
    assert elapsed < 5.0
    assert page_of(result, "open product").missing["load_seconds"]


async def interleaved(
    run_journey: RunJourney,
    faults: Callable[..., None],
    shop: RunningShop,
    fault: dict[str, int],
    served_as: str,
    measure: Callable[[PageResult], float | None],
    rounds: int = 3,
) -> tuple[float, float, float]:
    """Median of (slow - baseline) over interleaved pairs of runs, the median delay the
    shop itself measured, and the median of the slow runs' measure: one busy moment cannot
    decide the comparison.

    A page the journey leaves within a frame or two of its last paint may not have
    reported it: Chromium reports LCP once the paint is presented, and a loaded machine
    presents late. The result then says so in ``missing``, and the pair is run again, at
    most ``rounds`` times in all."""
    deltas, served, slows, unreported = [], [], [], []
    while len(deltas) < rounds:
        faults()
        baseline = page_of(await run_journey(demo_journey()), "open home page")
        faults(**fault)
        slow = page_of(await run_journey(demo_journey()), "open home page")
        before, after = measure(baseline), measure(slow)
        if before is None or after is None:
            reasons = {**baseline.missing, **slow.missing}
            assert any("before the page was left" in reason for reason in reasons.values())
            unreported.append(reasons)
            assert len(unreported) <= rounds, unreported
            continue
        deltas.append(after - before)
        slows.append(after)
        served.append(shop.app[DELAYS][served_as])
    return statistics.median(deltas), statistics.median(served), statistics.median(slows)


async def test_server_delay_shows_up_in_ttfb_within_ten_percent(
    run_journey: RunJourney, faults: Callable[..., None], shop: RunningShop
) -> None:
    delta, served, _ = await interleaved(
        run_journey, faults, shop, {"delay_ms": 800}, "home", lambda page: page.ttfb_seconds
    )

    assert served >= 0.8  # what the shop measured: 0.8 s, or more on a busy machine
    assert delta == pytest.approx(served, rel=0.10)


async def test_slow_hero_image_shows_up_in_lcp_within_ten_percent(
    run_journey: RunJourney, faults: Callable[..., None], shop: RunningShop
) -> None:
    # Seven pairs, not three: LCP is a paint time, and on a loaded machine slow paints of
    # baseline runs moved the median of three pairs by 0.15 s, of five by 0.19 s once and
    # by 0.22 s another time (all seen beside two busy loops).
    delta, served, slow_lcp = await interleaved(
        run_journey,
        faults,
        shop,
        {"lcp_delay_ms": 1500},
        "hero",
        lambda page: page.lcp_seconds,
        rounds=7,
    )

    slow = page_of(await run_journey(demo_journey()), "open home page")
    assert served >= 1.5
    # The hero cannot be painted before the shop sent it: LCP is the hero's paint, not an
    # earlier element's.
    assert slow_lcp >= served
    # The delay shows in LCP, at most 10 % over. Under it by up to 20 %: beside two busy
    # loops a baseline run's hero painted 0.09-0.32 s in, in the busy first render, while a
    # slow run's painted 0.07-0.15 s after the shop sent it, on a page otherwise done: the
    # difference reads short of the delay by what the baseline's paint waited.
    assert 0.8 * served <= delta <= 1.1 * served, (delta, served)
    assert slow.ratings["lcp_seconds"] == "good"  # 1.5 s more still rates good (< 2.5 s)


async def test_late_banner_shows_up_as_layout_shift(
    run_journey: RunJourney, faults: Callable[..., None]
) -> None:
    faults(layout_shift=True)
    # The home step waits until the banner shows, as a customer would see it: a shift
    # right after the next click does not count (it follows an input), nor one on a page
    # already left.
    journey = demo_journey().replace(
        "          - title: ^Home",
        "          - title: ^Home\n          - visible: {role: img, name: Free shipping this week}",
    )

    result = await run_journey(journey)

    home = page_of(result, "open home page")
    assert home.cls is not None and home.cls > 0.05
    assert page_of(result, "open product").cls == 0.0


async def test_failed_subresource_is_listed_with_status(run_journey: RunJourney, shop: Any) -> None:
    result = await run_journey(
        """
        journeys:
          - name: missing-image
            base_url: ${SHOP}
            steps:
              - name: open missing product
                goto: /product/no-such-thing
        """
    )

    assert (result.error_type, result.failed_step) == (ErrorType.HTTP_ERROR, "open missing product")
    assert "HTTP 404 for GET" in str(result.error_message)


async def test_secret_from_environment_never_appears_in_the_result(
    run_journey: RunJourney,
) -> None:
    secret = "VOUCHER-s3cr3t-42"
    result = await run_journey(
        """
        journeys:
          - name: voucher
            base_url: ${SHOP}
            steps:
              - name: landing page with voucher in the URL
                goto: /?voucher=${secret:SHOP_VOUCHER}
              - name: product
                goto: /product/trail-runner
              - name: add
                click: {test_id: add-to-cart}
              - name: type voucher
                fill: {label: Voucher code}
                value: ${secret:SHOP_VOUCHER}
                expect:
                  - text: "Voucher ${secret:SHOP_VOUCHER} accepted"
        """,
        env={"SHOP_VOUCHER": secret},
    )

    assert result.status is Status.FAILED  # the expectation quotes the secret and fails
    document = json.dumps(to_dict(result))
    assert secret not in document
    assert "***" in str(result.error_message)
    assert "voucher=***" in result.browser.pages[0].url


DETOUR = """
journeys:
  - name: detour
    base_url: ${SHOP}
    BUDGETS
    steps:
      - name: home
        goto: /
      - name: open empty cart
        click: {test_id: cart-link}
      - name: back to the shop
        click: {text: Back to the shop}
      - name: open product
        click: {role: link, name: Trail Runner shoes}
      - name: add to cart
        click: {role: button, name: Add to cart}
        expect:
          - text: 1 item in your cart
"""


async def test_four_click_journey_passes_with_its_clicks_reported_as_a_finding(
    run_journey: RunJourney,
) -> None:
    result = await run_journey(DETOUR.replace("BUDGETS", ""))

    assert result.status is Status.PASSED, result.error_message
    assert (result.browser.clicks, result.browser.click_budget) == (4, 3)
    assert [b for b in result.budgets if b.measure == "clicks"] == []


async def test_four_clicks_degrade_the_run_when_the_journey_sets_a_clicks_budget(
    run_journey: RunJourney,
) -> None:
    result = await run_journey(DETOUR.replace("BUDGETS", "budgets: {clicks: {warn: 3}}"))

    assert result.browser.clicks == 4
    assert result.status is Status.DEGRADED
    (clicks,) = [b for b in result.budgets if b.measure == "clicks"]
    assert (clicks.level, clicks.limit, clicks.value) == ("warn", 3, 4)
    assert "clicks 4 over warn budget 3" in str(result.error_message)
