"""API and TCP checks against real local servers: phases, assertions, TLS, captures, errors."""

from __future__ import annotations

import asyncio
import json
import secrets
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from probes.config import ConfigError, load_config_text
from probes.result import ErrorType, Exchange, RunResult, Status, from_dict, to_dict
from probes.runners.dispatch import run_check
from probes.runners.outcome import RunRequest
from tests.services import free_port
from tests.tls_certs import ServerCert, make_cert

SERVER_DELAY = 0.4


class Api:
    """A small API that measures its own delays, so tests compare with the truth."""

    def __init__(self) -> None:
        self.token = secrets.token_urlsafe(16)
        self.slept: list[float] = []
        self.app = web.Application()
        self.app.router.add_get("/ok", self.ok)
        self.app.router.add_get("/slow", self.slow)
        self.app.router.add_get("/status/{code}", self.status)
        self.app.router.add_post("/login", self.login)
        self.app.router.add_get("/profile", self.profile)
        self.app.router.add_get("/moved", self.moved)

    async def ok(self, _: web.Request) -> web.Response:
        body = {"status": "ok", "items": [{"id": 7}, {"id": 9}], "name": "Café"}
        text = json.dumps(body, ensure_ascii=False)
        return web.json_response(text=text, headers={"X-Served-By": "api-1"})

    async def slow(self, _: web.Request) -> web.Response:
        started = time.perf_counter()
        await asyncio.sleep(SERVER_DELAY)
        self.slept.append(time.perf_counter() - started)
        return web.json_response({"status": "ok"})

    async def status(self, request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="as asked")

    async def login(self, request: web.Request) -> web.Response:
        credentials = await request.json()
        if credentials.get("password") != "hunter2-long":
            return web.json_response({"error": "no"}, status=401)
        return web.json_response({"token": self.token, "user_id": 42})

    async def profile(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "login first"}, status=401)
        return web.json_response({"user_id": 42, "name": "Ada"})

    async def moved(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")


async def serve(app: web.Application, tls: ServerCert | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    context = tls.server_context() if tls else None
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    return runner, port


@pytest.fixture
async def api() -> AsyncIterator[tuple[Api, str]]:
    server = Api()
    runner, port = await serve(server.app)
    yield server, f"http://localhost:{port}"
    await runner.cleanup()


async def check(yaml_text: str, env: dict[str, str] | None = None) -> RunResult:
    config = load_config_text(textwrap.dedent(yaml_text), "api.yaml", env=env or {})
    outcome = await run_check(config.journeys[0], RunRequest("none"), config.masker)
    return outcome.result


def one_step(base_url: str, request: str, expect: list[str], extra: str = "") -> str:
    lines = "\n".join(f"          - {json.dumps(item)}" for item in expect)
    return f"""
journeys:
  - name: api
    kind: http
    base_url: {base_url}
    steps:
      - name: call
        request: {request}
        expect:
{lines or "          []"}{extra}
"""


def only(result: RunResult) -> Exchange:
    (exchange,) = result.exchanges
    return exchange


async def test_an_http_check_reports_every_phase_and_the_server_delay_in_processing(
    api: tuple[Api, str],
) -> None:
    server, url = api
    fast = only(await check(one_step(url, "{url: /ok}", ["status == 200"])))
    slow = only(await check(one_step(url, "{url: /slow}", ["status == 200"])))

    assert {"dns", "connect", "processing", "transfer", "total"} <= set(fast.phases)
    assert "tls" not in fast.phases  # plain HTTP
    served = server.slept[-1]
    assert slow.phases["processing"] - fast.phases["processing"] == pytest.approx(served, rel=0.10)
    assert (
        slow.phases["total"]
        >= sum(slow.phases[p] for p in ("dns", "connect", "processing", "transfer")) * 0.99
    )


ASSERTIONS = [
    ("status == 200", "status (200) == 200", True),
    ("status in [201, 204]", "status (200) in [201, 204]", False),
    ("status in 200..299", "status (200) in 200..299", True),
    ("response_time < 0ms", "response_time (", False),
    ("header.X-Served-By == api-1", "header.X-Served-By (api-1) == api-1", True),
    ("header.X-Missing exists", "header.X-Missing (missing) exists", False),
    ("body contains Café", "body (", True),
    ("body matches ^<html", "body (", False),
    ('$.status == "ok"', '$.status (ok) == "ok"', True),
    ('$.status == "down"', '$.status (ok) == "down"', False),
    ("$.items.length > 0", "$.items.length (2) > 0", True),
    ("$.items[1].id == 7", "$.items[1].id (9) == 7", False),
    ("content_type contains json", "content_type (application/json; charset=utf-8)", True),
    ("content_type contains xml", "content_type (application/json; charset=utf-8)", False),
]


@pytest.mark.parametrize(("expression", "message", "passes"), ASSERTIONS)
async def test_each_assertion_passes_or_fails_naming_expected_and_actual(
    api: tuple[Api, str], expression: str, message: str, passes: bool
) -> None:
    _, url = api

    result = await check(one_step(url, "{url: /ok}", [expression]))

    (outcome,) = only(result).assertions
    assert outcome.passed is passes
    assert outcome.message.startswith(message), outcome.message
    assert outcome.message.endswith(expression.split(" ", 1)[1])  # operator and expected
    if not passes:
        assert (result.status, result.error_type) == (Status.FAILED, ErrorType.ASSERTION_FAILED)
        assert result.error_message == outcome.message


async def test_a_status_of_500_fails_as_http_error_when_no_assertion_checks_the_status(
    api: tuple[Api, str],
) -> None:
    _, url = api

    result = await check(one_step(url, "{url: /status/500}", []))

    assert (result.error_type, result.failed_step) == (ErrorType.HTTP_ERROR, "call")
    assert f"HTTP 500 for GET {url}/status/500" == result.error_message
    assert "HTTP 500" in (only(result).response_excerpt or "")


async def test_a_login_then_fetch_check_uses_the_token_and_it_shows_nowhere(
    api: tuple[Api, str],
) -> None:
    server, url = api
    config = f"""
journeys:
  - name: account
    kind: http
    base_url: {url}
    steps:
      - name: log in
        request:
          method: POST
          url: /login
          json: {{user: ada, password: "${{API_PASSWORD}}"}}
        expect: [status == 200, $.token exists]
        capture:
          token: {{from: $.token, secret: true}}
          user: $.user_id
      - name: profile
        request:
          url: /profile?user={{{{user}}}}
          headers: {{Authorization: "Bearer {{{{token}}}}"}}
        expect: ['$.name == "Ada"', status == 404]
"""
    with capture_logs() as logs:
        result = await check(config, env={"API_PASSWORD": "hunter2-long"})

    document = json.dumps(to_dict(result))
    assert [s.status for s in result.steps] == [Status.PASSED, Status.FAILED]
    assert result.error_message == "status (200) == 404"  # the token worked: 200, not 401
    assert only_step(result, "profile").url.endswith("/profile?user=42")
    assert "Bearer ***" in (only_step(result, "profile").request_excerpt or "")
    assert server.token not in document
    assert "hunter2-long" not in document
    assert server.token not in json.dumps(logs, default=str)


def only_step(result: RunResult, step: str) -> Exchange:
    (exchange,) = [e for e in result.exchanges if e.step == step]
    return exchange


@pytest.mark.parametrize(("days", "shown"), [(-3, -3), (2, 2), (90, 90)])
async def test_https_reports_the_tls_phase_and_the_certificates_days_left(
    tmp_path: Path, days: float, shown: float
) -> None:
    cert = make_cert(tmp_path / "tls", days_left=days)
    runner, port = await serve(Api().app, cert)
    try:
        result = await check(
            one_step(
                f"https://localhost:{port}",
                f"{{url: /ok, tls: {{verify: {str(days > 0).lower()}, ca_bundle: {cert.ca}}}}}",
                ["cert_days_left > 14"],
            )
        )
    finally:
        await runner.cleanup()

    exchange = only(result)
    assert exchange.tls is not None and exchange.tls.days_left is not None
    assert exchange.tls.days_left == pytest.approx(shown, abs=0.01)
    assert exchange.tls.earliest_expiry == pytest.approx(cert.not_after.timestamp(), abs=1)
    assert {"connect", "tls", "processing"} <= set(exchange.phases)
    assert exchange.phases["tls"] > 0
    (assertion,) = exchange.assertions
    assert assertion.passed is (days > 14)
    if days <= 14:
        assert assertion.message.startswith(
            f"cert_days_left ({shown}"
        ) or assertion.message.startswith(f"cert_days_left ({shown:.0f}"), assertion.message


async def test_an_expired_certificate_with_verification_on_is_a_tls_error(tmp_path: Path) -> None:
    cert = make_cert(tmp_path / "tls", days_left=-3)
    runner, port = await serve(Api().app, cert)
    try:
        result = await check(
            one_step(
                f"https://localhost:{port}", f"{{url: /ok, tls: {{ca_bundle: {cert.ca}}}}}", []
            )
        )
    finally:
        await runner.cleanup()

    assert result.error_type is ErrorType.TLS_ERROR
    assert "expired" in (result.error_message or "")


async def test_an_unknown_issuer_is_a_tls_error(tmp_path: Path) -> None:
    cert = make_cert(tmp_path / "tls", days_left=30)
    runner, port = await serve(Api().app, cert)
    try:
        result = await check(one_step(f"https://localhost:{port}", "{url: /ok}", []))
    finally:
        await runner.cleanup()

    assert result.error_type is ErrorType.TLS_ERROR
    assert "certificate verify failed" in (result.error_message or "")


@pytest.mark.parametrize(
    ("base_url", "error_type", "words"),
    [
        ("http://no-such-host.invalid", ErrorType.DNS_ERROR, "cannot resolve no-such-host.invalid"),
        (f"http://127.0.0.1:{free_port()}", ErrorType.CONNECTION_ERROR, "cannot connect to"),
    ],
    ids=["dns", "refused"],
)
async def test_dns_and_connection_failures_have_their_own_error_types(
    base_url: str, error_type: ErrorType, words: str
) -> None:
    result = await check(one_step(base_url, "{url: /ok}", []))

    assert result.error_type is error_type
    assert words in (result.error_message or "")


async def test_a_browser_field_on_an_http_check_is_a_located_config_error() -> None:
    text = """\
journeys:
  - name: api
    kind: http
    steps:
      - name: call
        click: {role: button, name: Buy}
        request: {url: http://x.test/}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "api.yaml", env={})

    assert str(caught.value).startswith(
        "api.yaml:6: journey \"api\", steps[0].click: unknown key 'click'"
    )
    assert "expected one of: name, request, expect, capture" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("expect: [stat == 200]", "unknown subject 'stat'"),
        ("expect: [status < ok]", "status compares with a number"),
        ("expect: ['$.items..x == 1']", "cannot read JSON path"),
        (
            "capture: {tok: $.token}\n      - name: two\n        request: {url: '/{{other}}'}",
            "uses {{other}}, which no earlier step captures",
        ),
    ],
    ids=["subject", "type", "json-path", "capture-before-use"],
)
def test_assertion_and_capture_mistakes_are_refused_at_load(line: str, expected: str) -> None:
    text = f"""\
journeys:
  - name: api
    kind: http
    base_url: http://x.test
    steps:
      - name: one
        request: {{url: /}}
        {line}
"""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "api.yaml", env={})

    assert expected in str(caught.value)
    assert str(caught.value).startswith("api.yaml:")


async def test_a_result_with_exchanges_travels_as_a_version_2_document(
    api: tuple[Api, str],
) -> None:
    _, url = api
    result = await check(one_step(url, "{url: /ok}", ["status == 200"]))

    document = json.loads(json.dumps(to_dict(result)))

    assert document["schema_version"] == 2
    assert from_dict(document) == result


async def tcp_server(banner: bytes, tls: ServerCert | None = None) -> tuple[asyncio.Server, int]:
    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        await writer.drain()
        writer.close()

    context = tls.server_context() if tls else None
    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


async def test_a_tcp_check_reads_the_banner_over_tls_and_times_each_phase(tmp_path: Path) -> None:
    cert = make_cert(tmp_path / "tls", days_left=40)
    server, port = await tcp_server(b"220 gateway ready\r\n", cert)
    try:
        result = await check(
            f"""
journeys:
  - name: payment-gateway
    kind: tcp
    host: localhost
    port: {port}
    tls: {{ca_bundle: {cert.ca}}}
    expect: ["banner matches ^220 gateway", "connect_time < 5s", "cert_days_left > 14"]
"""
        )
    finally:
        server.close()

    exchange = only(result)
    assert result.status is Status.PASSED, result.error_message
    assert {"dns", "connect", "tls", "total"} <= set(exchange.phases)
    assert [a.passed for a in exchange.assertions] == [True, True, True]
    assert exchange.tls is not None and exchange.tls.days_left == pytest.approx(40, abs=0.01)


async def test_a_tcp_check_fails_on_a_wrong_banner_and_on_a_closed_port() -> None:
    server, port = await tcp_server(b"500 maintenance\r\n")
    try:
        wrong = await check(
            f"journeys:\n  - name: g\n    kind: tcp\n    host: 127.0.0.1\n    port: {port}\n"
            "    expect: ['banner matches ^220']\n"
        )
    finally:
        server.close()
    closed = await check(
        f"journeys:\n  - name: g\n    kind: tcp\n    host: 127.0.0.1\n    port: {free_port()}\n"
    )

    assert (wrong.error_type, wrong.error_message) == (
        ErrorType.ASSERTION_FAILED,
        "banner (500 maintenance\r\n) matches ^220",
    )
    assert closed.error_type is ErrorType.CONNECTION_ERROR


def demo_api_faults() -> list[tuple[dict[str, Any], ErrorType, str]]:
    return [
        ({"api_status": 503}, ErrorType.ASSERTION_FAILED, "status (503) == 200"),
        ({"api_malformed": True}, ErrorType.ASSERTION_FAILED, "$.token (missing) exists"),
    ]


@pytest.mark.parametrize(("switches", "error_type", "message"), demo_api_faults())
async def test_the_demo_shops_api_faults_fail_the_demo_api_check(
    shop: Any,
    faults: Callable[..., None],
    switches: dict[str, Any],
    error_type: ErrorType,
    message: str,
) -> None:
    from probes.demo_shop.server import demo_journey_text

    config = load_config_text(demo_journey_text(), variables=shop.variables, env={})
    (api_check,) = [j for j in config.journeys if j.name == "mobile-app-api"]
    faults(**switches)

    outcome = await run_check(api_check, RunRequest("none"), config.masker)

    assert (outcome.result.error_type, outcome.result.failed_step) == (error_type, "log in")
    assert message in (outcome.result.error_message or "")


async def test_the_demo_shops_https_api_shows_its_certificate_and_a_slow_handshake(
    shop: Any, faults: Callable[..., None]
) -> None:
    from probes.demo_shop.server import demo_journey_text

    config = load_config_text(demo_journey_text(), variables=shop.variables, env={})
    (tls_check,) = [j for j in config.journeys if j.name == "mobile-app-api-tls"]

    healthy = (await run_check(tls_check, RunRequest("none"), config.masker)).result
    faults(tls_delay_ms=400)
    slow = (await run_check(tls_check, RunRequest("none"), config.masker)).result

    assert healthy.status is Status.PASSED, healthy.error_message
    tls = only(healthy).tls
    assert tls is not None and tls.days_left is not None and 89 < tls.days_left <= 90
    assert tls.subject == "commonName=Parcours demo shop" and tls.version in ("TLSv1.2", "TLSv1.3")
    held = shop.tls_front.last_delay  # what the shop measured it held the handshake
    assert held is not None and held >= 0.4
    assert only(slow).phases["tls"] >= held, "the handshake includes the time it was held"
    assert only(healthy).phases["tls"] < held
