"""A secret with quotes, markup characters and spaces leaks nowhere, in no encoding.

`parcours test` runs for real (its own Chromium, logs at debug level) with a
trace of every run; its results go through a real collector into the history
file. Every byte that came out is searched for the secret as typed, JSON-escaped,
HTML-escaped and percent-encoded the three ways a browser or a library writes it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import CollectorSettings, create_app
from probes.browser import BrowserManager
from probes.demo_shop.server import RunningShop

pytestmark = pytest.mark.slow

SECRET = 's3cr3t ~*"<&>! pass phrase'
# Written out by hand, not computed by the code under test.
ENCODINGS = {
    "as typed": SECRET,
    "JSON-escaped": 's3cr3t ~*\\"<&>! pass phrase',
    "HTML-escaped": "s3cr3t ~*&quot;&lt;&amp;&gt;! pass phrase",
    "HTML-escaped, quotes kept": 's3cr3t ~*"&lt;&amp;&gt;! pass phrase',
    "HTML then JSON": 's3cr3t ~*\\"&lt;&amp;&gt;! pass phrase',
    "percent-encoded": "s3cr3t%20~%2A%22%3C%26%3E%21%20pass%20phrase",
    "plus for spaces": "s3cr3t+~%2A%22%3C%26%3E%21+pass+phrase",
    "browser form": "s3cr3t+%7E*%22%3C%26%3E%21+pass+phrase",
    "browser form, lower-case hex": "s3cr3t+%7e*%22%3c%26%3e%21+pass+phrase",
}

JOURNEYS = {
    # Fails on the cart page with the typed voucher still in its field: screenshot + trace.
    "stays on the form": """
      - name: voucher
        fill: {label: Voucher code}
        value: ${secret:SHOP_VOUCHER}
      - name: apply voucher
        click: {role: button, name: Apply voucher}
        timeout: 1s
""",
    # Submits the form (the browser's form encoding goes over the wire), then fails.
    "submits the form": """
      - name: voucher
        fill: {label: Voucher code}
        value: ${secret:SHOP_VOUCHER}
      - name: place order
        click: {role: button, name: Place order}
""",
    # The journey fails first; its clean-up then types the secret (trace recording still on).
    "typed in the clean-up": """
      - name: place order
        click: {role: button, name: Place order}
    cleanup:
      - name: back to the cart
        goto: /cart
      - name: voucher
        fill: {label: Voucher code}
        value: ${secret:SHOP_VOUCHER}
""",
}


def config_for(shop: RunningShop, steps: str) -> str:
    steps, _, cleanup = steps.partition("    cleanup:\n")
    return (
        textwrap.dedent(
            f"""
        journeys:
          - name: secret-checkout
            base_url: {shop.url}
            devices: [desktop]
            retries: 0
            evidence: {{trace: always}}
            steps:
              - name: product
                goto: /product/trail-runner
              - name: add to cart
                click: {{role: button, name: Add to cart}}
        """
        )
        + textwrap.indent(textwrap.dedent(steps).strip("\n"), " " * 6)
        + "\n"
        + (
            f"    cleanup:\n{textwrap.indent(textwrap.dedent(cleanup).strip(chr(10)), ' ' * 6)}\n"
            if cleanup
            else ""
        )
    )


def leaks(where: str, data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    return [f"{where}: {name}" for name, form in ENCODINGS.items() if form in text]


def every_output(folder: Path) -> list[tuple[str, bytes]]:
    """Each file below folder, and each entry of each zip, as (name, bytes)."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found.append((str(path.relative_to(folder)), data))
        if path.suffix == ".zip":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                found.extend((f"{path.name}:{n}", archive.read(n)) for n in archive.namelist())
    return found


@pytest.mark.parametrize("scenario", list(JOURNEYS))
async def test_a_typed_secret_leaks_into_no_log_result_row_html_screenshot_or_trace(
    shop: RunningShop,
    faults: Callable[..., None],
    browsers: BrowserManager,
    tmp_path: Path,
    scenario: str,
) -> None:
    faults(checkout_500=True)
    config = tmp_path / "secret.yaml"
    config.write_text(config_for(shop, JOURNEYS[scenario]))
    artifacts = tmp_path / "artifacts"
    command = [sys.executable, "-m", "probes.cli", "--log-level", "debug", "--log-json"]
    command += ["test", str(config), "--json", "--artifacts", str(artifacts)]

    done = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        env={**os.environ, "SHOP_VOUCHER": SECRET},
        timeout=180,
    )

    results = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr.decode()[-2000:]
    assert results[0]["status"] == "failed"
    database = await stored_through_a_collector(results, tmp_path / "collector")
    outputs = [
        ("stdout (results)", done.stdout),
        ("stderr (logs)", done.stderr),
        *every_output(artifacts),
        *((f"history: {name}", data) for name, data in every_output(database)),
    ]
    names = [name for name, _ in outputs]
    assert any(n.endswith("trace.trace") for n in names), names
    assert any(n.endswith(".html") for n in names), names
    assert any(n.startswith("history: runs.sqlite3") for n in names), names
    assert b'"level": "debug"' in done.stderr or b'"level": "info"' in done.stderr
    assert not [leak for name, data in outputs for leak in leaks(name, data)]
    assert any(b"***" in data for name, data in outputs if name.endswith("trace.trace"))
    assert not [n for n in names if n.endswith((".jpeg", ".jpg"))], "no screencast frames"
    if scenario == "stays on the form":
        shot = next(artifacts.rglob("step-04.png")).read_bytes()
        await assert_voucher_field_is_black(shop, browsers, shot)


async def stored_through_a_collector(results: list[dict[str, Any]], data_dir: Path) -> Path:
    app = create_app(CollectorSettings(data_dir))
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/api/v1/results", json=results)).status == 200
    return data_dir  # closed: every queued row is written


async def assert_voucher_field_is_black(
    shop: RunningShop, browsers: BrowserManager, screenshot: bytes
) -> None:
    """Where the field is on the same page and viewport, every pixel of the shot is black."""
    browser = await browsers.get()
    context = await browser.new_context(**browsers.context_options("desktop"))
    try:
        page = await context.new_page()
        await page.goto(f"{shop.url}/product/trail-runner")
        await page.get_by_role("button", name="Add to cart").click()
        box = await page.get_by_label("Voucher code").bounding_box()
        assert box is not None
        inside, outside = await page.evaluate(PIXELS, [base64.b64encode(screenshot).decode(), box])
    finally:
        await context.close()
    assert inside == {"black": True, "count": inside["count"]} and inside["count"] > 100
    assert outside["black"] is False  # the check can see a page that is not black


PIXELS = """async ([png, box]) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const region = (x, y, w, h) => {
    const data = context.getImageData(x, y, w, h).data;
    let black = true;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] > 8 || data[i + 1] > 8 || data[i + 2] > 8) { black = false; break; }
    }
    return {black, count: data.length / 4};
  };
  const inset = 2;  // anti-aliased edges aside
  return [
    region(Math.ceil(box.x) + inset, Math.ceil(box.y) + inset,
           Math.floor(box.width) - 2 * inset, Math.floor(box.height) - 2 * inset),
    region(0, 0, 200, 40),
  ];
}"""
