"""The one registry of check kinds, read by config validation and by dispatch.

Names map to the module that runs them, imported lazily so that
``parcours check`` never loads Playwright.
"""

from __future__ import annotations

KIND_MODULES: dict[str, str] = {
    "browser": "probes.runners.journey",
}
KIND_NAMES = tuple(KIND_MODULES)
