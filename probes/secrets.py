"""Masking of values that came from the environment (passwords, tokens)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask ordinary words and digits everywhere; `parcours check` warns.
MIN_SECRET_LENGTH = 4


class Masker:
    """Replaces every known secret, plain or URL-encoded, with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
        # Longest first, so that a secret containing another is masked whole.
        self._forms = sorted(forms, key=len, reverse=True)
        self.too_short = sorted(s for s in set(secrets) if 0 < len(s) < MIN_SECRET_LENGTH)

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
