"""A crashed Chromium is replaced, and the restart is counted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from playwright._impl._driver import compute_driver_executable

from probes.browser import DRIVER_NODE_OPTIONS, BrowserManager
from probes.demo_shop.server import RunningShop
from probes.result import ErrorType, Status
from probes.runners.journey import run
from probes.runners.outcome import RunRequest
from tests.conftest import config_from, demo_journey
from tests.services import descendants, wait_until

pytestmark = pytest.mark.slow


def chromium_main_processes(root: int) -> list[int]:
    """Chromium browser processes (not its renderers or helpers) below a process."""
    found = []
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"chrom" in cmdline.lower() and b"--type=" not in cmdline:
            found.append(pid)
    return found


async def _async(value: object) -> object:
    return value


async def test_a_crashed_chromium_is_replaced_and_counted(shop: RunningShop) -> None:
    config = config_from(demo_journey(), shop)
    journey = config.journeys[0]
    already = set(chromium_main_processes(os.getpid()))  # the session's shared Chromium
    async with BrowserManager() as browsers:
        first = await run(journey, browsers, RunRequest("desktop"), config.masker)
        (victim,) = set(chromium_main_processes(os.getpid())) - already

        os.kill(victim, signal.SIGKILL)
        await wait_until(
            lambda: _async(victim not in chromium_main_processes(os.getpid())),
            10,
            "Chromium to die",
        )
        second = await run(journey, browsers, RunRequest("desktop"), config.masker)

        assert first.status is Status.PASSED
        assert second.status is Status.PASSED, second.error_message
        assert browsers.restarts == 1
        assert victim not in chromium_main_processes(os.getpid())


async def test_a_crash_during_a_run_fails_that_run_and_the_next_one_works(
    shop: RunningShop,
) -> None:
    config = config_from(demo_journey().replace("goto: /", "goto: /?delay_ms=1500"), shop)
    journey = config.journeys[0]
    already = set(chromium_main_processes(os.getpid()))  # the session's shared Chromium
    async with BrowserManager() as browsers:
        await browsers.get()
        (victim,) = set(chromium_main_processes(os.getpid())) - already

        async def crash_soon() -> None:
            await asyncio.sleep(0.7)  # the home page is waiting for its slow server
            os.kill(victim, signal.SIGKILL)

        crash = asyncio.create_task(crash_soon())
        during = await run(journey, browsers, RunRequest("desktop"), config.masker)
        await crash
        after = await run(journey, browsers, RunRequest("desktop"), config.masker)

    assert during.status is Status.FAILED
    assert during.error_type is ErrorType.BROWSER_ERROR, (during.error_type, during.error_message)
    assert during.failed_step == "open home page"
    assert after.status is Status.PASSED, after.error_message
    assert browsers.restarts == 1


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if item)
    return {name: value for name, _, value in pairs}


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


@pytest.mark.parametrize(
    ("users", "driver_gets"),
    [(None, DRIVER_NODE_OPTIONS), ("--stack-trace-limit=50", "--stack-trace-limit=50")],
    ids=["default", "user-set"],
)
async def test_the_agent_launches_the_lighter_driver_and_chromium_and_a_users_node_options_win(
    monkeypatch: pytest.MonkeyPatch, users: str | None, driver_gets: str
) -> None:
    """The idle agent's fixed cost (bench.idle_memory): Playwright's driver with a small
    young generation unless the user set NODE_OPTIONS, Chromium without a zygote and with
    its GPU work in the browser process."""
    if users is None:
        monkeypatch.delenv("NODE_OPTIONS", raising=False)
    else:
        monkeypatch.setenv("NODE_OPTIONS", users)

    async with BrowserManager() as browsers:
        await browsers.get()
        tree = [(pid, _cmdline(pid)) for pid in descendants(os.getpid()) if pid != os.getpid()]
        drivers = [_environ(pid) for pid, line in tree if "run-driver" in line]
        browser_processes = [line for _, line in tree if "--remote-debugging-pipe" in line]

    assert drivers, tree
    assert drivers[0]["NODE_OPTIONS"] == driver_gets
    assert browser_processes, tree
    assert "--no-zygote" in browser_processes[0]
    assert "--in-process-gpu" in browser_processes[0]
    assert not [line for _, line in tree if "--type=zygote" in line or "--type=gpu" in line]


@pytest.mark.parametrize(("node_options", "warned"), [("", True), (DRIVER_NODE_OPTIONS, False)])
def test_the_drivers_node_says_nothing_of_a_negative_timer_with_the_agents_options(
    node_options: str, warned: bool
) -> None:
    """A journey at its deadline makes Playwright's timers negative; the driver's Node
    then printed TimeoutNegativeWarning to the agent's stderr. The driver is started with
    DRIVER_NODE_OPTIONS (the test above); this is what they do to the driver's own Node."""
    node, _ = compute_driver_executable()
    done = subprocess.run(
        [node, "-e", "setTimeout(() => {}, -5)"],
        env={**os.environ, "NODE_OPTIONS": node_options},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert ("TimeoutNegativeWarning" in done.stderr) is warned, done.stderr


async def test_chromium_runs_its_network_service_inside_and_keeps_playwrights_features() -> None:
    """Chromium reads only the last --enable-features: the agent's must carry every feature
    Playwright enables itself, or upgrading Playwright would silently drop one."""
    async with BrowserManager() as browsers:
        await browsers.get()
        [main] = chromium_main_processes(os.getpid())
        argv = _cmdline(main).split()  # no feature name holds a space
        helpers = [_cmdline(pid) for pid in descendants(main) if pid != main]

    enabled = [
        arg.removeprefix("--enable-features=").split(",")
        for arg in argv
        if arg.startswith("--enable-features=")
    ]
    assert len(enabled) >= 2, argv  # Playwright's, then the agent's
    *playwrights, ours = enabled
    assert {feature for features in playwrights for feature in features if feature} <= set(ours)
    assert "NetworkServiceInProcess2" in ours
    assert not [line for line in helpers if "network.mojom.NetworkService" in line]
