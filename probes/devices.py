"""Device profiles: what a run looks like to the site (viewport, touch, user agent).

``desktop`` and ``mobile`` are built in; any Playwright device descriptor
name (``iPhone 13``, ``Pixel 7``…) is accepted too. Names are checked at
load without starting Playwright's driver: the descriptor names are read
from the type declarations the Playwright package ships.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

# Real browsers' user agents with the running Chromium's version filled in, and a Parcours
# marker so that site owners can tell synthetic traffic from customers. Chromium's own
# default says "HeadlessChrome", which some sites block or treat as a bot.
MOBILE_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{version} Mobile Safari/537.36 Parcours/0.1"
)
DESKTOP_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/{version} Safari/537.36 Parcours/0.1"
)

# Context options for Playwright's browser.new_context(); mobile first means a
# current mid-range Android phone, the most common customer device.
BUILTIN_PROFILES: dict[str, dict[str, Any]] = {
    "desktop": {
        "viewport": {"width": 1366, "height": 768},
        "device_scale_factor": 1,
        "is_mobile": False,
        "has_touch": False,
        "user_agent": DESKTOP_USER_AGENT,
    },
    "mobile": {
        "viewport": {"width": 412, "height": 915},
        "device_scale_factor": 2.625,
        "is_mobile": True,
        "has_touch": True,
        "user_agent": MOBILE_USER_AGENT,
    },
}

_DESCRIPTOR = re.compile(r'^\s+"([^"]+)": DeviceDescriptor;$', re.MULTILINE)


@functools.cache
def playwright_device_names() -> frozenset[str]:
    """Device names Playwright knows, read from its shipped type declarations."""
    try:
        import playwright
    except ImportError:
        return frozenset()
    types_file = Path(playwright.__file__).parent / "driver/package/types/types.d.ts"
    try:
        text = types_file.read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    return frozenset(_DESCRIPTOR.findall(text))


def known_device_names() -> list[str]:
    """Every device a journey may name, built-in first."""
    return [*BUILTIN_PROFILES, *sorted(playwright_device_names())]
