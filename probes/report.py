"""The readable table `parcours test` prints: one block per run, one line per step."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

from probes.config.durations import format_duration
from probes.result import (
    MEASURES_BY_FIELD,
    PHASES,
    BudgetCheck,
    Exchange,
    Measure,
    PageResult,
    RunResult,
    Status,
    StepResult,
)
from probes.runners.budgets import UNIT_OF_BUDGET

COLOURS = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
STATUS_STYLE = {
    Status.PASSED: ("✓", "green"),
    Status.DEGRADED: ("!", "yellow"),
    Status.FAILED: ("✗", "red"),
    Status.SKIPPED: ("·", "dim"),
}


class Styler:
    """ANSI colour on a terminal, plain text elsewhere."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, style: str) -> str:
        return f"\033[{COLOURS[style]}m{text}\033[0m" if self.colour else text


def render(results: Iterable[RunResult], colour: bool = False) -> str:
    """All runs, then a summary line."""
    style = Styler(colour)
    runs = list(results)
    blocks = [_run_block(run, style) for run in runs]
    counts = {status: sum(1 for r in runs if r.status is status) for status in Status}
    summary = (
        f"{counts[Status.PASSED]} passed, {counts[Status.DEGRADED]} degraded, "
        f"{counts[Status.FAILED]} failed"
    )
    return "\n\n".join([*blocks, style(summary, "bold")]) + "\n"


def _run_block(run: RunResult, style: Styler) -> str:
    symbol, colour = STATUS_STYLE[run.status]
    header = (
        f"{style(symbol, colour)} {style(run.journey, 'bold')} · {run.kind} · {run.device} · "
        f"{style(run.status.value.upper(), colour)} in {format_duration(run.duration_seconds)}"
    )
    pages = run.browser.pages if run.browser else ()
    if run.browser:
        header += f" · clicks {run.browser.clicks}/{run.browser.click_budget}"
    lines = [header]
    cleanup = run.browser.cleanup if run.browser else ()
    width = max(len(step.name) for step in (*run.steps, *cleanup))
    for step in run.steps:
        lines.append(_step_line(step, width, style))
        lines.extend(f"      {_page_line(page)}" for page in pages if page.step == step.name)
        for exchange in (e for e in run.exchanges if e.step == step.name):
            lines.append(f"      {_exchange_line(exchange)}")
            lines.extend(
                f"        {style('✓' if a.passed else '✗', 'green' if a.passed else 'red')} "
                f"{a.message}"
                for a in exchange.assertions
            )
        lines.extend(_budget_line(b, "      ", style) for b in run.budgets if b.step == step.name)
    lines.extend(_budget_line(b, "  ", style) for b in run.budgets if b.step is None)
    if run.browser and run.browser.captures:
        captured = ", ".join(f"{k}={v}" for k, v in run.browser.captures.items())
        lines.append(f"  captured {captured}")
    if run.browser and run.browser.cleanup:
        lines.append("  clean-up (not part of the verdict):")
        lines.extend(_step_line(s, width, style) for s in run.browser.cleanup)
    if _click_finding(run):
        assert run.browser is not None
        lines.append(
            f"  {style('finding', 'yellow')} the sale took {run.browser.clicks} clicks, over "
            f"the {run.browser.click_budget}-click rule (a design finding: it does not "
            "change the verdict unless the journey sets a clicks budget)"
        )
    if run.error_message and run.status is not Status.FAILED:
        lines.append(f"  {run.error_message}")
    return "\n".join(lines)


def _click_finding(run: RunResult) -> bool:
    """More clicks than the rule, with no clicks budget that already said so."""
    browser = run.browser
    over_rule = bool(browser and browser.click_budget and browser.clicks > browser.click_budget)
    return over_rule and not any(b.measure == "clicks" for b in run.budgets)


def _budget_line(check: BudgetCheck, indent: str, style: Styler) -> str:
    colour = "yellow" if check.level == "warn" else "red"
    return (
        f"{indent}{style('budget', colour)} {check.measure} "
        f"{_value(check.measure, check.value)} > {check.level} {_value(check.measure, check.limit)}"
    )


