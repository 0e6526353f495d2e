"""Budget verdicts: which limits a run went over, and whether that means degraded or failed."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from probes.config.model import JourneyBudgets, JsErrorPolicy, Step, StepBudgets, Threshold
from probes.result import PAGE_MEASURES, BudgetCheck, PageResult, StepResult
from probes.runners.sites import same_site

# Budget name -> the PageResult field it limits, from the catalogue of measures.
BUDGETED = {m.budget: m.field for m in PAGE_MEASURES if m.budget is not None}
UNIT_OF_BUDGET = {
    **{m.budget: m.unit for m in PAGE_MEASURES if m.budget is not None},
    "duration": "seconds",
    "journey_duration": "seconds",
    "clicks": "count",
    "failed_requests": "count",
    "js_errors": "count",
    "third_party_js_errors": "count",
}


def over(
    measure: str, threshold: Threshold | None, value: float | None, step: str | None
) -> BudgetCheck | None:
    """The worst level a value exceeds, or None when within budget or unmeasured."""
    if threshold is None or value is None:
        return None
    if threshold.fail is not None and value > threshold.fail:
        return BudgetCheck(measure, "fail", threshold.fail, value, step)
    if threshold.warn is not None and value > threshold.warn:
        return BudgetCheck(measure, "warn", threshold.warn, value, step)
    return None


def check_budgets(
    budgets: JourneyBudgets,
    *,
    steps: Sequence[Step],
    step_results: Sequence[StepResult],
    pages: Sequence[PageResult],
    clicks: int,
    duration: float,
) -> list[BudgetCheck]:
    """Every budget exceeded by this run, journey-wide and per step."""
    own = {step.name: step.budgets for step in steps}
    found = [
        over("journey_duration", budgets.journey_duration, duration, None),
        over("clicks", budgets.clicks, float(clicks), None),
    ]
    for result in step_results:
        limits = _effective(budgets, own.get(result.name))
        found.append(over("duration", limits.duration, result.duration_seconds, result.name))
    for page in pages:
        limits = _effective(budgets, own.get(page.step))
        for name, attribute in BUDGETED.items():
            value = getattr(page, attribute)
            found.append(over(name, getattr(limits, name), value, page.step))
        own_failures = sum(1 for r in page.failed_requests if same_site(r.url, page.url))
        found.append(over("failed_requests", limits.failed_requests, own_failures, page.step))
    return [check for check in found if check is not None]


def js_error_checks(policy: JsErrorPolicy, pages: Sequence[PageResult]) -> list[BudgetCheck]:
    """Uncaught exceptions the policy says degrade the run, as warn-level checks (limit 0),
    so that they show, export and alert like any exceeded budget."""
    checks = []
    for page in pages:
        for measure, thrown, action in (
            ("js_errors", page.js_exceptions, policy.own),
            ("third_party_js_errors", page.third_party_js_exceptions, policy.third_party),
        ):
            if thrown and action == "degrade":
                checks.append(BudgetCheck(measure, "warn", 0, len(thrown), page.step))
    return checks


def _effective(journey: JourneyBudgets, step: StepBudgets | None) -> StepBudgets:
    if step is None:
        return journey
    update = {name: value for name, value in step if value is not None}
    return journey.model_copy(update=update)


def describe(checks: Iterable[BudgetCheck]) -> str:
    """One line naming each exceeded budget with its limit and the measured value."""
    return "; ".join(
        f"{c.measure} {_fmt(c.measure, c.value)} over {c.level} budget {_fmt(c.measure, c.limit)}"
        + (f" at step '{c.step}'" if c.step else "")
        for c in checks
    )


def _fmt(measure: str, value: float) -> str:
    unit = UNIT_OF_BUDGET.get(measure, "seconds")
    if unit in ("count", "bytes"):
        return str(int(value))
    if unit == "score":
        return f"{value:.3f}"
    return f"{value:.2f}s"
