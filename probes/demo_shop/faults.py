"""Fault switches of the demo shop, settable at run time to prove every measure and error.

Set them with ``POST /__faults`` (JSON body, merged), read them with
``GET /__faults``, clear them with ``DELETE /__faults``; or per request with
query flags of the same names (``/?delay_ms=800``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Faults:
    """What to break; everything off by default."""

    delay_ms: int = 0  # extra server delay before every HTML page
    lcp_delay_ms: int = 0  # the hero image (the page's LCP element) answers this late
    checkout_500: bool = False  # placing the order answers HTTP 500
    blip_checkouts: int = 0  # the next N orders answer HTTP 500, then the shop heals (a blip)
    hide_add_to_cart: bool = False  # the product page has no add-to-cart button
    hang: str = ""  # a page ("home", "product", "cart", "order") that never answers
    js_error: bool = False  # the product page throws an uncaught exception
    layout_shift: bool = False  # a late banner pushes the home page content down
    api_status: int = 0  # the JSON API answers with this HTTP status (0: normally)
    api_delay_ms: int = 0  # the JSON API answers this late
    api_malformed: bool = False  # the JSON API answers with broken JSON
    tls_delay_ms: int = 0  # HTTPS connections wait this long before their TLS handshake
    cookie_banner_percent: int = 0  # visits without consent that get the cookie banner
    third_party_script: bool = True  # a chat widget from another site that throws (a trap)
    broken_image: bool = False  # the product page shows an image that answers 404

    def merged(self, changes: dict[str, Any]) -> Faults:
        """A copy with the given switches changed; unknown names or wrong types raise."""
        allowed = {f.name: f.type for f in fields(self)}
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in allowed:
                raise ValueError(f"unknown fault '{name}'; expected one of {', '.join(allowed)}")
            clean[name] = _coerce(name, allowed[name], value)
        return replace(self, **clean)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON endpoint."""
        return asdict(self)


def _bounded(name: str, value: Any, what: str, highest: int, unit: str = "") -> int:
    """A whole number within 0..highest, or a ValueError that says what was expected."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"fault '{name}' expects {what}, got {value!r}") from None
    if not 0 <= number <= highest:
        raise ValueError(f"fault '{name}' must be between 0 and {highest}{unit}")
    return number


# Whole-number switches that are not milliseconds: what they count, and their maximum.
_COUNTS = {"cookie_banner_percent": ("a percentage", 100), "blip_checkouts": ("orders", 1000)}


def _coerce(name: str, kind: object, value: Any) -> Any:
    if kind in ("int", int):
        what, highest = _COUNTS.get(name, ("milliseconds", 600_000))
        return _bounded(name, value, what, highest, " ms" if name not in _COUNTS else "")
    if kind in ("bool", bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"fault '{name}' expects true or false, got {value!r}")
    if value not in ("", "home", "product", "cart", "order"):
        raise ValueError(f"fault '{name}' expects home, product, cart or order, got {value!r}")
    return value


class FaultSwitches:
    """The shop's switches now in force; one per app, changed while it serves."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.current = faults or Faults()
