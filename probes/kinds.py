"""The one registry of check kinds, read by config validation, scheduling and dispatch.

A kind brings its settings model (selected by ``kind:`` in the config, so the
JSON Schema shows each kind's fields and a field of another kind is a located
error), whether it runs once per device profile, the module that runs it
(imported only when a check of that kind runs, so ``parcours check`` and the
collector never load Playwright or aiohttp's client), and the metric families
its results add (the coverage test checks the collector exports them).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from probes.config.api_model import HttpCheck, TcpCheck
from probes.config.model import Journey

NO_DEVICE = "none"  # the device label of checks that do not run on a device profile


@dataclass(frozen=True)
class Kind:
    """One kind of check."""

    name: str
    settings: type[BaseModel]
    runner: str  # module with ``async def run_check(spec, context) -> RunOutcome``
    fans_out_over_devices: bool
    metric_families: tuple[str, ...]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "browser",
            Journey,
            "probes.runners.journey",
            fans_out_over_devices=True,
            metric_families=("parcours_page_lcp_seconds", "parcours_journey_clicks"),
        ),
        Kind(
            "http",
            HttpCheck,
            "probes.runners.http",
            fans_out_over_devices=False,
            metric_families=(
                "parcours_phase_seconds",
                "parcours_http_status_code",
                "probe_http_status_code",
            ),
        ),
        Kind(
            "tcp",
            TcpCheck,
            "probes.runners.tcp",
            fans_out_over_devices=False,
            metric_families=("parcours_phase_seconds",),
        ),
    )
}
