"""The HTTP kind: requests in order, each timed by phase, its response checked by assertions.

Every run opens fresh connections (as blackbox_exporter does), so that DNS,
TCP connect and TLS handshake are measured each time rather than hidden by a
pooled connection. Phases come from aiohttp's tracing hooks; the TLS phase
from the moment the TLS layer takes the connected socket (see ``tls``).
Later steps use values captured from earlier responses (``{{token}}``);
captures marked secret are masked like configured secrets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import urljoin

import aiohttp

from probes import assertions
from probes.config.api_model import HttpCheck, HttpRequest, HttpStep
from probes.config.model import fill_captures
from probes.config.spec import JourneySpec
from probes.result import AssertionResult, ErrorType, Exchange, Status, StepResult, first_line
from probes.runners.failures import StepFailure
from probes.runners.outcome import (
    RunContext,
    RunOutcome,
    assertion_results,
    failed_assertions,
    finish_run,
    skipped,
    step_result,
)
from probes.runners.tls import Handshake, context_for, describe_chain, watch_handshakes

EXCERPT = 2048  # bytes of request and response kept as evidence of a failed step
MAX_BODY = 10 * 1024 * 1024  # a response larger than this is read no further


def planned_steps(spec: JourneySpec) -> list[tuple[str, str]]:
    """The check's requests, for a run that fails before its first one."""
    return [(step.name, step.request.method) for step in _check(spec).steps]


def _check(spec: JourneySpec) -> HttpCheck:
    assert isinstance(spec.settings, HttpCheck)
    return spec.settings


async def run_check(spec: JourneySpec, context: RunContext) -> RunOutcome:
    """Run every request once, in order; a failed step skips the rest."""
    check = _check(spec)
    started, deadline = time.time(), time.monotonic() + spec.timeout
    captures: dict[str, str] = {}
    secrets: list[str] = []
    steps: list[StepResult] = []
    exchanges: list[Exchange] = []
    for step in check.steps:
        if steps and steps[-1].status in (Status.FAILED, Status.SKIPPED):
            steps.append(skipped(step.name, step.request.method))
            continue
        done = await _run_step(step, spec.base_url, captures, deadline)
        steps.append(done.result)
        exchanges.append(done.exchange)
        for name, capture in step.capture.items():
            if name in done.captured:
                captures[name] = done.captured[name]
                if capture.secret:
                    secrets.append(done.captured[name])
    masker = context.masker.extended(secrets)
    result = finish_run(
        spec, context, started=started, steps=steps, masker=masker, exchanges=tuple(exchanges)
    )
    return RunOutcome(result, {})


@dataclass
class _StepDone:
    result: StepResult
    exchange: Exchange
    captured: dict[str, str] = field(default_factory=dict)


async def _run_step(
    step: HttpStep, base_url: str | None, captures: Mapping[str, str], deadline: float
) -> _StepDone:
    request = step.request
    url = urljoin(
        f"{base_url.rstrip('/')}/" if base_url else "", fill_captures(request.url, captures)
    )
    limit = min(request.timeout or float("inf"), max(deadline - time.monotonic(), 0.001))
    started, clock = time.time(), time.monotonic()
    timeline = Timeline()
    failure: StepFailure | None = None
    response: _Response | None = None
    try:
        response = await asyncio.wait_for(_send(request, url, captures, timeline), limit)
    except StepFailure as exc:
        failure = exc
    except TimeoutError:
        failure = StepFailure(ErrorType.TIMEOUT, f"no complete response within {limit:.1f}s")
    outcomes: list[AssertionResult] = []
    captured: dict[str, str] = {}
    if response is not None:
        outcomes = _assert(step, response)
        captured = _captures(step, response)
        failure = _verdict(
            step,
            method=request.method,
            url=url,
            response=response,
            outcomes=outcomes,
            captured=captured,
        )
    exchange = Exchange(
        step=step.name,
        url=url,
        method=request.method,
        status=response.status if response else None,
        phases=timeline.phases(),
        response_bytes=len(response.body) if response else None,
        tls=response.tls if response else None,
        assertions=tuple(outcomes),
        request_excerpt=_request_excerpt(request, url, captures) if failure else None,
        response_excerpt=response.excerpt() if failure and response else None,
    )
    result = step_result(step.name, request.method, started=started, clock=clock, failure=failure)
    return _StepDone(result, exchange, captured)


