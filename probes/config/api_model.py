"""Settings of the checks that are not browser journeys: HTTP (API) and TCP.

The mobile app, the POS terminal and the kiosk talk to APIs, and a payment
gateway may speak neither HTTP nor HTML. These models are validated at load
like journeys: unknown keys refused, assertions parsed and type-checked,
captures checked against the steps that come before them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from probes import assertions
from probes.config import model
from probes.config.model import Alerting, Duration, Interval, Locations, Name, Strict

HTTP_SUBJECTS = frozenset(
    {"status", "response_time", "body", "content_type", "cert_days_left", "header"}
)
TCP_SUBJECTS = frozenset({"connect_time", "banner", "cert_days_left"})
CAPTURE_NAME = re.compile(model.CAPTURE_NAME)  # shared with browser journeys' captures


def _parser(allowed: frozenset[str]) -> Callable[[object], assertions.Assertion]:
    def parse(value: object) -> assertions.Assertion:
        if isinstance(value, assertions.Assertion):
            return value
        if not isinstance(value, str):
            raise ValueError(
                f"expected an assertion as text, such as 'status == 200', got {value!r:.60}"
            )
        return assertions.parse(value, allowed)

    return parse


_AS_TEXT = WithJsonSchema({"type": "string", "examples": ["status == 200", '$.status == "ok"']})
HttpAssertion: TypeAlias = Annotated[
    assertions.Assertion, BeforeValidator(_parser(HTTP_SUBJECTS)), _AS_TEXT
]
TcpAssertion: TypeAlias = Annotated[
    assertions.Assertion, BeforeValidator(_parser(TCP_SUBJECTS)), _AS_TEXT
]


class BasicAuth(Strict):
    """HTTP basic authentication; the password should come from a secret."""

    user: str
    password: str


class Auth(Strict):
    """Either basic credentials or a bearer token."""

    basic: BasicAuth | None = None
    bearer: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Auth:
        if (self.basic is None) == (self.bearer is None):
            raise ValueError(
                "auth needs exactly one of basic, bearer (example: {bearer: ${TOKEN}})"
            )
        return self


class TlsSettings(Strict):
    """How the server's certificate is checked, and what the client presents."""

    verify: bool = True
    ca_bundle: str | None = None  # a PEM file of CAs to trust instead of the system's
    client_cert: str | None = None  # PEM certificate (and key, unless client_key is set)
    client_key: str | None = None
    server_name: str | None = None  # SNI and the name checked, when it differs from the host


class HttpRequest(Strict):
    """One HTTP request; ``url`` is joined to the check's ``base_url`` when relative."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    form: dict[str, str] | None = None
    body: str | None = None
    auth: Auth | None = None
    follow_redirects: bool = True
    tls: TlsSettings = Field(default_factory=TlsSettings)
    ip: Literal["any", "ipv4", "ipv6"] = "any"
    timeout: Duration | None = None

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequest:
        given = [k for k in ("json_body", "form", "body") if getattr(self, k) is not None]
        if len(given) > 1:
            names = ", ".join("json" if k == "json_body" else k for k in given)
            raise ValueError(f"a request has at most one of json, form, body; got {names}")
        return self


class Capture(Strict):
    """A value taken from a response for later steps: ``$.token``, ``header.Location``."""

    source: str = Field(alias="from")
    secret: bool = False  # masked like configured secrets wherever it would show

    @model_validator(mode="after")
    def _readable(self) -> Capture:
        if self.source != "body":
            assertions.parse(f"{self.source} exists", HTTP_SUBJECTS)
        return self


def _capture(value: object) -> object:
    return {"from": value} if isinstance(value, str) else value


CaptureSpec = Annotated[Capture, BeforeValidator(_capture)]


class HttpStep(Strict):
    """One request, what its response must show, and what later steps may reuse."""

    name: Name
    request: HttpRequest
    expect: list[HttpAssertion] = Field(default_factory=list)
    capture: dict[str, CaptureSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _capture_names(self) -> HttpStep:
        for name in self.capture:
            if not CAPTURE_NAME.fullmatch(name):
                raise ValueError(f"capture name {name!r} must be letters, digits and _")
        return self


class CheckBase(Strict):
    """What every kind of check has; unset settings come from the file's defaults."""

    name: Name
    description: str | None = None
    interval: Interval | None = None
    timeout: Duration | None = None
    retries: Annotated[int, Field(ge=0, le=5)] | None = None
    alerting: Alerting | None = None
    locations: Locations = None


class HttpCheck(CheckBase):
    """An API check: one or more requests in order, later ones using earlier captures."""

    kind: Literal["http"]
    base_url: str | None = None
    steps: Annotated[list[HttpStep], Field(min_length=1)]

    @model_validator(mode="after")
    def _captures_defined_before_use(self) -> HttpCheck:
        steps = (
            (
                step.name,
                model.CAPTURE_USE.findall(step.request.model_dump_json(by_alias=True)),
                step.capture,
            )
            for step in self.steps
        )
        model.captures_before_use(steps, set())
        return self


class TcpCheck(CheckBase):
    """A TCP check: connect, optionally handshake TLS, optionally send and read a banner."""

    kind: Literal["tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    tls: TlsSettings | None = None
    send: str | None = None
    expect: list[TcpAssertion] = Field(default_factory=list)
    read_bytes: Annotated[int, Field(ge=1, le=65536)] = 1024
