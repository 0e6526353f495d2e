"""The shape of a probe configuration file, checked by pydantic at load.

Every model forbids unknown keys: a typo such as ``clikc:`` must be an
error, not a step that silently does nothing. Regexes and locators are
compiled or checked here so that nothing about the config fails at run time.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from probes.bus.contract import LOCATION_PATTERN
from probes.config.durations import parse_duration

# Editors see what ops write (a string such as 3s), not the float it becomes after load.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\d+(\.\d+)?(ms|s|m|h))+$",
            "examples": ["500ms", "3s", "1m30s"],
        }
    ),
]
LocationName = Annotated[
    str,
    Field(
        pattern=rf"^{LOCATION_PATTERN}$",
        description="letters, digits, _ and -, at most 64 characters (a NATS subject token)",
    ),
]
# Where a check runs in the split deployment; None: every location that has a live agent.
Locations = Annotated[list[LocationName], Field(min_length=1)] | None
Name = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.:/-]{0,79}$",
        description="letters, digits, space and _ . : / -, at most 80 characters",
    ),
]


def _compile_pattern(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression as text, got {value!r}")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


Pattern = Annotated[
    str,
    BeforeValidator(_compile_pattern),
    WithJsonSchema({"type": "string", "format": "regex"}),
]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors; values are frozen after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


LOCATOR_KINDS = ("role", "label", "placeholder", "text", "test_id", "css")
# WAI-ARIA roles, as Playwright's get_by_role accepts them.
ARIA_ROLES = frozenset(
    [
        "alert",
        "alertdialog",
        "application",
        "article",
        "banner",
        "blockquote",
        "button",
        "caption",
        "cell",
        "checkbox",
        "code",
        "columnheader",
        "combobox",
        "complementary",
        "contentinfo",
        "definition",
        "deletion",
        "dialog",
        "directory",
        "document",
        "emphasis",
        "feed",
        "figure",
        "form",
        "generic",
        "grid",
        "gridcell",
        "group",
        "heading",
        "img",
        "insertion",
        "link",
        "list",
        "listbox",
        "listitem",
        "log",
        "main",
        "marquee",
        "math",
        "meter",
        "menu",
        "menubar",
        "menuitem",
        "menuitemcheckbox",
        "menuitemradio",
        "navigation",
        "none",
        "note",
        "option",
        "paragraph",
        "presentation",
        "progressbar",
        "radio",
        "radiogroup",
        "region",
        "row",
        "rowgroup",
        "rowheader",
        "scrollbar",
        "search",
        "searchbox",
        "separator",
        "slider",
        "spinbutton",
        "status",
        "strong",
        "subscript",
        "superscript",
        "switch",
        "tab",
        "table",
        "tablist",
        "tabpanel",
        "term",
        "textbox",
        "time",
        "timer",
        "toolbar",
        "tooltip",
        "tree",
        "treegrid",
        "treeitem",
    ]
)


class Locator(Strict):
    """How to find an element, the way Playwright recommends (role first, CSS last).

    Only visible elements match, and an action needs exactly one: a locator that matches
    two buttons fails naming them, rather than clicking the first (often the wrong one).
    ``within`` (a parent), ``has_text`` and ``exact`` narrow it down; ``nth`` picks one
    of several visible matches (0 is the first, -1 the last).
    """

    role: str | None = None
    name: str | None = None
    level: Annotated[int, Field(ge=1, le=6)] | None = None  # headings: 1 is <h1>
    exact: bool = False
    label: str | None = None
    placeholder: str | None = None
    text: str | None = None
    test_id: str | None = None
    css: str | None = None
    within: Locator | None = None
    has_text: str | None = None
    nth: Annotated[int, Field(ge=-100, le=100)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Locator:
        given = [kind for kind in LOCATOR_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a locator needs exactly one of {', '.join(LOCATOR_KINDS)}; got "
                f"{', '.join(given) or 'none'} (example: {{role: button, name: Add to cart}})"
            )
        if self.role is not None and self.role not in ARIA_ROLES:
            hint = difflib.get_close_matches(self.role, sorted(ARIA_ROLES), n=1)
            raise ValueError(
                f"unknown role '{self.role}'"
                + (f"; did you mean '{hint[0]}'?" if hint else "")
                + " (expected an ARIA role such as button, link, textbox, heading)"
            )
        if self.name is not None and self.role is None:
            raise ValueError("'name' only goes with 'role' (example: {role: link, name: Shoes})")
        if self.level is not None and self.role != "heading":
            raise ValueError(
                "'level' only goes with 'role: heading' (example: {role: heading, level: 1})"
            )
        return self

    def describe(self) -> str:
        """Short form for error messages: ``role=button[name="Add to cart"]``, with its scope."""
        if self.role is not None:
            text = f'role={self.role}[name="{self.name}"]' if self.name else f"role={self.role}"
            text += f"[level={self.level}]" if self.level is not None else ""
        else:
            kind = next(k for k in LOCATOR_KINDS if getattr(self, k) is not None)
            text = f'{kind}="{getattr(self, kind)}"'
        if self.has_text is not None:
            text += f' has_text="{self.has_text}"'
        if self.within is not None:
            text += f" within {self.within.describe()}"
        if self.nth is not None:
            text += f" nth={self.nth}"
        return text


class Expectation(Strict):
    """One thing the user must see after a step; exactly one key (and text's options).

    ``text`` is a case-insensitive substring by default (Playwright's); a real page's
    "...back in stock" contains "In stock", so ``exact: true`` (the element's whole text,
    case-sensitive), ``case_sensitive: true`` or ``text_matches`` (a regex) say more.
    """

    text: str | None = None
    text_matches: Pattern | None = None
    exact: bool = False
    case_sensitive: bool = False
    visible: Locator | None = None
    hidden: Locator | None = None
    url: Pattern | None = None
    title: Pattern | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        kinds = ("text", "text_matches", "visible", "hidden", "url", "title")
        given = [k for k in kinds if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"an expectation needs exactly one of {', '.join(kinds)}; got "
                f"{', '.join(given) or 'none'} (example: - text: Thank you for your order)"
            )
        if (self.exact or self.case_sensitive) and self.text is None:
            raise ValueError("'exact' and 'case_sensitive' only go with 'text'")
        return self

    def describe_text(self) -> str:
        """How the text is matched, for messages: ``text "In stock" (exact)``."""
        if self.text_matches is not None:
            return f"text matching /{self.text_matches}/"
        mode = "exact" if self.exact else "case-sensitive" if self.case_sensitive else None
        return f'text "{self.text}"' + (f" ({mode})" if mode else "")


class Threshold(Strict):
    """A budget on one measure: over ``warn`` is degraded, over ``fail`` is failed."""

    warn: float | None = None
    fail: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warn is None and self.fail is None:
            raise ValueError("a budget needs warn, fail or both (example: {warn: 2s, fail: 5s})")
        if self.warn is not None and self.fail is not None and self.warn > self.fail:
            raise ValueError(f"warn ({self.warn}) must not exceed fail ({self.fail})")
        return self


class DurationThreshold(Threshold):
    """A budget whose levels are durations."""

    warn: Duration | None = None
    fail: Duration | None = None


class CountThreshold(Threshold):
    """A budget whose levels are counts (clicks, requests, bytes)."""

    warn: Annotated[int, Field(ge=0)] | None = None
    fail: Annotated[int, Field(ge=0)] | None = None


class StepBudgets(Strict):
    """Budgets checked on one step and the pages it loaded."""

    duration: DurationThreshold | None = None
    page_load: DurationThreshold | None = None
    ttfb: DurationThreshold | None = None
    fcp: DurationThreshold | None = None
    lcp: DurationThreshold | None = None
    inp: DurationThreshold | None = None
    cls: Threshold | None = None
    transfer_bytes: CountThreshold | None = None
    requests: CountThreshold | None = None
    # Failed requests of the page's own site (404 images, a dead script); others' beacons
    # failing are recorded but not counted here.
    failed_requests: CountThreshold | None = None


class JourneyBudgets(StepBudgets):
    """Step budgets applied to every step, plus whole-journey ones."""

    journey_duration: DurationThreshold | None = None
    clicks: CountThreshold | None = None


class Capture(Strict):
    """A value a step reads off the page (an order number), recorded in the result and
    usable by later steps as ``{{name}}``: an element's text, an attribute, or the URL.
    ``pattern`` keeps the regex's first group (or the whole match)."""

    text: Locator | None = None
    attribute: str | None = None
    of: Locator | None = None
    url: bool = False
    pattern: Pattern | None = None
    secret: bool = False  # masked like a configured secret (a one-time password)

    @model_validator(mode="after")
    def _one_source(self) -> Capture:
        sources = [self.text is not None, self.attribute is not None, self.url]
        if sum(sources) != 1:
            raise ValueError(
                "a capture needs exactly one of text, attribute (with of), url "
                "(example: order: {text: {test_id: order-id}, pattern: 'Order (\\w+)'})"
            )
        if (self.attribute is None) != (self.of is None):
            raise ValueError("'attribute' and 'of' go together: {attribute: href, of: {...}}")
        return self


CAPTURE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
CAPTURE_USE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
PYTHON_TARGET = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
LOAD_STATES = ("load", "domcontentloaded", "networkidle")
ACTIONS = (
    "goto",
    "click",
    "fill",
    "select",
    "check",
    "uncheck",
    "press",
    "hover",
    "wait_for",
    "wait_for_load",
    "python",
)
ACTION_EXTRAS: dict[str, tuple[str, ...]] = {
    "fill": ("value",),
    "select": ("option",),
    "press": ("on",),
    "wait_for": ("state",),
}
# An optional step (a cookie banner that is sometimes there) waits this long by default.
OPTIONAL_TIMEOUT_SECONDS = 2.0


class Step(Strict):
    """One user action, then what the user must see."""

    name: Name
    goto: str | None = None
    click: Locator | None = None
    fill: Locator | None = None
    select: Locator | None = None
    check: Locator | None = None
    uncheck: Locator | None = None
    press: str | None = None
    hover: Locator | None = None
    wait_for: Locator | None = None
    wait_for_load: Literal["load", "domcontentloaded", "networkidle"] | None = None
    python: (
        Annotated[
            str, Field(pattern=PYTHON_TARGET, description="module:function (or file.py:function)")
        ]
        | None
    ) = None
    value: str | None = None
    option: str | None = None
    on: Locator | None = None
    state: Literal["visible", "hidden", "attached", "detached"] | None = None
    timeout: Duration | None = None
    devices: Annotated[list[str], Field(min_length=1)] | None = None  # only on these devices
    optional: bool = False  # not there (element missing, timeout): skipped, the run goes on
    capture: dict[Annotated[str, Field(pattern=CAPTURE_NAME)], Capture] = Field(
        default_factory=dict
    )
    expect: list[Expectation] = Field(default_factory=list)
    budgets: StepBudgets | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a step needs exactly one action of {', '.join(ACTIONS)}; got "
                f"{', '.join(given) or 'none'} (example: click: {{role: button, name: Buy}})"
            )
        action = given[0]
        for extras_action, extras in ACTION_EXTRAS.items():
            for extra in extras:
                if getattr(self, extra) is not None and action != extras_action:
                    raise ValueError(f"'{extra}' only goes with '{extras_action}', not '{action}'")
        if action == "fill" and self.value is None:
            raise ValueError("'fill' needs a 'value' (example: value: ${secret:SHOP_PASSWORD})")
        if action == "select" and self.option is None:
            raise ValueError("'select' needs an 'option' (its value or visible label)")
        return self

    @property
    def action(self) -> str:
        """Which of the actions this step performs."""
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    def runs_on(self, device: str) -> bool:
        """Whether this step is part of the journey on this device."""
        return self.devices is None or device in self.devices

    def captures_used(self) -> set[str]:
        """``{{name}}`` values this step's action needs from earlier captures."""
        texts = (self.goto, self.value, self.option, self.press)
        return {name for text in texts if text for name in CAPTURE_USE.findall(text)}


def captures_before_use(
    steps: Iterable[tuple[str, Iterable[str], Iterable[str]]], known: set[str], where: str = ""
) -> set[str]:
    """Every ``{{name}}`` a step uses was captured by an earlier step; returns all names.
    Each step is (its name, the names it uses in order, the names it captures): browser
    journeys and HTTP checks check the same way."""
    for name, uses, captures in steps:
        for used in uses:
            if used not in known:
                raise ValueError(
                    f"{where}step '{name}' uses {{{{{used}}}}}, which no earlier step captures"
                )
        known = known | set(captures)
    return known


def fill_captures(text: str, captures: Mapping[str, str]) -> str:
    """``{{name}}`` replaced by what an earlier step captured (checked at load to exist)."""
    return CAPTURE_USE.sub(lambda m: captures.get(m[1], ""), text)


# How many of the locations that run a journey must fail before it pages, as a share of
# them: low waits for half, medium for a quarter, high pages on one location (two scheduled
# runs in a row there). One failed run in one location (a blip) never pages.
SENSITIVITY = {"low": 0.5, "medium": 0.25, "high": 0.05}


class Alerting(Strict):
    """When a failing journey pages: a ``sensitivity`` preset, or ``min_locations``."""

    sensitivity: Literal["low", "medium", "high"] | None = None
    min_locations: Annotated[int, Field(ge=1, le=1000)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Alerting:
        if (self.sensitivity is None) == (self.min_locations is None):
            raise ValueError(
                "alerting needs exactly one of sensitivity (low, medium, high) or min_locations"
            )
        return self

    @property
    def threshold(self) -> float:
        """What results carry: N locations (1 or more), or a share of them (below 1)."""
        if self.min_locations is not None:
            return float(self.min_locations)
        return SENSITIVITY[str(self.sensitivity)]


JsErrorAction = Literal["fail", "degrade", "record"]


class JsErrorPolicy(Strict):
    """What an uncaught exception does to a run, by whose script threw it. The site's own
    degrade (a bug worth a look, not a page at 3 a.m.); third parties' (a chat widget, an
    ad) are recorded and exported: paging on-call for someone else's bug helps nobody."""

    own: JsErrorAction = "degrade"
    third_party: JsErrorAction = "record"


class Viewport(Strict):
    """Screen size in CSS pixels."""

    width: Annotated[int, Field(ge=200, le=8000)]
    height: Annotated[int, Field(ge=200, le=8000)]


class DeviceProfile(Strict):
    """A custom device (a kiosk, a POS terminal, a TV): what the site sees, what it runs on."""

    viewport: Viewport
    device_scale_factor: Annotated[float, Field(gt=0, le=5)] = 1.0
    is_mobile: bool = False
    has_touch: bool = False
    user_agent: str | None = None
    network: str | None = None
    cpu_slowdown: Annotated[float, Field(ge=1, le=20)] | None = None

    def context_options(self) -> dict[str, object]:
        """Options for Playwright's ``browser.new_context``."""
        options: dict[str, object] = {
            "viewport": {"width": self.viewport.width, "height": self.viewport.height},
            "device_scale_factor": self.device_scale_factor,
            "is_mobile": self.is_mobile,
            "has_touch": self.has_touch,
        }
        if self.user_agent is not None:
            options["user_agent"] = self.user_agent
        return options


class NetworkProfile(Strict):
    """A custom network: latency added to each request, and throughput limits (0 = none)."""

    latency: Duration
    download_kbps: Annotated[float, Field(ge=0)]
    upload_kbps: Annotated[float, Field(ge=0)]


Policy = Literal["never", "on_failure", "always"]


class EvidenceSettings(Strict):
    """What to keep for on-call: on a failed step (and the last page of a degraded run)."""

    screenshots: Policy = "on_failure"
    full_page: bool = False
    html: bool = True
    # on_failure records in the retry that follows a failure (retries >= 1); always, in
    # every run, costs about 30 % of wall time.
    trace: Policy = "on_failure"


MIN_INTERVAL_SECONDS = 1.0
DEFAULT_TIMEOUT_SECONDS = 60.0


def _interval(value: object) -> float:
    seconds = parse_duration(value)
    if seconds < MIN_INTERVAL_SECONDS:
        raise ValueError(f"expected an interval of at least 1s, got {value!r}")
    return seconds


Interval = Annotated[float, BeforeValidator(_interval), WithJsonSchema({"type": "string"})]


class Journey(Strict):
    """A named list of steps; unset settings come from the file's defaults."""

    name: Name
    kind: Literal["browser"] = "browser"
    description: str | None = None
    base_url: str | None = None
    interval: Interval | None = None
    timeout: Duration | None = None
    step_timeout: Duration | None = None
    devices: list[str] | None = None
    locations: Locations = None
    network: str | None = None
    cpu_slowdown: Annotated[float, Field(ge=1, le=20)] | None = None
    retries: Annotated[int, Field(ge=0, le=5)] | None = None
    fail_on_js_error: bool | None = None  # shorthand: true is js_errors.own: fail
    js_errors: JsErrorPolicy | None = None
    alerting: Alerting | None = None
    budgets: JourneyBudgets | None = None
    evidence: EvidenceSettings | None = None
    steps: Annotated[list[Step], Field(min_length=1)]
    # Run after the journey whatever happened (cancel the test order), recorded apart from
    # its steps; they never change the run's verdict.
    cleanup: list[Step] = Field(default_factory=list)

    @model_validator(mode="after")
    def _captures_defined_before_use(self) -> Journey:
        def uses(steps: list[Step]) -> Iterable[tuple[str, list[str], Iterable[str]]]:
            return ((s.name, sorted(s.captures_used()), s.capture) for s in steps)

        known = captures_before_use(uses(self.steps), set())
        captures_before_use(uses(self.cleanup), known, "cleanup ")
        return self


class Defaults(Strict):
    """Settings every journey of the file inherits unless it sets its own."""

    interval: Interval = 60.0
    timeout: Duration | None = None  # 60 s when unset; when set, it must be below the interval
    step_timeout: Duration = 10.0
    devices: list[str] = Field(default_factory=lambda: ["desktop", "mobile"])
    locations: Locations = None
    network: str | None = None  # None: each device's own (mobile 4g, desktop unthrottled)
    cpu_slowdown: Annotated[float, Field(ge=1, le=20)] | None = None
    retries: Annotated[int, Field(ge=0, le=5)] = 1
    fail_on_js_error: bool | None = None  # shorthand: true is js_errors.own: fail
    js_errors: JsErrorPolicy | None = None
    alerting: Alerting = Field(default_factory=lambda: Alerting(sensitivity="medium"))
    base_url: str | None = None
    budgets: JourneyBudgets | None = None
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)


def field_names(model: type[BaseModel]) -> list[str]:
    """Keys a model accepts, for 'did you mean' hints."""
    return list(model.model_fields)


# The rules from the field that shape a run's verdict: a page loads in 3 s, and the
# server answers well before that (TTFB over 1.8 s is "poor" in Google's thresholds).
# Both are warn levels: slow is not broken, and alerts must tell them apart.
BUILTIN_BUDGETS = JourneyBudgets(
    page_load=DurationThreshold(warn="3s"),
    ttfb=DurationThreshold(warn="1.8s"),
)
# A sale in at most three clicks is a design finding, not operational health: counted,
# shown and exported against this limit, alertable as info, but it only changes a run's
# verdict when the user sets a ``clicks`` budget explicitly.
CLICK_RULE = 3


def merged_budgets(*layers: JourneyBudgets | None) -> JourneyBudgets:
    """Budgets per measure from the last layer that sets it (built-in, file, journey)."""
    merged = BUILTIN_BUDGETS
    for layer in layers:
        if layer is not None:
            update = {k: v for k, v in layer if v is not None}
            merged = merged.model_copy(update=update)
    return merged