@dataclass
class _Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    content_type: str
    elapsed: float
    tls: Any = None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return assertions.MISSING

    def excerpt(self) -> str:
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"HTTP {self.status}\n{head}\n\n{self.body[:EXCERPT].decode('utf-8', 'replace')}"


class Timeline:
    """Moments of one exchange (perf_counter), and the phases they make."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}
        self.spans: dict[str, float] = {}
        self.handshakes: list[Handshake] = []  # filled by the TLS layer (tls.watch_handshakes)
        self.used = 0  # handshakes already counted in a phase
        self.dns_done: float | None = None

    def resolved(self) -> None:
        """The name was resolved: the DNS phase ends, the connect phase may begin."""
        self.mark("dns_end")
        self.dns_done = self.marks["dns_end"]
        self.add("dns", "dns_start", "dns_end")

    def mark(self, name: str) -> None:
        """Note a moment; the first of each name counts (redirects repeat them)."""
        self.marks.setdefault(name, time.perf_counter())

    def add(self, phase: str, start: str, end: str) -> None:
        """Add the span between two moments to a phase, then forget them (next hop)."""
        if start in self.marks and end in self.marks:
            span = self.marks.pop(end) - self.marks.pop(start)
            self.spans[phase] = self.spans.get(phase, 0.0) + max(span, 0.0)

    def phases(self) -> dict[str, float]:
        """Seconds per phase reached; ``total`` from the request's start to its last byte."""
        spans = {k: round(v, 6) for k, v in self.spans.items()}
        if "start" in self.marks and "end" in self.marks:
            spans["total"] = round(self.marks["end"] - self.marks["start"], 6)
        return spans


def _trace_config() -> aiohttp.TraceConfig:
    """Hooks that turn aiohttp's events into a timeline (passed per request)."""
    config = aiohttp.TraceConfig()

    def on(then: Any) -> Any:
        async def hook(_: Any, context: SimpleNamespace, __: Any) -> None:
            then(context.trace_request_ctx)

        return hook

    def connected(timeline: Timeline) -> None:
        # aiohttp resolves the name inside connection creation: connect starts after DNS.
        if "connect_start" in timeline.marks and timeline.dns_done is not None:
            timeline.marks["connect_start"] = max(
                timeline.marks["connect_start"], timeline.dns_done
            )
        if len(timeline.handshakes) > timeline.used:  # TLS: connected when the handshake began
            began = timeline.handshakes[timeline.used].started
            timeline.used += 1
            timeline.mark("tls_done")
            timeline.marks["tcp_done"] = timeline.marks["tls_start"] = began
            timeline.add("connect", "connect_start", "tcp_done")
            timeline.add("tls", "tls_start", "tls_done")
        else:
            timeline.mark("tcp_done")
            timeline.add("connect", "connect_start", "tcp_done")

    def response_started(timeline: Timeline) -> None:
        now = time.perf_counter()
        timeline.marks["headers_received"] = now
        timeline.add("processing", "headers_sent", "headers_received")
        timeline.marks["body_start"] = now

    config.on_request_start.append(on(lambda t: t.mark("start")))
    config.on_dns_resolvehost_start.append(on(lambda t: t.mark("dns_start")))
    config.on_dns_resolvehost_end.append(on(Timeline.resolved))
    config.on_connection_create_start.append(on(lambda t: t.mark("connect_start")))
    config.on_connection_create_end.append(on(connected))
    config.on_request_headers_sent.append(on(lambda t: t.mark("headers_sent")))
    config.on_request_end.append(on(response_started))
    config.on_request_redirect.append(on(response_started))
    return config


_TRACE = _trace_config()


