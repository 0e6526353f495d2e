"""A journey with every setting resolved: what the scheduler and runners receive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from probes.conditions import Network
from probes.config.model import (
    CLICK_RULE,
    SENSITIVITY,
    DeviceProfile,
    EvidenceSettings,
    JourneyBudgets,
    JsErrorPolicy,
    Step,
)


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
    fail_on_js_error: bool  # the site's own uncaught exceptions fail the run
    budgets: JourneyBudgets
    steps: tuple[Step, ...]
    source: str
    network: str | None = None  # overrides the devices' own network when set
    cpu_slowdown: float | None = None
    # Only the custom profiles this journey uses, so that editing one reschedules its users.
    device_profiles: Mapping[str, DeviceProfile] = field(default_factory=dict)
    network_profiles: Mapping[str, Network] = field(default_factory=dict)
    evidence: EvidenceSettings = field(default_factory=EvidenceSettings)
    js_errors: JsErrorPolicy = field(default_factory=JsErrorPolicy)
    # When a failing check pages: N locations, or a share of those that run it (below 1).
    alert_min_locations: float = SENSITIVITY["medium"]
    cleanup: tuple[Step, ...] = ()  # browser journeys: run after the steps, whatever happened
    # Split deployment: where it runs; None: every location that has a live agent.
    locations: tuple[str, ...] | None = None
    # The kind's own validated settings, for kinds other than browser (HttpCheck, TcpCheck).
    settings: BaseModel | None = None

    @property
    def click_budget(self) -> int:
        """The click limit shown beside the count: the user's budget (fail level if set, else
        warn), or the three-click rule as a finding when the user set none."""
        clicks = self.budgets.clicks
        if clicks is None:
            return CLICK_RULE if self.kind == "browser" else 0
        limit = clicks.fail if clicks.fail is not None else clicks.warn
        return int(limit or 0)