def _step_line(step: StepResult, width: int, style: Styler) -> str:
    symbol, colour = STATUS_STYLE[step.status]
    duration = (
        "skipped" if step.status is Status.SKIPPED else format_duration(step.duration_seconds)
    )
    line = f"  {style(symbol, colour)} {step.name:<{width}}  {duration:>7}"
    if step.interaction_seconds is not None:
        line += f"  INP {format_duration(step.interaction_seconds)}"
    if step.error_type is not None:
        line += f"  {style(step.error_type.value, 'red')}: {step.error_message}"
    elif step.error_message:  # an optional step that was not done says why
        line += f"  {step.error_message}"
    return line


# What a page's line shows, in order; labels, units and ratings come from the catalogue.
SHOWN = ("ttfb_seconds", "fcp_seconds", "lcp_seconds", "load_seconds", "cls", "transfer_bytes")


def _page_line(page: PageResult) -> str:
    parts = [page.url]
    for field in SHOWN:
        value = getattr(page, field)
        if value is not None:
            parts.append(_shown(MEASURES_BY_FIELD[field], value) + _rating(page, field))
    parts.append(f"{page.requests} req")
    if page.failed_requests:
        parts.append(f"{len(page.failed_requests)} failed")
    if page.js_exceptions:
        parts.append(f"{len(page.js_exceptions)} JS exceptions")
    return " · ".join(parts)


def _shown(measure: Measure, value: float) -> str:
    if measure.unit == "bytes":
        return f"{value / 1024:.1f} KiB"
    if measure.unit == "score":
        return f"{measure.label} {value:.3f}"
    if measure.unit == "count":
        return f"{int(value)} {measure.label}"
    return f"{measure.label} {format_duration(value)}"


def _exchange_line(exchange: Exchange) -> str:
    """``GET https://api/health · 200 · dns 2ms · connect 1ms · tls 9ms · … · cert 89 days``."""
    parts = [f"{exchange.method} {exchange.url}" if exchange.method else exchange.url]
    if exchange.status is not None:
        parts.append(str(exchange.status))
    parts.extend(
        f"{phase} {format_duration(exchange.phases[phase])}"
        for phase in PHASES
        if phase in exchange.phases
    )
    if exchange.tls is not None and exchange.tls.days_left is not None:
        parts.append(f"cert {exchange.tls.days_left:.0f} days")
    return " · ".join(parts)


def _rating(page: PageResult, name: str) -> str:
    rating = page.ratings.get(name)
    return f" ({rating})" if rating else ""


def _value(measure: str, value: float) -> str:
    unit = UNIT_OF_BUDGET.get(measure, "seconds")
    if unit in ("count", "bytes"):
        return str(int(value))
    if unit == "score":
        return f"{value:.3f}"
    return format_duration(value)


def render_repeats(results: Iterable[RunResult]) -> str:
    """After ``--repeat N``: each step's median and p95 over the runs, per journey and
    device, and how many runs passed: a flaky or slow step shows here, not in one run."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for run in results:
        if run.final:
            groups.setdefault((run.journey, run.device), []).append(run)
    lines = []
    for (journey, device), runs in groups.items():
        worked = sum(1 for r in runs if r.success)
        lines.append(f"{journey} · {device}: {worked}/{len(runs)} runs worked")
        durations: dict[str, list[float]] = {}
        for run in runs:
            for step in run.steps:
                if step.status is not Status.SKIPPED:
                    durations.setdefault(step.name, []).append(step.duration_seconds)
        width = max((len(name) for name in durations), default=0)
        for name, values in durations.items():
            lines.append(
                f"  {name:<{width}}  median {format_duration(statistics.median(values)):>7}"
                f"  p95 {format_duration(_p95(values)):>7}  ({len(values)} runs)"
            )
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def _p95(values: list[float]) -> float:
    """The 95th percentile by nearest rank (of 10 runs, the slowest but none)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
