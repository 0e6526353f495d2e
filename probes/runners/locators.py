"""Config locators turned into Playwright locators."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Locator as PwLocator
from playwright.async_api import Page

from probes.config.model import Locator


def resolve(page: Page, locator: Locator) -> PwLocator:
    """The Playwright locator for a config locator; ``.first`` so duplicates don't fail."""
    exact = locator.exact
    found: PwLocator
    if locator.role is not None:
        options: dict[str, Any] = {"exact": exact} if locator.name is not None else {}
        if locator.name is not None:
            options["name"] = locator.name
        found = page.get_by_role(locator.role, **options)  # type: ignore[arg-type]
    elif locator.label is not None:
        found = page.get_by_label(locator.label, exact=exact)
    elif locator.placeholder is not None:
        found = page.get_by_placeholder(locator.placeholder, exact=exact)
    elif locator.text is not None:
        found = page.get_by_text(locator.text, exact=exact)
    elif locator.test_id is not None:
        found = page.get_by_test_id(locator.test_id)
    else:
        found = page.locator(str(locator.css))
    return found.first
