"""`parcours test`: what an ops person runs after editing a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probes.demo_shop.server import RunningShop

pytestmark = pytest.mark.slow


def parcours(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probes.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_with_no_config_it_runs_the_demo_journey_on_the_bundled_shop() -> None:
    done = parcours("test", "--device", "desktop")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ demo-checkout · browser · desktop · PASSED" in done.stdout
    assert "clicks 3/3" in done.stdout
    for step in ("open home page", "open product", "add to cart", "place order"):
        assert step in done.stdout
    assert "LCP" in done.stdout
    assert "1 passed, 0 degraded, 0 failed" in done.stdout


def test_json_output_is_the_full_result_document() -> None:
    done = parcours("test", "--device", "mobile", "--json")

    assert done.returncode == 0, done.stderr
    (document,) = json.loads(done.stdout)
    assert document["device"] == "mobile"
    assert document["schema_version"] == 2
    assert len(document["pages"]) == 4


async def test_a_failing_journey_exits_non_zero_and_names_step_and_error(
    shop: RunningShop, tmp_path: Path
) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(
        f"""
journeys:
  - name: broken
    base_url: {shop.url}
    devices: [desktop]
    step_timeout: 3s
    steps:
      - name: home
        goto: /?hide_add_to_cart=1
      - name: product
        goto: /product/trail-runner?hide_add_to_cart=1
      - name: add
        click: {{test_id: add-to-cart}}
"""
    )

    done = await _in_thread(parcours, "test", str(config), "--artifacts", str(tmp_path / "ev"))

    assert done.returncode == 1
    (run_folder,) = (tmp_path / "ev").iterdir()
    assert sorted(p.name for p in run_folder.iterdir()) == ["step-03.html", "step-03.png"]
    assert f"in {run_folder}" in done.stderr
    assert "✗ add" in done.stdout
    assert 'element_not_found: no element matches test_id="add-to-cart"' in done.stdout
    assert "0 passed, 0 degraded, 1 failed" in done.stdout


def test_the_secret_never_reaches_the_output(tmp_path: Path) -> None:
    config = tmp_path / "secret.yaml"
    config.write_text(
        """
journeys:
  - name: leaky
    base_url: http://127.0.0.1:9
    devices: [desktop]
    steps:
      - name: login
        goto: /login?token=${API_TOKEN}
"""
    )

    table = parcours("test", str(config), env={"API_TOKEN": "tok-very-secret"})
    as_json = parcours("test", "--json", str(config), env={"API_TOKEN": "tok-very-secret"})

    for done in (table, as_json):
        assert done.returncode == 1
        assert "tok-very-secret" not in done.stdout + done.stderr
    assert "navigation_error" in table.stdout
    assert "token=***" in as_json.stdout


def test_unknown_journey_name_is_a_clear_error() -> None:
    done = parcours("test", "--journey", "nope")

    assert done.returncode == 2
    assert "no journey named nope; known: demo-checkout" in done.stderr


async def _in_thread(func, *args):  # type: ignore[no-untyped-def]
    """Run a blocking subprocess off the event loop, so the session's shop keeps serving."""
    import asyncio

    return await asyncio.to_thread(func, *args)


async def test_the_shipped_example_runs_green_against_the_demo_shop(shop: RunningShop) -> None:
    env = {"SHOP_URL": shop.url, "SHOP_VOUCHER": "WELCOME10-secret"}

    done = await _in_thread(
        lambda: parcours(
            "test", "configs/example-shop.yaml", "--device", "desktop", "--device", "kiosk", env=env
        )
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "✓ checkout-with-voucher · browser · desktop · PASSED" in done.stdout
    assert "✓ checkout-with-voucher · browser · kiosk · PASSED" in done.stdout
    assert "WELCOME10-secret" not in done.stdout + done.stderr
