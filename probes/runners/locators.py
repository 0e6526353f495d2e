"""Config locators turned into Playwright locators, strict and visible-only.

Playwright's own locators are strict: an action on one that matches several
elements fails. Parcours keeps that (clicking the first of two "Toggle
navigation" buttons sends the journey down the wrong path and the error
appears one step later, pointing at the wrong cause), and matches only
visible elements, so that a hidden duplicate in a closed menu does not count.
"""

from __future__ import annotations

from typing import Any

from playwright.async_api import Error, Page
from playwright.async_api import Locator as PwLocator

from probes.config.model import Locator

Scope = Page | PwLocator
CANDIDATES_SHOWN = 3
# What an element looks like to a reader of the error: tag, role, accessible-ish name.
_DESCRIBE_JS = """(els, shown) => els.slice(0, shown).map(e => {
  const name = (e.getAttribute('aria-label') || e.innerText || e.value || e.alt || '')
    .trim().replace(/\\s+/g, ' ').slice(0, 40);
  const visible = !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)
    && getComputedStyle(e).visibility !== 'hidden';
  // What tells two form fields apart when they have no text: id, name, type.
  const attrs = ['role', 'id', 'name', 'type'].map(a => [a, e.getAttribute(a)])
    .filter(([, v]) => v).map(([a, v]) => `${a}=${v.slice(0, 40)}`).join(' ');
  return `<${e.tagName.toLowerCase()}${attrs ? ' ' + attrs : ''}>`
    + (name ? ` "${name}"` : '') + (visible ? '' : ' (hidden)');
})"""


def all_matches(page: Page, locator: Locator) -> PwLocator:
    """Every element the locator matches, visible or not (for messages and detach waits)."""
    scope: Scope = page if locator.within is None else visible(page, locator.within)
    found = _by_kind(scope, locator)
    if locator.has_text is not None:
        found = found.filter(has_text=locator.has_text)
    return found


def visible(page: Page, locator: Locator) -> PwLocator:
    """The visible elements the locator matches, narrowed to one by ``nth`` when given: what
    an action uses (strict: several is an error) and what expectations look at."""
    found = all_matches(page, locator).filter(visible=True)
    return found.nth(locator.nth) if locator.nth is not None else found


def _by_kind(scope: Scope, locator: Locator) -> PwLocator:
    exact = locator.exact
    if locator.role is not None:
        # Hidden ones too (the visible filter comes after): to say "exists but hidden".
        options: dict[str, Any] = {"include_hidden": True}
        if locator.name is not None:
            options.update(name=locator.name, exact=exact)
        if locator.level is not None:
            options["level"] = locator.level
        return scope.get_by_role(locator.role, **options)  # type: ignore[arg-type]
    if locator.label is not None:
        return scope.get_by_label(locator.label, exact=exact)
    if locator.placeholder is not None:
        return scope.get_by_placeholder(locator.placeholder, exact=exact)
    if locator.text is not None:
        return scope.get_by_text(locator.text, exact=exact)
    if locator.test_id is not None:
        return scope.get_by_test_id(locator.test_id)
    return scope.locator(str(locator.css))


async def candidates(found: PwLocator) -> list[str]:
    """The first few elements a locator matched, described for an error message."""
    try:
        described = await found.evaluate_all(_DESCRIBE_JS, CANDIDATES_SHOWN)
    except Error:
        return []
    return [str(d) for d in described]


async def ambiguity(page: Page, locator: Locator, exc: Error) -> str | None:
    """The message for a strict-mode violation, naming the count and the candidates."""
    if "strict mode violation" not in str(exc.message):
        return None
    found = visible(page, locator)
    try:
        count = await found.count()
    except Error:
        count = 0
    shown = await candidates(found)
    listing = "; ".join(f"{i}) {c}" for i, c in enumerate(shown, start=1))
    more = f" and {count - len(shown)} more" if count > len(shown) else ""
    return (
        f"{count} visible elements match {locator.describe()} on {page.url}: {listing}{more}; "
        "say which with nth:, within: a parent, has_text: or exact: true"
    )
