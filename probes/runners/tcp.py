"""The TCP kind: resolve, connect, optionally handshake TLS, optionally send and read.

The payment gateway behind a POS terminal or a kiosk's backend often speaks
neither HTTP nor HTML; this proves it answers. The run is one step named
``connect``, with the same phases, TLS details and assertions as an HTTP check.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import Any

from probes.config.api_model import TcpCheck
from probes.config.spec import JourneySpec
from probes.result import ErrorType, Exchange
from probes.runners.failures import StepFailure
from probes.runners.outcome import (
    RunContext,
    RunOutcome,
    assertion_results,
    failed_assertions,
    finish_run,
    step_result,
)
from probes.runners.tls import context_for, describe_chain, watch_handshakes

STEP = "connect"


def planned_steps(spec: JourneySpec) -> list[tuple[str, str]]:
    """One step: the connection."""
    return [(STEP, "connect")]


def _check(spec: JourneySpec) -> TcpCheck:
    assert isinstance(spec.settings, TcpCheck)
    return spec.settings


async def run_check(spec: JourneySpec, context: RunContext) -> RunOutcome:
    """Connect once and check what the server said."""
    check = _check(spec)
    started, clock = time.time(), time.monotonic()
    facts: dict[str, Any] = {}
    phases: dict[str, float] = {}
    tls = None
    failure: StepFailure | None = None
    try:
        tls = await asyncio.wait_for(_converse(check, facts, phases), spec.timeout)
    except StepFailure as exc:
        failure = exc
    except TimeoutError:
        failure = StepFailure(ErrorType.TIMEOUT, f"no answer within {spec.timeout:.1f}s")
    if tls is not None and tls.days_left is not None:
        facts["cert_days_left"] = tls.days_left
    outcomes = [] if failure else assertion_results(check.expect, facts)
    failure = failure or failed_assertions(outcomes)
    step = step_result(STEP, "connect", started=started, clock=clock, failure=failure)
    exchange = Exchange(
        step=STEP,
        url=f"tcp://{check.host}:{check.port}",
        phases=phases,
        response_bytes=len(facts.get("banner", "").encode()) if "banner" in facts else None,
        tls=tls,
        assertions=tuple(outcomes),
        response_excerpt=str(facts.get("banner", ""))[:2048] if failure else None,
    )
    result = finish_run(spec, context, started=started, steps=[step], exchanges=(exchange,))
    return RunOutcome(result, {})


async def _converse(check: TcpCheck, facts: dict[str, Any], phases: dict[str, float]) -> Any:
    """Resolve, connect (and handshake), send, read; fills facts and phases as it goes."""
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    try:
        infos = await loop.getaddrinfo(check.host, check.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StepFailure(ErrorType.DNS_ERROR, f"cannot resolve {check.host}: {exc}") from None
    resolved = time.perf_counter()
    phases["dns"] = resolved - began
    family, _, _, _, address = infos[0]
    handshakes = watch_handshakes()
    context = context_for(check.tls) if check.tls is not None else None
    try:
        reader, writer = await asyncio.open_connection(
            str(address[0]),
            int(address[1]),
            family=family,
            ssl=context,
            server_hostname=(check.tls.server_name or check.host) if check.tls else None,
        )
    except ssl.SSLError as exc:
        raise StepFailure(ErrorType.TLS_ERROR, f"TLS failed with {check.host}: {exc}") from None
    except OSError as exc:
        message = f"cannot connect to {check.host}:{check.port}: {exc}"
        raise StepFailure(ErrorType.CONNECTION_ERROR, message) from None
    connected = time.perf_counter()
    tcp_done = handshakes[-1].started if handshakes else connected
    phases["connect"] = tcp_done - resolved
    if handshakes:
        phases["tls"] = connected - tcp_done
    facts["connect_time"] = connected - began
    try:
        tls = describe_chain(writer.get_extra_info("ssl_object"), time.time())
        await _exchange(check, reader, writer, facts)
    finally:
        writer.close()
        phases["total"] = time.perf_counter() - began
    return tls


async def _exchange(
    check: TcpCheck,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    facts: dict[str, Any],
) -> None:
    """Send what the check says, and read a banner when an assertion looks at one."""
    if check.send is not None:
        writer.write(check.send.encode())
        await writer.drain()
    if any(a.subject == "banner" for a in check.expect):
        try:
            data = await reader.read(check.read_bytes)
        except OSError as exc:
            raise StepFailure(ErrorType.CONNECTION_ERROR, f"reading failed: {exc}") from None
        facts["banner"] = data.decode("utf-8", "replace")
