"""What a real shop needs from the step language, proved on the demo shop's traps."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from probes.browser import BrowserManager
from probes.config import load_config_text
from probes.demo_shop.app import DELAYS, ORDERS
from probes.demo_shop.server import RunningShop
from probes.result import ErrorType, RunResult, Status, to_dict
from probes.runners.journey import run, run_outcome
from probes.runners.outcome import RunRequest
from tests.conftest import RunJourney
from tests.services import free_port
from tests.test_http_checks import serve

pytestmark = pytest.mark.slow


def journey(steps: str, extra: str = "") -> str:
    """An inline journey on the demo shop with short step timeouts."""
    return f"""
journeys:
  - name: real-shop
    base_url: ${{SHOP}}
    step_timeout: 10s
    retries: 0{extra}
    steps:
{steps}
"""


def failure(result: RunResult) -> tuple[ErrorType | None, str]:
    return result.error_type, str(result.error_message)


async def test_an_ambiguous_locator_fails_naming_both_matches(run_journey: RunJourney) -> None:
    result = await run_journey(
        journey("""
      - name: home
        goto: /
      - name: help
        click: {role: link, name: Help}
""")
    )

    error_type, message = failure(result)
    assert error_type is ErrorType.AMBIGUOUS_LOCATOR, message
    assert message.startswith('2 visible elements match role=link[name="Help"]')
    assert '1) <a> "Help"; 2) <a> "Help"' in message
    assert "nth:, within:" in message


@pytest.mark.parametrize(
    ("locator", "came_from"),
    [
        ("{role: link, name: Help, within: {role: contentinfo}}", "the footer"),
        ("{role: link, name: Help, nth: 0}", "the header"),
        ("{role: link, name: Help, nth: -1}", "the footer"),
        ("{role: link, name: Help, within: {role: navigation, name: Main}}", "the header"),
    ],
)
async def test_nth_and_within_pick_the_intended_element(
    run_journey: RunJourney, locator: str, came_from: str
) -> None:
    result = await run_journey(
        journey(f"""
      - name: home
        goto: /
      - name: help
        click: {locator}
        expect:
          - text: You came from {came_from}
""")
    )

    assert result.status is Status.PASSED, result.error_message


async def test_a_hidden_element_and_a_missing_one_get_different_messages(
    run_journey: RunJourney,
) -> None:
    def search_box_named(name: str) -> str:
        return journey(f"""
      - name: home
        goto: /
      - name: search
        fill: {{role: searchbox, name: {name}}}
        value: trail
        timeout: 1s
""")

    hidden = await run_journey(search_box_named("Search"), device="mobile")
    missing = await run_journey(search_box_named("Find"), device="mobile")

    error_type, message = failure(hidden)
    assert error_type is ErrorType.ELEMENT_NOT_FOUND
    assert 'role=searchbox[name="Search"] exists but is hidden on' in message
    assert "(1 matching, none visible: behind a menu" in message
    assert '<input name=q type=search> "Search" (hidden)' in message
    error_type, message = failure(missing)
    assert error_type is ErrorType.ELEMENT_NOT_FOUND
    assert message.startswith('no element matches role=searchbox[name="Find"] on ')


async def test_a_visible_match_is_used_while_a_hidden_duplicate_is_ignored(
    run_journey: RunJourney,
) -> None:
    # On a phone the header's Help link is behind the menu: only the footer's is visible.
    result = await run_journey(
        journey("""
      - name: home
        goto: /
      - name: help
        click: {role: link, name: Help}
        expect:
          - text: You came from the footer
"""),
        device="mobile",
    )

    assert result.status is Status.PASSED, result.error_message


async def _dies(request: web.Request) -> web.StreamResponse:
    """A server that dies under the request: the connection closes with no answer."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response()


