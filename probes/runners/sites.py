"""Which site a URL belongs to, to tell the shop's own scripts and assets from others'.

A site is the host's last two labels (``shop.example.com`` and ``cdn.example.com``
are one site), or the whole host for an IP address or a single-label name. Without
the public-suffix list, ``a.co.uk`` and ``b.co.uk`` count as one site: an error
on the side of "first party", which is reported, never ignored.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_URL = re.compile(r"(?:https?|wss?)://[^\s)'\"]+")
_POSITION = re.compile(r"(?::\d+){1,2}$")  # the line and column after a stack's URL


def site_of(url: str) -> str | None:
    """The site of an http(s) URL, or None for anything else (data:, about:, blob:)."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        labels = host.rstrip(".").split(".")
        return ".".join(labels[-2:])
    return host


def same_site(url: str, page_url: str) -> bool:
    """Whether a resource or script belongs to the page's own site (unknown counts as own)."""
    theirs, ours = site_of(url), site_of(page_url)
    return theirs is None or ours is None or theirs == ours


def script_url(stack: str) -> str | None:
    """The URL of the script an exception was thrown from: the first URL of its stack."""
    found = _URL.search(stack or "")
    return _POSITION.sub("", found.group(0)) if found else None
