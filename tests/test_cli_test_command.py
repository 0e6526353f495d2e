"""`parcours test`: what an ops person runs after editing a config."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiohttp import web

from probes.demo_shop.server import RunningShop
from tests.services import chromium_with_marker, free_port

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
    # Three clicks to buy, one more when the cookie banner came on this visit (half of them).
    banner = "✓ accept cookies" in done.stdout
    assert f"clicks {4 if banner else 3}/3" in done.stdout
    assert "✓ cancel the test order" in done.stdout  # the clean-up, shown apart
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
    assert len(document["browser"]["pages"]) == 4


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


def test_a_device_no_check_runs_on_is_a_clear_error_not_an_empty_success() -> None:
    done = parcours("test", "--journey", "demo-checkout", "--device", "tablet")

    assert done.returncode == 2
    assert "no device named tablet; known: desktop, mobile" in done.stderr


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


async def test_a_retry_that_passes_is_shown_beside_the_failure_it_followed(tmp_path: Path) -> None:
    from aiohttp import web

    from tests.test_http_checks import serve

    answered: list[int] = []

    async def flaky(_: web.Request) -> web.Response:  # every other answer is a 500
        answered.append(500 if len(answered) % 2 == 0 else 200)
        return web.Response(status=answered[-1])

    app = web.Application()
    app.router.add_get("/health", flaky)
    runner, port = await serve(app)
    config = tmp_path / "api.yaml"
    config.write_text(
        f"""
journeys:
  - name: health
    kind: http
    base_url: http://127.0.0.1:{port}
    steps:
      - name: ping
        request: {{url: /health}}
        expect: ["status == 200"]
"""
    )
    try:
        with_retry = await _in_thread(parcours, "test", str(config), "--json", "--retries", "1")
        once = await _in_thread(parcours, "test", str(config), "--json")
    finally:
        await runner.cleanup()

    assert once.returncode == 1, "the first answer was a 500: once is a failure"
    assert [d["status"] for d in json.loads(once.stdout)] == ["failed"]
    runs = json.loads(with_retry.stdout)
    assert [(d["attempt"], d["status"]) for d in runs] == [(1, "failed"), (2, "passed")]
    assert [d["final"] for d in runs] == [False, True]  # one scheduled run, and it passed
    assert with_retry.returncode == 0, "the retry passed: the agent would not page either"
    assert answered == [500, 200, 500]


def test_repeat_runs_everything_n_times_each_with_its_own_retries(tmp_path: Path) -> None:
    config = tmp_path / "down.yaml"
    config.write_text(
        """
journeys:
  - name: down
    kind: tcp
    host: 127.0.0.1
    port: 9
"""
    )

    done = parcours("test", str(config), "--json", "--repeat", "2", "--retries", "1")

    runs = json.loads(done.stdout)
    assert done.returncode == 1
    assert [(d["attempt"], d["error_type"]) for d in runs] == [
        (1, "connection_error"),
        (2, "connection_error"),
    ] * 2
    assert len({d["run_id"] for d in runs}) == 4
    assert [d["final"] for d in runs] == [False, True] * 2  # the last attempt has the say


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--repeat", "0", "expected an integer >= 1"),
        ("--retries", "-1", "expected an integer >= 0, got -1"),
        ("--repeat", "many", "expected an integer, got 'many'"),
    ],
)
def test_a_bad_repeat_or_retries_is_refused_before_anything_runs(
    option: str, value: str, says: str
) -> None:
    done = parcours("test", option, value)

    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr


async def test_repeat_prints_each_steps_median_and_p95_and_keeps_failure_evidence(
    shop: RunningShop, tmp_path: Path
) -> None:
    config = tmp_path / "shop.yaml"
    config.write_text(
        f"""
defaults: {{devices: [desktop], step_timeout: 2s}}
journeys:
  - name: browse
    base_url: {shop.url}
    steps:
      - name: home
        goto: /
      - name: product
        click: {{role: link, name: Trail Runner shoes}}
  - name: broken
    base_url: {shop.url}
    steps:
      - name: product
        goto: /product/trail-runner?hide_add_to_cart=1
      - name: add to cart
        click: {{test_id: add-to-cart}}