@pytest.fixture
async def dying_site() -> AsyncIterator[str]:
    """A page whose links go to a server that dies mid-request and to one that is gone."""
    gone = free_port()

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text=f"""<!doctype html><title>Home</title>
<a href="/doomed">Dies mid-request</a> <a href="http://127.0.0.1:{gone}/">Gone</a>""",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/doomed", _dies)
    runner, port = await serve(app)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("link", "code"), [("Dies mid-request", "net::ERR_EMPTY_RESPONSE"), ("Gone", "net::ERR_")]
)
async def test_a_server_that_dies_mid_journey_is_a_navigation_error_at_once(
    browsers: BrowserManager, dying_site: str, link: str, code: str
) -> None:
    config = load_config_text(
        f"""
journeys:
  - name: dying
    base_url: {dying_site}
    step_timeout: 30s
    retries: 0
    steps:
      - name: home
        goto: /
      - name: follow
        click: {{role: link, name: {link}}}
        expect:
          - text: Never shown
""",
        env={},
    )
    result = await run(config.journeys[0], browsers, RunRequest("desktop"), config.masker)

    error_type, message = failure(result)
    assert error_type is ErrorType.NAVIGATION_ERROR, message
    assert code in message and "GET http://127.0.0.1:" in message
    follow = result.steps[1]
    assert follow.duration_seconds < 5, f"waited {follow.duration_seconds:.1f}s (timeout 30 s)"
    print(f"navigation error reported after {follow.duration_seconds:.3f}s")
    error_pages = [p for p in result.browser.pages if p.step == "follow"]
    assert error_pages, "the failed navigation is listed"
    for error_page in error_pages:  # Chromium may try the URL more than once
        measured = (error_page.ttfb_seconds, error_page.fcp_seconds, error_page.lcp_seconds)
        assert measured == (None, None, None)
        assert error_page.ratings == {}
    assert code in error_pages[0].missing["lcp_seconds"]


@pytest.mark.parametrize(
    ("expectation", "on_sale", "sold_out"),
    [
        ("{text: In stock}", True, True),  # the substring trap: "...back in stock"
        ("{text: In stock, exact: true}", True, False),
        ("{text: In stock, case_sensitive: true}", True, False),
        ('{text_matches: "^In stock$"}', True, False),
    ],
)
async def test_text_checks_can_be_exact_case_sensitive_or_a_regex(
    run_journey: RunJourney, expectation: str, on_sale: bool, sold_out: bool
) -> None:
    seen = {}
    for product in ("trail-runner", "city-jacket"):
        result = await run_journey(
            journey(f"""
      - name: product
        goto: /product/{product}
        timeout: 4s
        expect:
          - {expectation}
""")
        )
        seen[product] = result.status is Status.PASSED
        if not seen[product]:
            assert "to be visible on" in str(result.error_message)
    assert seen == {"trail-runner": on_sale, "city-jacket": sold_out}


GUEST_CHECKOUT = """
      - name: accept cookies
        optional: true
        click: {role: button, name: Accept all}
      - name: open menu
        devices: [mobile]
        click: {role: button, name: Menu}
      - name: search
        fill: {role: searchbox, name: Search}
        value: trail
      - name: submit search
        press: Enter
        "on": {role: searchbox, name: Search}
        expect:
          - text: 1 result
      - name: open product
        click: {role: link, name: Trail Runner shoes, within: {role: main}}
      - name: add to cart
        click: {role: button, name: Add to cart}
      - name: country
        select: {label: Country}
        option: Canada
      - name: express delivery
        check: {role: radio, name: Express}
      - name: no newsletter
        uncheck: {role: checkbox, name: Send me the newsletter}
      - name: place order
        click: {role: button, name: Place order}
        expect:
          - text: Express delivery to Canada
          - text: No newsletter
        capture:
          order: {text: {test_id: order-id}, pattern: "Order (\\\\w+)"}
          order_url: {url: true}
      - name: settle
        wait_for_load: networkidle
"""
CANCEL = """
    cleanup:
      - name: cancel the test order
        goto: /order/{{order}}
      - name: cancel
        click: {role: button, name: Cancel order}
        expect:
          - text: is cancelled
"""


