"""Mobile first and budgets: what a customer on a phone lives, and slow told from broken."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from probes.browser import BrowserManager
from probes.conditions import NETWORKS, Conditions
from probes.config import ConfigError
from probes.demo_shop.server import RunningShop
from probes.result import ErrorType, Status
from probes.runners.page_monitor import PageMonitor
from tests.conftest import RunJourney, config_from

pytestmark = pytest.mark.slow

DEVICE_PAGE = """
journeys:
  - name: device
    base_url: ${{SHOP}}
    devices: [{device}]
    retries: 0
    steps:
      - name: who am i
        goto: /device
        expect:
          - text: "{viewport}"
          - text: "{agent}"
"""


@pytest.mark.parametrize(
    ("device", "viewport", "agent"),
    [
        ("mobile", "viewport 412x915 touch", "Android 14"),
        ("desktop", "viewport 1366x768 mouse", "X11; Linux x86_64"),
        ("iPhone 13", "viewport 390x664 touch", "iPhone"),
    ],
)
async def test_the_device_profile_reaches_the_page(
    run_journey: RunJourney, device: str, viewport: str, agent: str
) -> None:
    result = await run_journey(
        DEVICE_PAGE.format(device=device, viewport=viewport, agent=agent), device=device
    )

    assert result.status is Status.PASSED, result.error_message
    assert result.device == device


async def test_mobile_runs_on_4g_with_a_slower_cpu_and_says_so(run_journey: RunJourney) -> None:
    page = DEVICE_PAGE.format(device="mobile", viewport="viewport", agent="Parcours/0.1")

    mobile = await run_journey(page, device="mobile")

    assert mobile.conditions["network"] == "4g"
    assert mobile.conditions["latency_ms"] == 170
    assert mobile.conditions["cpu_slowdown"] == 4.0
    assert mobile.conditions["viewport"] == {"width": 412, "height": 915}
    assert "HeadlessChrome" not in str(mobile.conditions["user_agent"])


# A fixed amount of the page's own work, timed by the page.
WORKLOAD = """() => {
  const start = performance.now();
  let x = 0;
  for (let i = 0; i < 3e7; i++) { x += i % 7; }
  return x > 0 ? performance.now() - start : -1;
}"""


async def test_the_cpu_slowdown_ends_with_the_measured_steps(
    browsers: BrowserManager, shop: RunningShop
) -> None:
    """Chromium slows a page by busy-waiting its main thread, busy or idle: the evidence
    and clean-up after the measured steps run at full speed."""
    browser = await browsers.get()
    context = await browser.new_context()
    try:
        page = await context.new_page()
        monitor = await PageMonitor.attach(context, page)
        await monitor.emulate(Conditions(NETWORKS["none"], 4.0))
        await page.goto(shop.url)
        throttled = await page.evaluate(WORKLOAD)
        await monitor.end_cpu_slowdown()
        released = await page.evaluate(WORKLOAD)
    finally:
        await context.close()

    assert 0 < released < throttled / 2, (throttled, released)


def home_page(network: str) -> str:
    return f"""
journeys:
  - name: home-{network}
    base_url: ${{SHOP}}
    devices: [desktop]
    network: {network}
    retries: 0
    steps:
      - name: home
        goto: /
"""


async def test_slow_3g_adds_at_least_its_latency_per_round_trip(run_journey: RunJourney) -> None:
    fast_loads, slow_loads = [], []
    for _ in range(3):  # interleaved; the least disturbed of each is compared (busy machines)
        fast = await run_journey(home_page("none"))
        slow = await run_journey(home_page("3g-slow"))
        assert (
            fast.browser.pages[0].load_seconds is not None
            and slow.browser.pages[0].load_seconds is not None
        )
        fast_loads.append(fast.browser.pages[0].load_seconds)
        slow_loads.append(slow.browser.pages[0].load_seconds)

    # The document is one round trip; its images, CSS and JS at least one more. Against
    # the unthrottled load, only the document's round trip is sure to add whole: on a busy
    # machine the fast load is mostly CPU (0.38-0.43 s beside two busy loops), which the
    # slow load does while it waits for the second round trip.
    assert min(slow_loads) >= 2 * 0.400, (fast_loads, slow_loads)
    assert min(slow_loads) - min(fast_loads) >= 0.400, (fast_loads, slow_loads)
    assert (
        slow.browser.pages[0].ttfb_seconds is not None
        and slow.browser.pages[0].ttfb_seconds >= 0.400
    )
    assert slow.conditions["network"] == "3g-slow"


def delayed_home(level: str) -> str:
    return f"""
