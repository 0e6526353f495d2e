"""A journey with every setting resolved: what the scheduler and runners receive."""

from __future__ import annotations

from dataclasses import dataclass

from probes.config.model import JourneyBudgets, Step


@dataclass(frozen=True)
class JourneySpec:
    """One journey, validated and with defaults applied; never raw YAML."""

    name: str
    kind: str
    base_url: str | None
    interval: float
    timeout: float
    step_timeout: float
    devices: tuple[str, ...]
    retries: int
    fail_on_js_error: bool
    budgets: JourneyBudgets
    steps: tuple[Step, ...]
    source: str

    @property
    def click_budget(self) -> int:
        """The click limit shown beside the count: fail level if set, else warn."""
        clicks = self.budgets.clicks
        if clicks is None:
            return 0
        limit = clicks.fail if clicks.fail is not None else clicks.warn
        return int(limit or 0)
