"""The demo shop over HTTPS, with a self-signed certificate and a slow-handshake switch.

API checks watch certificates and time the TLS handshake; the demo needs both to
show something. The certificate is made at start (90 days, so no expiry alert
fires) and never written anywhere but a temporary file that is removed at once.
A slow handshake is a switch like the others (``tls_delay_ms``): each connection
waits that long before its ClientHello reaches the TLS server, which is exactly
where the delay of an overloaded TLS terminator falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import ssl
import tempfile
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_DAYS = 90
CHUNK = 64 * 1024


def self_signed_context(host: str) -> ssl.SSLContext:
    """A server context with a fresh self-signed certificate for ``host`` and loopback."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Parcours demo shop")])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(host or "localhost")]
    for address in ("127.0.0.1", "::1"):
        names.append(x509.IPAddress(ipaddress.ip_address(address)))
    with contextlib.suppress(ValueError):
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # ssl loads a chain only from a file: one that lives for the time of this call.
    handle, path = tempfile.mkstemp(suffix=".pem")
    try:
        os.write(handle, pem)
        os.close(handle)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context


class SlowHandshakeFront:
    """A TCP front for the shop's TLS listener that holds each new connection's first
    bytes (the ClientHello) for ``delay_ms()`` milliseconds, and records what it held."""

    def __init__(self, upstream_port: int, delay_ms: Callable[[], int]) -> None:
        self.upstream_port = upstream_port
        self.delay_ms = delay_ms
        self.last_delay: float | None = None  # seconds, as slept: tests compare with it
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        """Stop listening and cut every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        up_writer: asyncio.StreamWriter | None = None
        try:
            delay = self.delay_ms()
            if delay:
                started = time.perf_counter()
                await asyncio.sleep(delay / 1000)
                self.last_delay = time.perf_counter() - started
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except OSError:
            pass  # a client or the shop went away: nothing to report for a demo
        finally:
            writer.close()
            if up_writer is not None:
                up_writer.close()
            self._tasks.discard(task)


async def _pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(CHUNK):
            target.write(chunk)
            await target.drain()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if target.can_write_eof():
                target.write_eof()
