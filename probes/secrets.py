"""Masking of values that came from the environment (passwords, tokens)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words and digits everywhere; `parcours check` warns.
MIN_SECRET_LENGTH = 4


_FORM_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._")


def form_encode(text: str) -> str:
    """application/x-www-form-urlencoded as browsers write it (WHATWG URL standard).

    It differs from Python's ``quote_plus``: ``*`` stays, ``~`` becomes ``%7E``.
    """
    out = []
    for byte in text.encode("utf-8"):
        if byte in _FORM_SAFE:
            out.append(chr(byte))
        else:
            out.append("+" if byte == 0x20 else f"%{byte:02X}")
    return "".join(out)


def _json_inner(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)[1:-1]


# How a secret typed into a page can reach a log, a result, an HTML snapshot or a trace:
# as typed; percent-encoded (%20 or + for spaces, and the browser's own form encoding);
# HTML-escaped; and each of those inside a JSON string (trace entries are JSON).
_ENCODINGS: tuple[Callable[[str], str], ...] = (
    lambda s: s,
    lambda s: quote(s, safe=""),
    quote_plus,
    form_encode,
    lambda s: html.escape(s, quote=True),
    lambda s: html.escape(s, quote=False),
)
_WRAPPERS: tuple[Callable[[str], str], ...] = (
    lambda s: s,
    lambda s: _json_inner(s, ascii_only=False),
    lambda s: _json_inner(s, ascii_only=True),
)


def encoded_forms(secret: str) -> set[str]:
    """Every form of a secret that masking must find."""
    return {wrap(encode(secret)) for encode in _ENCODINGS for wrap in _WRAPPERS}


class Masker:
    """Replaces every known secret, in every encoding it may travel in, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = tuple(secrets)
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms.update(encoded_forms(secret))
        # Longest first, so that a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self.too_short = sorted(s for s in set(secrets) if 0 < len(s) < MIN_SECRET_LENGTH)

    def extended(self, secrets: Iterable[str]) -> Masker:
        """A masker that also hides values learnt at run time (a captured token)."""
        more = tuple(secrets)
        return Masker((*self._secrets, *more)) if more else self

    def mask(self, text: str) -> str:
        """The text with every secret replaced."""
        for form in self._forms:
            text = text.replace(form, MASK)
        return text

    def hides(self, text: str) -> bool:
        """Whether the text contains a secret (so a field typed with it must be masked)."""
        return any(form in text for form in self._forms)

    def mask_bytes(self, data: bytes) -> bytes:
        """Mask secrets in UTF-8 text; bytes that are not text are returned unchanged."""
        if not self._forms:
            return data
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return data
        return self.mask(text).encode("utf-8")

    def mask_data(self, data: object) -> object:
        """Mask every string inside JSON-like data (dicts, lists, tuples)."""
        if isinstance(data, str):
            return self.mask(data)
        if isinstance(data, dict):
            return {key: self.mask_data(value) for key, value in data.items()}
        if isinstance(data, list | tuple):
            return [self.mask_data(item) for item in data]
        return data

    def __bool__(self) -> bool:
        return bool(self._forms)