@pytest.mark.parametrize("device", ["mobile", "desktop"])
async def test_a_long_guest_checkout_passes_with_its_clicks_as_a_finding_and_cleans_up(
    run_journey: RunJourney, shop: RunningShop, faults: Callable[..., None], device: str
) -> None:
    faults(cookie_banner_percent=100)
    result = await run_journey(
        journey("      - name: home\n        goto: /\n" + GUEST_CHECKOUT, extra=CANCEL),
        device=device,
    )

    assert result.status is Status.PASSED, result.error_message
    names = [s.name for s in result.steps]
    assert result.steps[1].status is Status.PASSED  # the banner was there and accepted
    assert ("open menu" in names) is (device == "mobile")  # a step for phones only
    clicks = 5 if device == "mobile" else 4
    assert (result.browser.clicks, result.browser.click_budget) == (clicks, 3)
    order = result.browser.captures["order"]
    assert result.browser.captures["order_url"].endswith(f"/order/{order}")
    placed = shop.app[ORDERS][order]
    assert (placed["delivery"], placed["country"], placed["newsletter"]) == (
        "Express",
        "Canada",
        False,
    )
    assert [s.status for s in result.browser.cleanup] == [Status.PASSED, Status.PASSED]
    assert placed["cancelled"] is True
    # The chat widget's exception, from another site, is recorded and changes nothing.
    assert any(
        "chat widget" in e for p in result.browser.pages for e in p.third_party_js_exceptions
    )
    assert all(p.js_exceptions == () for p in result.browser.pages)


async def test_an_optional_step_that_is_not_there_is_skipped_quickly(
    run_journey: RunJourney,
) -> None:
    result = await run_journey(
        journey("""
      - name: home
        goto: /
      - name: accept cookies
        optional: true
        click: {role: button, name: Accept all}
      - name: open product
        click: {role: link, name: Trail Runner shoes}
""")
    )

    assert result.status is Status.PASSED, result.error_message
    banner = result.steps[1]
    assert banner.status is Status.SKIPPED
    assert str(banner.error_message).startswith("optional step not done: no element matches")
    assert result.steps[2].status is Status.PASSED


async def test_the_cleanup_runs_after_a_failure_and_never_changes_the_verdict(
    run_journey: RunJourney, shop: RunningShop, faults: Callable[..., None]
) -> None:
    result = await run_journey(
        journey(
            """
      - name: product
        goto: /product/trail-runner
      - name: add to cart
        click: {role: button, name: Add to cart}
      - name: place order
        click: {role: button, name: Place order}
        capture:
          order: {text: {test_id: order-id}, pattern: "Order (\\\\w+)"}
      - name: find the gift wrap
        click: {role: button, name: Gift wrap}
        timeout: 1s
""",
            extra=CANCEL,
        )
    )

    assert (result.status, result.failed_step) == (Status.FAILED, "find the gift wrap")
    assert result.error_type is ErrorType.ELEMENT_NOT_FOUND
    assert [s.name for s in result.browser.cleanup] == ["cancel the test order", "cancel"]
    assert all(s.status is Status.PASSED for s in result.browser.cleanup)
    assert shop.app[ORDERS][result.browser.captures["order"]]["cancelled"] is True


async def test_a_python_step_gets_the_page_and_the_captures_and_can_capture(
    run_journey: RunJourney, tmp_path: Path
) -> None:
    (tmp_path / "hooks.py").write_text(
        "async def price(page, captures):\n"
        "    text = await page.get_by_test_id('price').inner_text()\n"
        "    assert captures['product'] == 'Trail Runner shoes', captures\n"
        "    return {'price': text.split()[0]}\n"
        "def too_dear(page, captures):\n"
        "    assert float(captures['price']) < 50, f\"price {captures['price']} is over 50\"\n"
    )
    config = tmp_path / "shop.yaml"
    steps = """
      - name: product
        goto: /product/trail-runner
        capture:
          product: {text: {role: heading, level: 1}}
      - name: read the price
        python: hooks.py:price
      - name: affordable
        python: hooks.py:too_dear
"""
    result = await run_journey(journey(steps), source=str(config))

    assert result.browser.captures["price"] == "89.00"
    assert (result.failed_step, result.error_type) == ("affordable", ErrorType.ASSERTION_FAILED)
    assert result.error_message == "python step: price 89.00 is over 50"


