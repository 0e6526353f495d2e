"""One Chromium per process, found once, relaunched when it dies.

Order of preference for the executable: ``PARCOURS_CHROMIUM`` if set, then
Playwright's own download, then a system Chromium or Chrome. The closed-network
flags keep Chromium from stalling on connections it cannot make.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from playwright.async_api import Browser, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from probes.devices import BUILTIN_PROFILES

log = structlog.get_logger(__name__)

# What Playwright 1.65 enables in its own --enable-features (screenshots through a new
# surface; no request to accounts.google.com at start-up).
PLAYWRIGHT_FEATURES = ("CDPScreenshotNewSurface", "SkipListAccountsWithoutGaiaCookies")
SYSTEM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LAUNCH_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # The fixed cost of an idle agent (bench.idle_memory): without a zygote to fork
    # renderers from and with the (disabled) GPU's process folded into the browser's,
    # Chromium holds 19-24 MiB less, for the same CPU per run.
    "--no-zygote",
    "--in-process-gpu",
    # The network service in the browser's process rather than its own: 18 MiB less idle
    # (bench.idle_memory; its process showed 48, but the others take over its share of
    # the shared pages). A crash of it now takes the browser down, which BrowserManager
    # replaces like any other. Chromium reads the last --enable-features only, so this
    # one carries the features Playwright enables itself (a test compares the two lists).
    "--enable-features=" + ",".join((*PLAYWRIGHT_FEATURES, "NetworkServiceInProcess2")),
)
# Playwright's driver (Node) with a 1 MiB young generation instead of 16: 14-18 MiB less
# once it has served a few runs, for the same CPU per run (bench.idle_memory). And without
# Node's TimeoutNegativeWarning: when a journey's deadline is reached, Playwright's own
# timers come out negative and Node printed three unstructured lines to the agent's
# stderr for a run already failed and logged as "journey deadline reached". A user's own
# NODE_OPTIONS wins.
DRIVER_NODE_OPTIONS = "--max-semi-space-size=1 --disable-warning=TimeoutNegativeWarning"
NO_BROWSER_HELP = (
    "no Chromium found. Fix one of: set PARCOURS_CHROMIUM=/path/to/chrome; "
    "run `python -m playwright install chromium` (needs internet); "
    "or on Debian/Ubuntu as root `apt-get install -y chromium`."
)


class BrowserUnavailableError(RuntimeError):
    """No Chromium could be found or started; the message says how to fix it."""


@dataclass(frozen=True)
class ChromiumChoice:
    """Which executable will be launched, and why it was picked."""

    path: str | None  # None means Playwright's own default
    origin: str


def find_chromium(playwright_default: str | None) -> ChromiumChoice:
    """Pick the Chromium to launch, or raise with instructions."""
    override = os.environ.get("PARCOURS_CHROMIUM")
    if override:
        if not Path(override).exists():
            raise BrowserUnavailableError(f"PARCOURS_CHROMIUM={override} does not exist")
        return ChromiumChoice(override, "PARCOURS_CHROMIUM")
    if playwright_default and Path(playwright_default).exists():
        return ChromiumChoice(None, "playwright")
    for name in SYSTEM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return ChromiumChoice(found, "system")
    raise BrowserUnavailableError(NO_BROWSER_HELP)


class BrowserManager:
    """Owns the process's Playwright driver and its one Chromium.

    Runs share the browser and get a fresh context each; if Chromium crashes
    or disconnects, the next caller gets a new one and ``restarts`` grows.
    """

    def __init__(self, args: tuple[str, ...] = LAUNCH_ARGS) -> None:
        self._args = args
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()
        self.restarts = 0
        self.choice: ChromiumChoice | None = None

    async def get(self) -> Browser:
        """The live browser, launching or relaunching it when needed."""
        browser = self._browser
        if browser is not None and browser.is_connected():
            return browser
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._browser is not None:
                self.restarts += 1
                log.warning("chromium_relaunch", restarts=self.restarts)
            self._browser = await self._launch()
            return self._browser

    @property
    def launched(self) -> bool:
        """Whether a browser is up now."""
        return self._browser is not None and self._browser.is_connected()

    async def warm(self) -> None:
        """Launch ahead of the first browser run, so that neither it nor the runs due
        right after it wait for the launch. A launch that fails here is left to the first
        run, which launches again and reports why; whoever warms need not care."""
        try:
            await self.get()
        except Exception as exc:  # noqa: BLE001 - reported by the first run that needs it
            log.info("chromium_warm_failed", error=str(exc)[:300])

    async def relaunch(self, broken: Browser) -> Browser:
        """Replace a browser that failed us although it still looked connected.

        Right after Chromium dies, Playwright may not have noticed yet: ``get`` then
        hands out a dead browser, and only opening a context tells. Counted as a restart.
        """
        async with self._lock:
            if self._browser is broken or self._browser is None:
                self._browser = None
                with contextlib.suppress(PlaywrightError):
                    await broken.close()
                self.restarts += 1
                log.warning("chromium_relaunch", restarts=self.restarts, reason="unusable")
                self._browser = await self._launch()
            return self._browser

    def context_options(self, device: str) -> dict[str, Any]:
        """Playwright context options for a device name (built-in or Playwright's)."""
        if device in BUILTIN_PROFILES:
            options = dict(BUILTIN_PROFILES[device])
            version = self._browser.version if self._browser is not None else "0.0.0.0"
            options["user_agent"] = str(options["user_agent"]).format(version=version)
            return options
        if self._playwright is None or device not in self._playwright.devices:
            raise BrowserUnavailableError(f"unknown device '{device}'")
        options = dict(self._playwright.devices[device])
        options.pop("default_browser_type", None)
        return options

    async def _launch(self) -> Browser:
        if self._playwright is None:
            # The driver inherits this process's environment; this process owns it.
            os.environ.setdefault("NODE_OPTIONS", DRIVER_NODE_OPTIONS)
            self._playwright = await async_playwright().start()
        chromium = self._playwright.chromium
        self.choice = find_chromium(chromium.executable_path)
        try:
            browser = await chromium.launch(
                executable_path=self.choice.path,
                args=list(self._args),
                headless=True,
                # A terminal's Ctrl-C reaches the driver too (same process group); by
                # default it would close Chromium under the runs this process is letting
                # finish. The driver ignores SIGINT itself once this is off.
                handle_sigint=False,
            )
        except Exception as exc:
            raise BrowserUnavailableError(
                f"Chromium ({self.choice.path or 'playwright'}) failed to start: {exc}"
            ) from exc
        log.info("chromium_started", origin=self.choice.origin, version=browser.version)
        return browser

    async def close(self) -> None:
        """Close Chromium and the driver; safe to call twice."""
        browser, self._browser = self._browser, None
        if browser is not None:
            try:
                await browser.close()
            except PlaywrightError as exc:  # already gone: nothing left to close
                log.debug("chromium_close_failed", error=str(exc))
        playwright, self._playwright = self._playwright, None
        if playwright is not None:
            await playwright.stop()

    async def __aenter__(self) -> BrowserManager:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()