journeys:
  - name: slow-home
    base_url: ${{SHOP}}
    devices: [desktop]
    retries: 0
    budgets:
      page_load: {{{level}: 1s}}
    steps:
      - name: home
        goto: /?delay_ms=1500
"""


async def test_a_warn_budget_exceeded_is_degraded_naming_the_budget(
    run_journey: RunJourney,
) -> None:
    result = await run_journey(delayed_home("warn"))

    assert result.status is Status.DEGRADED
    assert result.success  # slow, not broken
    (budget,) = result.budgets
    assert (budget.measure, budget.level, budget.limit, budget.step) == (
        "page_load",
        "warn",
        1.0,
        "home",
    )
    assert budget.value >= 1.5
    assert "page_load" in str(result.error_message)
    assert "over warn budget 1.00s at step 'home'" in str(result.error_message)


async def test_a_fail_budget_exceeded_is_failed_with_budget_exceeded(
    run_journey: RunJourney,
) -> None:
    result = await run_journey(delayed_home("fail"))

    assert result.status is Status.FAILED
    assert result.error_type is ErrorType.BUDGET_EXCEEDED
    assert [s.status for s in result.steps] == [Status.PASSED]  # every step worked; too slow
    # The shop waits 1.5 s; on a busy machine the page takes longer, never less.
    shown = re.search(r"page_load (\d+\.\d+)s over fail budget 1\.00s", str(result.error_message))
    assert shown is not None, result.error_message
    assert float(shown.group(1)) >= 1.5


async def test_custom_device_and_network_profiles(run_journey: RunJourney) -> None:
    result = await run_journey(
        """
device_profiles:
  kiosk:
    viewport: {width: 1080, height: 1920}
    has_touch: true
    user_agent: "KioskOS/2.1 Parcours"
    network: hotel-wifi
network_profiles:
  hotel-wifi: {latency: 250ms, download_kbps: 2000, upload_kbps: 500}
journeys:
  - name: kiosk
    base_url: ${SHOP}
    devices: [kiosk]
    retries: 0
    steps:
      - name: who am i
        goto: /device
        expect:
          - text: viewport 1080x1920 touch
          - text: KioskOS/2.1
""",
        device="kiosk",
    )

    assert result.status is Status.PASSED, result.error_message
    assert result.conditions["network"] == "hotel-wifi"
    assert result.conditions["latency_ms"] == 250.0
    assert result.conditions["cpu_slowdown"] == 1.0
    assert (
        result.browser.pages[0].ttfb_seconds is not None
        and result.browser.pages[0].ttfb_seconds >= 0.25
    )


def test_unknown_network_and_clashing_profile_names_are_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from(
            """
device_profiles:
  mobile: {viewport: {width: 400, height: 800}}
journeys:
  - name: x
    network: 3g-slwo
    steps: [{name: a, goto: /}]
"""
        )

    messages = [str(p) for p in caught.value.problems]
    assert "test.yaml:3: device_profiles.mobile: 'mobile' is a built-in profile" in messages[0]
    assert messages[1].startswith(
        "test.yaml:6: journey \"x\", network: unknown network '3g-slwo'; did you mean '3g-slow'?"
    )


async def test_parcours_test_shows_the_budget_verdict_with_limit_and_value(
    shop: RunningShop, tmp_path: Path
) -> None:
    config = tmp_path / "slow.yaml"
    config.write_text(delayed_home("warn").replace("${SHOP}", shop.url))

    done = await asyncio.to_thread(  # off the loop: the session's shop must keep serving
        subprocess.run,
        [sys.executable, "-m", "probes.cli", "test", str(config)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr  # degraded is not a failure
    assert "DEGRADED" in done.stdout
    # The shop waits 1.5 s; on a busy machine the page takes longer, never less.
    shown = re.search(r"budget page_load (\d+\.\d+)s > warn 1\.00s", done.stdout)
    assert shown is not None, done.stdout
    assert float(shown.group(1)) >= 1.5
    assert "0 passed, 1 degraded, 0 failed" in done.stdout
