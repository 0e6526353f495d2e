"""The status pages, as the on-call person opens them: real Chromium, on a phone and a desk.

PARCOURS_UPDATE_DOCS=1 also saves the screenshots shown in the README (docs/).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urljoin

import pytest

from collector.pages import run_page
from probes.browser import BrowserManager
from probes.demo_shop.server import RunningShop
from probes.result import (
    BrowserSection,
    ErrorType,
    FailedRequest,
    PageResult,
    Status,
    StepResult,
    to_dict,
)
from tests import documents
from tests.services import aget, parcours_run, wait_until

pytestmark = pytest.mark.slow
DOCS = Path(__file__).resolve().parent.parent / "docs"
SIZES = {
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
    },
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}


def config(tmp_path: Path, shop: RunningShop) -> Path:
    path = tmp_path / "status.yaml"
    path.write_text(
        f"""
defaults:
  interval: 3s
  devices: [desktop, mobile]
  retries: 1
  step_timeout: 3s
journeys:
  - name: checkout
    base_url: {shop.url}
    steps:
      - name: home
        goto: /
      - name: product
        click: {{role: link, name: Trail Runner shoes}}
  - name: add-to-cart
    base_url: {shop.url}
    steps:
      - name: product
        goto: /product/trail-runner?hide_add_to_cart=1
      - name: add to cart
        click: {{test_id: add-to-cart}}
"""
    )
    return path


async def test_status_pages_work_on_a_phone_and_a_desktop(
    shop: RunningShop, browsers: BrowserManager, tmp_path: Path
) -> None:
    with parcours_run(config(tmp_path, shop), tmp_path / "data") as (_, collector):

        async def failed_run_with_evidence() -> str | None:
            _, body = await aget(f"{collector}/api/v1/runs?journey=add-to-cart&limit=20")
            runs = json.loads(body)["runs"] if body else []
            traced = [
                r for r in runs if {a["kind"] for a in r["artifacts"]} >= {"screenshot", "trace"}
            ]
            return traced[0]["run_id"] if traced else None

        run_id = await wait_until(failed_run_with_evidence, 40, "a failed run with a trace")
        pages = {
            "overview": "/status",
            "journey": "/status/journeys/add-to-cart",
            "run": f"/status/runs/{run_id}",
        }
        browser = await browsers.get()
        problems: list[str] = []
        for size, options in SIZES.items():
            context = await browser.new_context(**options)  # type: ignore[arg-type]
            try:
                page = await context.new_page()
                page.on(
                    "console",
                    lambda m: (
                        problems.append(f"console {m.type}: {m.text}")
                        if m.type == "error"
                        else None
                    ),
                )
                page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
                for name, path in pages.items():
                    response = await page.goto(collector + path)
                    assert response is not None and response.status == 200, path
                    overflow = await page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    if overflow > 1:
                        problems.append(f"{size} {path} scrolls sideways by {overflow}px")
                    links = await page.evaluate(
                        "[...document.querySelectorAll('a[href], img[src]')]"
                        ".map(e => e.getAttribute('href') || e.getAttribute('src'))"
                    )
                    for link in set(links):
                        status, _ = await aget(urljoin(collector + path, link))
                        if status != 200:
                            problems.append(f"{size} {path}: {link} answered {status}")
                    if os.environ.get("PARCOURS_UPDATE_DOCS"):
                        await page.screenshot(
                            path=DOCS / f"status-{name}-{size}.png", full_page=True
                        )
            finally:
                await context.close()

    assert problems == []


async def test_a_real_shops_run_page_fits_a_412px_phone_without_sideways_scrolling(
    browsers: BrowserManager,
) -> None:
    # What a real shop's run brings: 17 steps with long names, long URLs and messages
    # without spaces, failed requests, third-party exceptions, captures and a clean-up.
    long_url = "https://shop.example.com/checkout/address?" + "&".join(
        f"field{i}=value{i}" for i in range(30)
    )
    name = "fill in the delivery address form with the country select and the postcode"
    filled = [
        StepResult(f"{name} {i}"[:80], "fill", Status.PASSED, 1000.0 + i, 0.1) for i in range(16)
    ]
    failing = StepResult(
        "place order",
        "click",
        Status.FAILED,
        1016.0,
        0.5,
        ErrorType.HTTP_ERROR,
        f"HTTP 500 for POST {long_url}",
    )
    steps = (*filled, failing)
    page = PageResult(
        "place order",
        long_url,
        failed_requests=tuple(
            FailedRequest(f"{long_url}&img={i}", "GET", 404, None, "Image") for i in range(3)
        ),
        third_party_js_exceptions=(f"TypeError: {'x' * 300} (from {long_url})",),
        ttfb_seconds=0.3,
    )
    run = documents.result(
        status=Status.FAILED,
        error_type=ErrorType.HTTP_ERROR,
        error_message=f"HTTP 500 for POST {long_url}",
        failed_step="place order",
        steps=steps,
        finished_at=1017.0,
        browser=BrowserSection(9, 3, (page,), captures={"order_url": long_url}, cleanup=steps[:2]),
    )
    rendered = run_page(to_dict(run), ["step-17-screenshot.png"], now=1100.0).text
    assert rendered is not None
    browser = await browsers.get()
    context = await browser.new_context(
        viewport={"width": 412, "height": 915}, is_mobile=True, device_scale_factor=2.625
    )
    try:
        tab = await context.new_page()
        await tab.set_content(rendered)
        # A phone widens its layout viewport to fit content that overflows: compare both
        # the document and the viewport with the phone's 412 CSS pixels.
        widths = await tab.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    finally:
        await context.close()

    assert widths == [412, 412], f"the run page is {widths[0]}px wide on a 412 px phone"
