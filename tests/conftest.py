"""Shared fixtures: one real Chromium for the session, the demo shop on a free loopback port."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from probes.browser import BrowserManager
from probes.config import LoadedConfig, load_config_text
from probes.demo_shop.app import FAULTS
from probes.demo_shop.faults import Faults
from probes.demo_shop.server import RunningShop, start_demo_shop
from probes.result import RunResult
from probes.runners.journey import run
from probes.runners.outcome import RunRequest

RunJourney = Callable[..., Awaitable[RunResult]]


@pytest.fixture(scope="session")
async def browsers() -> AsyncIterator[BrowserManager]:
    """The one Chromium every browser test shares, as the agent would."""
    manager = BrowserManager()
    yield manager
    await manager.close()


@pytest.fixture(scope="session")
async def shop() -> AsyncIterator[RunningShop]:
    """The demo shop, listening on a free loopback port for the whole session."""
    running = await start_demo_shop("127.0.0.1", 0)
    yield running
    await running.stop()


@pytest.fixture
def faults(shop: RunningShop) -> Callable[..., None]:
    """Flip the shop's fault switches for one test; they are cleared afterwards."""

    def set_faults(**switches: Any) -> None:
        shop.app[FAULTS].current = Faults().merged(switches)

    yield set_faults  # type: ignore[misc]
    shop.app[FAULTS].current = Faults()


def config_from(
    yaml_text: str,
    shop: RunningShop | None = None,
    env: Mapping[str, str] | None = None,
    source: str = "test.yaml",
) -> LoadedConfig:
    """Load a config written inline in a test, with the shop's URL as ${SHOP}."""
    variables = {"SHOP": shop.url} if shop else {}
    return load_config_text(textwrap.dedent(yaml_text), source, env=env or {}, variables=variables)


@pytest.fixture
def run_journey(browsers: BrowserManager, shop: RunningShop) -> RunJourney:
    """Run the first journey of an inline config once on one device."""

    async def go(
        yaml_text: str,
        device: str = "desktop",
        env: Mapping[str, str] | None = None,
        source: str = "test.yaml",
    ) -> RunResult:
        config = config_from(yaml_text, shop, env, source)
        return await run(config.journeys[0], browsers, RunRequest(device), config.masker)

    return go


DEMO_STEPS = """
    - name: open home page
      goto: /
      expect:
        - title: ^Home
    - name: open product
      click: {role: link, name: Trail Runner shoes}
      expect:
        - visible: {test_id: price}
    - name: add to cart
      click: {role: button, name: Add to cart}
      expect:
        - text: 1 item in your cart
    - name: place order
      click: {role: button, name: Place order}
      expect:
        - text: Thank you for your order
"""


def demo_journey(step_timeout: str = "5s", extra: str = "") -> str:
    """The demo checkout journey as inline YAML, with a chosen step timeout."""
    steps = textwrap.indent(textwrap.dedent(DEMO_STEPS).strip(), "      ")
    return f"""
journeys:
  - name: checkout
    base_url: ${{SHOP}}
    step_timeout: {step_timeout}
    retries: 0{extra}
    steps:
{steps}
"""
