"""Connecting to NATS the same way from the collector and the agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import structlog
from nats.aio.client import Client

log = structlog.get_logger(__name__)


class CredentialsError(ValueError):
    """A ``--nats-creds`` file Parcours cannot use; the message says what was expected."""


def credentials_options(path: str | None) -> dict[str, Any]:
    """nats-py's options for a credentials file: a ``.creds`` file (user JWT and seed, from
    ``nsc``) or an NKey seed file (``SU…``, from ``parcours nats-config``)."""
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CredentialsError(f"cannot read NATS credentials {path}: {exc.strerror}") from None
    if "BEGIN NATS USER JWT" in text:
        return {"user_credentials": path}
    if text.strip().startswith("SU"):
        return {"nkeys_seed": path}
    raise CredentialsError(
        f"{path}: expected a NATS .creds file (-----BEGIN NATS USER JWT-----) or an NKey "
        "user seed (a line starting with SU), as written by `parcours nats-config`"
    )


async def connect(
    url: str, creds: str | None, *, name: str, inbox: str, connect_timeout: float = 5.0
) -> Client:
    """Connect, reconnecting for ever once connected; a refused login raises at once
    (ConnectionError, an OSError: the CLI prints it and exits)."""
    try:
        # nats-py retries a refused login for ever once reconnecting is allowed, so a
        # first, single attempt says at once whether we may connect at all.
        probe = await nats.connect(
            url,
            name=name,
            connect_timeout=connect_timeout,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            error_cb=_quiet,
            **credentials_options(creds),
        )
        await probe.close()
        return await _connect(url, name, inbox, connect_timeout, creds)
    except CredentialsError:
        raise
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise ConnectionError(f"cannot connect to NATS at {url}: {detail}") from exc


async def _quiet(_: Exception) -> None:
    """The probe's errors are raised to the caller; nats-py would log them too."""


async def _connect(
    url: str, name: str, inbox: str, connect_timeout: float, creds: str | None
) -> Client:
    async def disconnected() -> None:
        log.warning("nats_disconnected", url=url)

    async def reconnected() -> None:
        log.info("nats_reconnected", url=url)

    async def error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc)[:300] or type(exc).__name__)

    return await nats.connect(
        url,
        name=name,
        inbox_prefix=inbox.encode(),
        connect_timeout=connect_timeout,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        allow_reconnect=True,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        **credentials_options(creds),
    )
