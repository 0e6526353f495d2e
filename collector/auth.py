"""Who may read the collector over HTTP: bearer tokens, stored hashed, by scope.

The token file holds one line per token: ``SCOPE sha256:HEX NAME``. Scopes:
``read`` (status pages, run history, artifacts), ``metrics`` (``/metrics``,
given to Prometheus as a bearer token), ``write`` (results from HTTP agents,
when NATS is not used) and ``all``. Only the token's SHA-256 is stored: tokens
are 32 random bytes (``parcours token`` makes them), so a slow hash would add
nothing; every stored hash is compared in constant time. A browser can send
a token as the password of HTTP Basic (any user name), which is how people
open run pages; the health endpoints stay open for load balancers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

SCOPES = ("read", "metrics", "write", "all")
OPEN_PATHS = ("/-/healthy", "/-/ready")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenFileError(ValueError):
    """A token file Parcours cannot use; the message names file, line and the form."""


@dataclass(frozen=True)
class StoredToken:
    """One line of the token file."""

    scope: str
    digest: bytes
    name: str


def digest(token: str) -> bytes:
    """What the file stores for a token."""
    return hashlib.sha256(token.encode()).digest()


def new_token(scope: str, name: str) -> tuple[str, str]:
    """A fresh token and the token-file line that admits it."""
    token = secrets.token_urlsafe(32)
    return token, f"{scope} sha256:{digest(token).hex()} {name}"


def load_tokens(path: Path) -> tuple[StoredToken, ...]:
    """Parse the token file; every mistake is named with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"{path}: cannot read the token file: {exc}") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        expected = "expected 'SCOPE sha256:HEX NAME' (make one with `parcours token`)"
        if len(words) != 3 or not words[1].startswith("sha256:"):
            raise TokenFileError(f"{path}:{number}: {expected}")
        scope, hashed, name = words
        if scope not in SCOPES:
            raise TokenFileError(f"{path}:{number}: scope {scope!r} is not one of {SCOPES}")
        try:
            raw = bytes.fromhex(hashed.removeprefix("sha256:"))
        except ValueError:
            raise TokenFileError(f"{path}:{number}: the hash is not hexadecimal") from None
        if len(raw) != hashlib.sha256().digest_size:
            raise TokenFileError(f"{path}:{number}: a SHA-256 is 64 hexadecimal digits")
        tokens.append(StoredToken(scope, raw, name))
    if not tokens:
        raise TokenFileError(f"{path}: no tokens; {SCOPES} lines expected")
    return tuple(tokens)


def scope_of(request: web.Request) -> str | None:
    """The scope a request needs; None for the open health endpoints."""
    if request.path in OPEN_PATHS:
        return None
    if request.path == "/metrics":
        return "metrics"
    return "read" if request.method in ("GET", "HEAD") else "write"


def presented(request: web.Request) -> str | None:
    """The token of a request: a bearer token, or the password of HTTP Basic."""
    header = request.headers.get("Authorization", "")
    kind, _, value = header.partition(" ")
    if kind.lower() == "bearer":
        return value.strip() or None
    if kind.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def allowed(tokens: tuple[StoredToken, ...], token: str | None, scope: str) -> bool:
    """Whether a token grants a scope; every stored hash is compared, in constant time."""
    if token is None:
        return False
    given = digest(token)
    granted = False
    for stored in tokens:
        if hmac.compare_digest(stored.digest, given) and stored.scope in (scope, "all"):
            granted = True
    return granted


def middleware(tokens: tuple[StoredToken, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Refuse, with 401 and the reason, a request whose token does not grant its scope."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = scope_of(request)
        if scope is None or allowed(tokens, presented(request), scope):
            return await handler(request)
        reason = "no token" if presented(request) is None else "token does not grant it"
        raise web.HTTPUnauthorized(
            text=f'{{"error": "this needs a token with scope {scope} or all ({reason})"}}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Basic realm="parcours", charset="UTF-8"'},
        )

    return check
