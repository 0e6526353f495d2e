"""The result document is the contract between agent and collector."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import probes.result as result_module
from probes.result import (
    CONDITIONS_MAX_ENTRIES,
    SCHEMA_VERSION,
    BrowserSection,
    BudgetCheck,
    ErrorType,
    FailedRequest,
    PageResult,
    Rating,
    ResultFormatError,
    RunResult,
    Status,
    StepResult,
    fit_document,
    from_dict,
    rate,
    to_dict,
)
from tests import documents

ROOT = Path(__file__).resolve().parent.parent


def sample() -> RunResult:
    return RunResult(
        run_id="r1",
        journey="checkout",
        kind="browser",
        device="mobile",
        location="paris",
        agent="agent-1",
        started_at=100.0,
        finished_at=101.5,
        status=Status.FAILED,
        steps=(
            StepResult("home", "goto", Status.PASSED, 100.0, 0.4),
            StepResult(
                "buy",
                "click",
                Status.FAILED,
                100.4,
                1.1,
                ErrorType.HTTP_ERROR,
                "HTTP 500 for POST /checkout",
                0.05,
            ),
        ),
        browser=BrowserSection(
            clicks=2,
            click_budget=3,
            pages=(
                PageResult(
                    "home",
                    "http://shop/",
                    ttfb_seconds=0.1,
                    lcp_seconds=1.2,
                    cls=0.0,
                    transfer_bytes=1200,
                    requests=4,
                    failed_requests=(
                        FailedRequest("http://shop/x.png", "GET", 404, None, "Image"),
                    ),
                    ratings={"lcp_seconds": "good"},
                    missing={"inp_seconds": "none"},
                ),
            ),
        ),
        budgets=(BudgetCheck("page_load", "warn", 3.0, 3.4, "home"),),
        error_type=ErrorType.HTTP_ERROR,
        error_message="HTTP 500 for POST /checkout",
        failed_step="buy",
    )


def test_a_result_survives_the_wire_unchanged() -> None:
    original = sample()

    received = from_dict(json.loads(json.dumps(to_dict(original))))

    assert received == original
    assert to_dict(original)["duration_seconds"] == 1.5
    assert to_dict(original)["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=99), "$.schema_version: expected 1 or 2, got 99"),
        (lambda d: d.pop("journey"), "$.journey: expected a non-empty string"),
        (lambda d: d.update(status="maybe"), "$.status: expected one of passed, degraded"),
        (
            lambda d: d["steps"][1].update(duration_seconds="slow"),
            "$.steps[1].duration_seconds: expected a finite number",
        ),
        (
            lambda d: d["browser"]["pages"][0].update(lcp_seconds=-1),
            "$.browser.pages[0].lcp_seconds: expected a number >= 0",
        ),
        (
            lambda d: d["steps"][1].update(error_type="oops"),
            "$.steps[1].error_type: expected one of timeout",
        ),
        (lambda d: d.update(run_id="x" * 500), "$.run_id: expected 1-128 letters, digits"),
        (lambda d: d.update(steps={}), "$.steps: expected a list"),
        (
            lambda d: d["browser"].update(clicks=True),
            "$.browser.clicks: expected an integer >= 0",
        ),
    ],
)
def test_a_bad_document_is_refused_with_its_json_path(change: Any, message: str) -> None:
    data = to_dict(sample())
    change(data)

    with pytest.raises(ResultFormatError) as caught:
        from_dict(data)

    assert str(caught.value).startswith(message)


# What an agent of the previous release sends: clicks and pages at the top, no sections.
VERSION_1_DOCUMENT: dict[str, Any] = {
    "schema_version": 1,
    "run_id": "old-agent-1",
    "journey": "checkout",
    "kind": "browser",
    "device": "mobile",
    "location": "paris",
    "agent": "edge-old",
    "started_at": 100.0,
    "finished_at": 102.0,
    "duration_seconds": 2.0,
    "status": "passed",
    "clicks": 3,
    "click_budget": 3,
    "attempt": 1,
    "steps": [
        {"name": "home", "action": "goto", "status": "passed", "started_at": 100.0,
         "duration_seconds": 0.5, "error_type": None, "error_message": None},
    ],
    "pages": [{"step": "home", "url": "http://shop/", "lcp_seconds": 1.1, "requests": 3}],
    "budgets": [],
    "error_type": None,
    "error_message": None,
    "failed_step": None,
    "conditions": {},
}  # fmt: skip


def test_a_version_1_document_from_an_older_agent_is_read_into_the_browser_section() -> None:
    received = from_dict(json.loads(json.dumps(VERSION_1_DOCUMENT)))

    assert received.browser is not None
    assert (received.browser.clicks, received.browser.click_budget) == (3, 3)
    assert [(p.step, p.lcp_seconds) for p in received.browser.pages] == [("home", 1.1)]
    assert received.exchanges == ()


def test_a_version_1_document_without_its_clicks_is_refused_where_it_put_them() -> None:
    document = {k: v for k, v in VERSION_1_DOCUMENT.items() if k != "clicks"}

    with pytest.raises(ResultFormatError, match=r"^\$\.clicks: expected an integer >= 0"):
        from_dict(document)


def test_a_check_that_is_not_a_browser_journey_carries_no_browser_section() -> None:
    data = to_dict(replace(sample(), kind="http", device="none", browser=None))

    assert data["browser"] is None
    assert from_dict(json.loads(json.dumps(data))).browser is None


def test_the_decoder_knows_how_to_read_every_field_of_every_contract_type() -> None:
    contract_types = [
        value
        for value in vars(result_module).values()
        if dataclasses.is_dataclass(value) and value.__module__ == result_module.__name__
    ]

    assert len(contract_types) >= 10
    for cls in contract_types:  # a field of a type it cannot read fails here, not in production
        assert result_module._plan(cls), cls


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ResultFormatError, match=r"^\$: expected an object, got list"):
        from_dict([])


@pytest.mark.parametrize(
    ("vital", "value", "rating"),
    [
        ("lcp_seconds", 2.5, Rating.GOOD),
        ("lcp_seconds", 2.51, Rating.NEEDS_IMPROVEMENT),
        ("lcp_seconds", 4.01, Rating.POOR),
        ("cls", 0.1, Rating.GOOD),
        ("cls", 0.26, Rating.POOR),
        ("inp_seconds", 0.3, Rating.NEEDS_IMPROVEMENT),
        ("ttfb_seconds", 0.9, Rating.NEEDS_IMPROVEMENT),
        ("fcp_seconds", 1.8, Rating.GOOD),
        ("lcp_seconds", None, None),
    ],
)
def test_web_vitals_are_rated_by_googles_thresholds(
    vital: str, value: float | None, rating: Rating | None
) -> None:
    assert rate(vital, value) == rating


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_result_contract_imports_only_the_standard_library() -> None:
    imported = imports_of(ROOT / "probes" / "result.py")

    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert imported, "the check must see the module's imports"
    assert not outside


# What the collector shares with agents: the result contract, the config (it schedules the
# split deployment's jobs), the NATS wire, and the slot arithmetic. Never the runners.
SHARED_WITH_THE_COLLECTOR = ("probes.result", "probes.config", "probes.bus", "probes.slots")
AGENT_MACHINERY = ("probes.agent", "probes.runners", "probes.browser", "playwright")


def test_the_collector_imports_nothing_of_the_agent_but_the_contract() -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "collector").rglob("*.py")
        for name in imports_of(path)
        if (name.startswith("probes") and not name.startswith(SHARED_WITH_THE_COLLECTOR))
        or name.startswith("playwright")
    }

    assert offending == set()


def test_the_collector_pulls_in_no_agent_machinery_even_indirectly() -> None:
    code = (
        "import sys, collector.app, collector.bus, collector.dispatcher\n"
        f"print(sorted(m for m in sys.modules if m.startswith({AGENT_MACHINERY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )

    assert done.stdout.strip() == "[]"


def test_nothing_imports_the_cli_entry_point() -> None:
    offending = {
        str(path.relative_to(ROOT))
        for package in ("probes", "collector")
        for path in (ROOT / package).rglob("*.py")
        if "probes.cli" in imports_of(path) and path.name != "cli.py"
    }

    assert offending == set()


def test_a_run_with_hostile_captures_and_endless_cleanup_is_cut_to_what_a_collector_takes() -> None:
    # A python step may return any mapping; a page may throw thousands of third-party errors.
    base = documents.result()
    hostile = replace(
        base,
        browser=replace(
            base.browser,
            captures={"order": "x" * 100_000, **{f"k{i}": "v" for i in range(300)}},
            cleanup=base.steps * 400,
            pages=(replace(base.browser.pages[0], third_party_js_exceptions=("e" * 9000,) * 300),),
        ),
    )
    with pytest.raises(ResultFormatError):
        from_dict(to_dict(hostile))  # as measured: over the contract's limits

    fitted = from_dict(fit_document(to_dict(hostile)))
    assert len(fitted.browser.captures) == CONDITIONS_MAX_ENTRIES
    assert fitted.browser.captures["order"].endswith("…")
    assert len(fitted.browser.cleanup) == 500
    assert len(fitted.browser.pages[0].third_party_js_exceptions) == 100
