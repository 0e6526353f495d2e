"""TLS for HTTP and TCP checks: contexts as configured, the handshake timed, the chain read.

The handshake is timed from the moment asyncio's TLS layer wraps the freshly
connected socket (``SSLContext.wrap_bio``, called in the task that opened the
connection, so a context variable carries the moment back) to the moment the
connection is ready: the TCP connect and the handshake are two phases, as in
blackbox_exporter. The certificate chain the server presented is read whether
or not it was verified, for its earliest expiry.
"""

from __future__ import annotations

import contextvars
import functools
import ssl
import time
from dataclasses import dataclass
from typing import Any

from probes.config.api_model import TlsSettings
from probes.result import TlsInfo


@dataclass
class Handshake:
    """A TLS handshake a task began: when, and the TLS object (read for the chain later,
    since aiohttp may let go of a connection before the response is handed over)."""

    started: float
    ssl_object: ssl.SSLObject


# Where the running request collects its handshakes. A list, not a value: asyncio calls
# the TLS layer in a copy of the task's context, so only a shared object carries it back.
_handshakes: contextvars.ContextVar[list[Handshake] | None] = contextvars.ContextVar(
    "handshakes", default=None
)


def watch_handshakes() -> list[Handshake]:
    """Start collecting the handshakes of connections this task opens."""
    seen: list[Handshake] = []
    _handshakes.set(seen)
    return seen


class _TimedContext(ssl.SSLContext):
    """An SSLContext that notes when a handshake begins."""

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        started = time.perf_counter()
        ssl_object = super().wrap_bio(*args, **kwargs)
        seen = _handshakes.get()
        if seen is not None:
            seen.append(Handshake(started, ssl_object))
        return ssl_object


@functools.lru_cache(maxsize=64)
def context_for(settings: TlsSettings) -> ssl.SSLContext:
    """One context per distinct TLS setting, built once (loading CAs costs milliseconds)."""
    context = _TimedContext(ssl.PROTOCOL_TLS_CLIENT)
    if settings.verify:
        if settings.ca_bundle:
            context.load_verify_locations(cafile=settings.ca_bundle)
        else:
            context.load_default_certs()
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.client_cert:
        context.load_cert_chain(settings.client_cert, settings.client_key)
    return context


def describe_chain(ssl_object: Any, now: float) -> TlsInfo | None:
    """Earliest expiry of the presented chain, days left (negative once expired), names."""
    if ssl_object is None:
        return None
    chain = _presented_chain(ssl_object)
    infos = [cert.get_info() for cert in chain] or [ssl_object.getpeercert() or {}]
    expiries = [ssl.cert_time_to_seconds(i["notAfter"]) for i in infos if i.get("notAfter")]
    earliest = min(expiries) if expiries else None
    leaf = infos[0] if infos else {}
    return TlsInfo(
        earliest_expiry=earliest,
        days_left=None if earliest is None else round((earliest - now) / 86400, 3),
        version=ssl_object.version(),
        subject=_name(leaf.get("subject")),
        issuer=_name(leaf.get("issuer")),
        chain_length=len(chain),
    )


def _presented_chain(ssl_object: Any) -> list[Any]:
    """The certificates the server sent: public on Python 3.13, private before it."""
    for owner in (ssl_object, getattr(ssl_object, "_sslobj", None)):
        reader = getattr(owner, "get_unverified_chain", None)
        if reader is not None:
            chain = reader()
            return list(chain) if chain else []
    return []


def _name(parts: Any) -> str | None:
    """``CN=shop.example, O=Example`` from the tuple form ssl gives."""
    if not parts:
        return None
    return ", ".join(f"{key}={value}" for rdn in parts for key, value in rdn)