async def test_own_script_errors_degrade_and_third_party_ones_are_only_recorded(
    run_journey: RunJourney, faults: Callable[..., None]
) -> None:
    faults(js_error=True)
    steps = """
      - name: product
        goto: /product/trail-runner
"""
    default = await run_journey(journey(steps))
    strict = await run_journey(
        journey(steps, extra="\n    js_errors: {own: fail, third_party: fail}")
    )

    assert default.status is Status.DEGRADED, default.error_message
    checks = {b.measure: b.value for b in default.budgets}
    assert checks == {"js_errors": 1}
    assert "price widget crashed" in default.browser.pages[0].js_exceptions[0]
    assert "chat widget" in default.browser.pages[0].third_party_js_exceptions[0]
    assert strict.status is Status.FAILED and strict.error_type is ErrorType.JS_ERROR


async def test_broken_same_site_assets_count_against_a_failed_requests_budget(
    run_journey: RunJourney, faults: Callable[..., None]
) -> None:
    faults(broken_image=True)
    result = await run_journey(
        journey(
            """
      - name: product
        goto: /product/trail-runner
""",
            extra="\n    budgets: {failed_requests: {warn: 0}}",
        )
    )

    assert result.status is Status.DEGRADED, result.error_message
    (check,) = [b for b in result.budgets if b.measure == "failed_requests"]
    assert (check.value, check.limit, check.step) == (1, 0, "product")
    assert "failed_requests 1 over warn budget 0" in str(result.error_message)


async def test_a_3_5_s_product_page_is_degraded_by_the_default_budget(
    run_journey: RunJourney, shop: RunningShop
) -> None:
    result = await run_journey(
        journey("""
      - name: product
        goto: /product/trail-runner?delay_ms=3500
        timeout: 15s
""")
    )

    assert shop.app[DELAYS]["product"] >= 3.5  # what the shop itself slept
    assert result.status is Status.DEGRADED, result.error_message
    (budget,) = [b for b in result.budgets if b.measure == "page_load"]
    assert (budget.level, budget.limit, budget.step) == ("warn", 3.0, "product")
    assert budget.value >= 3.5


async def test_a_parameter_is_shown_in_errors_and_a_secret_is_masked(
    run_journey: RunJourney, shop: RunningShop, faults: Callable[..., None]
) -> None:
    faults(checkout_500=True)
    result = await run_journey(
        """
journeys:
  - name: checkout
    base_url: ${SHOP_BASE}
    retries: 0
    steps:
      - name: product
        goto: /product/trail-runner
      - name: add to cart
        click: {role: button, name: Add to cart}
      - name: voucher
        fill: {label: Voucher code}
        value: ${secret:VOUCHER}
      - name: place order
        click: {role: button, name: Place order}
""",
        env={"SHOP_BASE": shop.url, "VOUCHER": "WELCOME-2026-secret"},
    )

    assert result.error_message == f"HTTP 500 for POST {shop.url}/checkout"
    assert "WELCOME-2026-secret" not in json.dumps(to_dict(result))


async def test_a_secret_capture_is_masked_in_the_result_and_the_evidence_taken_after_it(
    browsers: BrowserManager, shop: RunningShop
) -> None:
    config = load_config_text(
        journey("""
      - name: product
        goto: /product/trail-runner
      - name: add to cart
        click: {role: button, name: Add to cart}
      - name: place order
        click: {role: button, name: Place order}
        capture:
          order: {text: {test_id: order-id}, pattern: "Order (\\\\w+)", secret: true}
      - name: print the invoice
        click: {role: button, name: Print invoice}
        timeout: 1s
"""),
        variables={"SHOP": shop.url},
        env={},
    )
    outcome = await run_outcome(config.journeys[0], browsers, RunRequest("desktop"), config.masker)

    order = list(shop.app[ORDERS])[-1]  # the order this run placed
    assert outcome.result.failed_step == "print the invoice"
    assert outcome.result.browser.captures["order"] == "***"
    html = next(data for name, data in outcome.blobs.items() if name.endswith(".html"))
    assert b"Order ***" in html and order.encode() not in html