async def _send(
    request: HttpRequest, url: str, captures: Mapping[str, str], timeline: Timeline
) -> _Response:
    timeline.handshakes = watch_handshakes()
    family = {"any": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}[request.ip]
    ssl_context = context_for(request.tls) if url.startswith("https:") else None
    connector = aiohttp.TCPConnector(force_close=True, family=family, use_dns_cache=False)
    headers = {k: fill_captures(v, captures) for k, v in request.headers.items()}
    auth = None
    if request.auth is not None and request.auth.basic is not None:
        auth = aiohttp.BasicAuth(
            request.auth.basic.user, fill_captures(request.auth.basic.password, captures)
        )
    elif request.auth is not None and request.auth.bearer is not None:
        headers["Authorization"] = f"Bearer {fill_captures(request.auth.bearer, captures)}"
    async with aiohttp.ClientSession(connector=connector, trace_configs=[_TRACE]) as session:
        try:
            async with session.request(
                request.method,
                url,
                headers=headers,
                auth=auth,
                allow_redirects=request.follow_redirects,
                ssl=ssl_context or True,
                server_hostname=request.tls.server_name,
                trace_request_ctx=timeline,
                **_body(request, captures),
            ) as response:
                last = timeline.handshakes[-1].ssl_object if timeline.handshakes else None
                tls = describe_chain(last, time.time())
                body = await response.content.read(MAX_BODY)
                end = time.perf_counter()  # one moment ends both the transfer and the total
                timeline.marks["end"] = end
                timeline.add("transfer", "body_start", "end")
                timeline.marks["end"] = end
                return _Response(
                    status=response.status,
                    headers=dict(response.headers),
                    body=body,
                    content_type=response.headers.get("Content-Type", ""),
                    elapsed=timeline.marks["end"] - timeline.marks.get("start", 0.0),
                    tls=tls,
                )
        except aiohttp.ClientConnectorDNSError as exc:
            message = f"cannot resolve {exc.host}: {exc.os_error}"
            raise StepFailure(ErrorType.DNS_ERROR, message) from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            message = f"TLS failed for {url}: {first_line(str(exc))}"
            raise StepFailure(ErrorType.TLS_ERROR, message) from None
        except aiohttp.ClientConnectorError as exc:
            message = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}"
            raise StepFailure(ErrorType.CONNECTION_ERROR, message) from None
        except (aiohttp.ClientError, OSError) as exc:
            message = f"{request.method} {url}: {type(exc).__name__}: {exc}"
            raise StepFailure(ErrorType.CONNECTION_ERROR, message) from None


def _body(request: HttpRequest, captures: Mapping[str, str]) -> dict[str, Any]:
    if request.json_body is not None:
        return {"json": _fill_data(request.json_body, captures)}
    if request.form is not None:
        return {"data": {k: fill_captures(v, captures) for k, v in request.form.items()}}
    if request.body is not None:
        return {"data": fill_captures(request.body, captures).encode()}
    return {}


def _fill_data(value: Any, captures: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return fill_captures(value, captures)
    if isinstance(value, list):
        return [_fill_data(item, captures) for item in value]
    if isinstance(value, dict):
        return {key: _fill_data(item, captures) for key, item in value.items()}
    return value


def _facts(response: _Response) -> dict[str, Any]:
    days = response.tls.days_left if response.tls is not None else None
    return {
        "status": response.status,
        "response_time": response.elapsed,
        "body": response.text(),
        "content_type": response.content_type,
        "headers": response.headers,
        **({"cert_days_left": days} if days is not None else {}),
    }


def _assert(step: HttpStep, response: _Response) -> list[AssertionResult]:
    return assertion_results(step.expect, _facts(response), response.json())


def _captures(step: HttpStep, response: _Response) -> dict[str, str]:
    facts, body = _facts(response), response.json()
    found = {}
    for name, capture in step.capture.items():
        if capture.source == "body":
            found[name] = response.text()
            continue
        value = assertions.value_of(capture.source, facts, body)
        if value is not assertions.MISSING and value is not None:
            found[name] = value if isinstance(value, str) else json.dumps(value)
    return found


def _verdict(
    step: HttpStep,
    *,
    method: str,
    url: str,
    response: _Response,
    outcomes: list[AssertionResult],
    captured: Mapping[str, str],
) -> StepFailure | None:
    failure = failed_assertions(outcomes)
    if failure is not None:
        return failure
    checks_status = any(a.subject == "status" for a in step.expect)
    if not checks_status and response.status >= 400:
        return StepFailure(ErrorType.HTTP_ERROR, f"HTTP {response.status} for {method} {url}")
    missing = [name for name in step.capture if name not in captured]
    if missing:
        sources = ", ".join(f"{n} from {step.capture[n].source}" for n in missing)
        return StepFailure(ErrorType.ASSERTION_FAILED, f"nothing to capture: {sources}")
    return None


def _request_excerpt(request: HttpRequest, url: str, captures: Mapping[str, str]) -> str:
    """The request as on-call would replay it (secrets are masked with the whole result)."""
    head = "\n".join(f"{k}: {fill_captures(v, captures)}" for k, v in request.headers.items())
    body = _body(request, captures)
    payload = json.dumps(body["json"]) if "json" in body else str(body.get("data", ""))
    return f"{request.method} {url}\n{head}\n\n{payload[:EXCERPT]}".rstrip()