"""
    )

    done = await _in_thread(lambda: parcours("test", str(config), "--repeat", "3"))

    assert done.returncode == 1
    assert "browse · desktop: 3/3 runs worked" in done.stdout
    assert "broken · desktop: 0/3 runs worked" in done.stdout
    duration = r"[\d.]+m?s"  # 359ms, or 1.75s on a busy machine
    summary = rf"  home +median +{duration} +p95 +{duration} +\(3 runs\)"
    assert re.search(summary, done.stdout), done.stdout
    kept = re.findall(r"parcours: run (\w+): (.+) in (/\S+)", done.stderr)
    assert len(kept) == 3, done.stderr  # every failed run's evidence, kept without asking
    folders = {Path(folder) for _, _, folder in kept}
    try:
        for run_id, names, folder in kept:
            assert Path(folder).name == run_id
            assert Path(folder).parent.name.startswith("parcours-test-")
            written = await _in_thread(lambda f=folder: {p.name for p in Path(f).iterdir()})
            assert written == set(names.split(", "))
            assert any(name.endswith(".png") for name in names.split(", "))
    finally:
        for folder in folders:
            shutil.rmtree(folder.parent, ignore_errors=True)


async def test_api_checks_run_without_a_chromium_and_a_journey_says_none_was_found(
    shop: RunningShop, tmp_path: Path
) -> None:
    """`parcours test` starts Chromium ahead of its first journey; with none to start, the
    API checks still run and a browser journey says how to get one."""
    config = tmp_path / "api.yaml"
    config.write_text(
        f"""
journeys:
  - name: shop-home
    kind: http
    base_url: {shop.url}
    steps:
      - name: home
        request: {{url: /}}
        expect: [status == 200]
"""
    )
    no_browser = {"PARCOURS_CHROMIUM": str(tmp_path / "no-such-chromium")}

    api_only = await _in_thread(lambda: parcours("test", str(config), env=no_browser))
    demo = ("test", "--journey", "demo-checkout", "--device", "desktop")
    journey = await _in_thread(lambda: parcours(*demo, env=no_browser))

    assert api_only.returncode == 0, api_only.stdout + api_only.stderr
    assert "✓ shop-home · http" in api_only.stdout
    assert journey.returncode != 0
    assert "no-such-chromium does not exist" in journey.stdout + journey.stderr


# As a terminal starts a foreground command: Ctrl-C at its default (a suite started in the
# background inherits SIGINT ignored, which a command rightly keeps).
IN_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['parcours', *sys.argv[1:]]; runpy.run_module('probes.cli', run_name='__main__')"
)


async def test_ctrl_c_stops_a_test_at_once_shows_what_finished_and_leaves_no_chromium(
    tmp_path: Path,
) -> None:
    arrived = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def quick(_: web.Request) -> web.Response:
        return web.Response(text="<title>ok</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", hang)
    app.router.add_get("/ok", quick)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    config = tmp_path / "hang.yaml"
    config.write_text(
        f"""
journeys:
  - name: quick
    base_url: http://127.0.0.1:{port}
    devices: [desktop]
    steps:
      - name: ok page
        goto: /ok
  - name: hangs
    base_url: http://127.0.0.1:{port}
    devices: [desktop]
    step_timeout: 2m
    steps:
      - name: home
        goto: /
"""
    )
    marker = f"PARCOURS_TEST_{uuid.uuid4().hex}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        IN_A_TERMINAL,
        "test",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, marker: "1"},
        process_group=0,  # its own group, signalled whole as a terminal's Ctrl-C does
    )
    try:
        await asyncio.wait_for(arrived.wait(), 60)
        os.killpg(process.pid, signal.SIGINT)
        out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), 60)
        out, err = out_bytes.decode(), err_bytes.decode()
        left = chromium_with_marker(marker)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runner.cleanup()

    assert process.returncode == 130, out + err
    assert err.strip().splitlines()[-1] == "parcours: interrupted"
    assert "✓ quick · browser · desktop · PASSED" in out  # what finished is still shown
    assert "hangs" not in out
    assert "Traceback" not in out + err
    assert left == []
