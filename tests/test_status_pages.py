"""The status pages, as the on-call person opens them: real Chromium, on a phone and a desk.

PARCOURS_UPDATE_DOCS=1 also saves the screenshots shown in the README (docs/).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urljoin

import pytest

from probes.browser import BrowserManager
from probes.demo_shop.server import RunningShop
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
