"""What a real shop needs from the step language, proved on the demo shop's traps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from probes.browser import BrowserManager
from probes.config import load_config_text
from probes.result import ErrorType, RunResult, Status
from probes.runners.journey import run
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
    step_timeout: 3s
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
    assert '<input> "Search" (hidden)' in message
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
    (error_page,) = [p for p in result.browser.pages if p.step == "follow"]
    assert (error_page.ttfb_seconds, error_page.fcp_seconds, error_page.lcp_seconds) == (
        None,
        None,
        None,
    )
    assert error_page.ratings == {}
    assert code in error_page.missing["lcp_seconds"]


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
        expect:
          - {expectation}
""")
        )
        seen[product] = result.status is Status.PASSED
        if not seen[product]:
            assert "to be visible on" in str(result.error_message)
    assert seen == {"trail-runner": on_sale, "city-jacket": sold_out}
