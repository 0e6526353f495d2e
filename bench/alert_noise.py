"""How many pages on-call gets per incident, and how fast, with the shipped rules and routes.

Scripted incidents against the split deployment as it would run: `parcours collector`,
one `parcours agent` per location (paris and lyon probe one shop, tokyo another), the
demo checkout on mobile and desktop every 30 s with the default retry, Prometheus
scraping and evaluating every 15 s with the shipped rule file, and Alertmanager with
the shipped config (only the receivers' URLs changed; its timings as shipped). The
journey's sensitivity is `low` (half of its locations), so that one broken location
of three is expected to page nobody.

Incidents, one after the other, each from a healthy state:
- blip: one order fails, its retry passes;
- outage: the checkout answers HTTP 500 everywhere for 5 minutes;
- slow: every page takes 3.5 s for 7 minutes (a warning for the team, not a page);
- collector down while broken: the collector stops for 3 minutes mid-outage;
- agent frozen: the paris agent is stopped (SIGSTOP) for 3 minutes;
- one of three: tokyo's shop breaks for 3 minutes.

It prints, per incident, the pages (on-call notifications that open an incident, by
Alertmanager group), the team notifications, the resolved notices, the false
all-clears, and the break → page and repair → resolved times; targets: blip 0 pages,
1 page per incident, 0 false all-clears, resolved within one interval + 60 s.

    .venv/bin/python -m bench.alert_noise            # about 40 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import write
from probes.demo_shop.app import FAULTS
from probes.demo_shop.faults import Faults
from probes.demo_shop.server import RunningShop, start_demo_shop
from tests.services import (
    Webhook,
    aget,
    alertmanager,
    collector_command,
    free_port,
    prometheus,
    promql,
    started_process,
    stop_process,
    wait_until,
    webhook_server,
)
from tests.test_alerting_e2e import RULES
from tests.test_oncall_two_locations import (
    agent_command,
    checkout_journey,
    shipped_config_with_receivers,
)

INTERVAL = 30.0
SCRAPE = "15s"
LOCATIONS = ("paris", "lyon", "tokyo")
DEFAULTS = f"""
interval: {INTERVAL:.0f}s
timeout: 25s
alerting: {{sensitivity: low}}
"""


@dataclass
class Tally:
    """What one incident sent to on-call and to the team."""

    name: str
    pages: dict[str, str] = field(default_factory=dict)  # Alertmanager group -> alert name
    team: dict[str, str] = field(default_factory=dict)
    resolved: int = 0
    false_all_clears: int = 0
    break_to_page: float | None = None
    repair_to_resolved: float | None = None


class Watch:
    """Reads the webhook receiver's notifications from a point in time."""

    def __init__(self, receiver: Webhook) -> None:
        self.receiver = receiver
        self.since = 0

    def start(self) -> None:
        self.since = len(self.receiver.notifications)

    def new(self) -> list[tuple[float, str, dict[str, Any]]]:
        return self.receiver.notifications[self.since :]

    def tally(self, tally: Tally, broken_at: float, repaired_at: float | None) -> Tally:
        for at, path, body in self.new():
            name = body["groupLabels"].get("alertname", "?")
            firing = [a for a in body["alerts"] if a["status"] == "firing"]
            resolved = [a for a in body["alerts"] if a["status"] == "resolved"]
            if path.endswith("/oncall") and firing:
                if not tally.pages and tally.break_to_page is None:
                    tally.break_to_page = at - broken_at
                tally.pages[body["groupKey"]] = name
            elif firing:
                tally.team[body["groupKey"]] = name
            for alert in resolved:
                tally.resolved += 1
                if alert["labels"]["alertname"] != "ParcoursJourneyFailing":
                    continue  # Parcours' own outage ending is news, not a false all-clear
                if repaired_at is None or at < repaired_at:
                    tally.false_all_clears += 1
                elif tally.repair_to_resolved is None:
                    tally.repair_to_resolved = at - repaired_at
        return tally


async def healthy(prom: str) -> None:
    async def all_green() -> bool:
        found = await promql(prom, 'parcours_journey_success{journey="checkout"} == 1')
        up = await promql(prom, "parcours_agent_up == 1")
        return len(found) == 2 * len(LOCATIONS) and len(up) == len(LOCATIONS)

    await wait_until(all_green, 10 * INTERVAL, "every location and device green", every=5)


async def settle(prom: str, watch: Watch) -> None:
    """Back to green, every alert resolved, before the next incident."""
    await healthy(prom)

    async def quiet() -> bool:
        # Burn-rate alerts keep firing for up to 6 h after an outage (their windows): they
        # are counted where they notify, not waited for.
        alerts = await promql(
            prom, 'ALERTS{alertstate="firing",alertname!~"ParcoursErrorBudgetBurn.*"}'
        )
        return not alerts

    await wait_until(quiet, 10 * INTERVAL, "no alert firing", every=5)
    await asyncio.sleep(60)  # resolved notices go out within the 30 s group_interval
    watch.start()


async def incident(
    name: str,
    watch: Watch,
    breaks: Callable[[], Any],
    repairs: Callable[[], Any],
    *,
    hold: float,
    after: float = INTERVAL + 90,
) -> Tally:
    """Break, hold, repair, wait for the dust to settle; count what on-call received."""
    broken_at = time.monotonic()
    result = breaks()
    if asyncio.iscoroutine(result):
        await result
    await asyncio.sleep(hold)
    result = repairs()
    if asyncio.iscoroutine(result):
        await result
    repaired_at = time.monotonic()
    await asyncio.sleep(after)
    tally = watch.tally(Tally(name), broken_at, repaired_at)
    print(
        f"{name}: {len(tally.pages)} page(s) {sorted(tally.pages.values())}, "
        f"{len(tally.team)} team notice(s) {sorted(tally.team.values())}, "
        f"{tally.resolved} resolved, {tally.false_all_clears} false all-clear(s), "
        f"break->page {_s(tally.break_to_page)}, repair->resolved {_s(tally.repair_to_resolved)}",
        flush=True,
    )
    return tally


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


def set_faults(*shops: RunningShop, **switches: Any) -> Callable[[], None]:
    def apply() -> None:
        for shop in shops:
            shop.app[FAULTS].current = Faults().merged(switches)

    return apply


async def main() -> None:
    west, east = await start_demo_shop(), await start_demo_shop()
    tallies: list[Tally] = []
    try:
        async with webhook_server() as (receiver, hook_url):
            with tempfile.TemporaryDirectory() as name, contextlib.ExitStack() as stack:
                tmp = Path(name)
                port = free_port()
                collector = f"http://127.0.0.1:{port}"
                log = tmp / "processes.log"
                am = stack.enter_context(alertmanager(tmp, shipped_config_with_receivers(hook_url)))
                prom = stack.enter_context(
                    prometheus(
                        tmp,
                        [f"127.0.0.1:{port}"],
                        rule_files=[RULES],
                        alertmanager=am,
                        interval=SCRAPE,
                    )
                )
                collector_args = collector_command(port, tmp / "collector")
                collector_process = stack.enter_context(started_process(collector_args, log))
                west_config = checkout_journey(tmp / "west.yaml", west, DEFAULTS)
                east_config = checkout_journey(tmp / "east.yaml", east, DEFAULTS)
                agents = {
                    location: stack.enter_context(
                        started_process(
                            agent_command(
                                east_config if location == "tokyo" else west_config,
                                collector,
                                location,
                            ),
                            log,
                        )
                    )
                    for location in LOCATIONS
                }
                watch = Watch(receiver)
                print("waiting for every location to be green", flush=True)
                await settle(prom, watch)
                heal = set_faults(west, east)

                tallies.append(
                    await incident(
                        "blip", watch, set_faults(west, east, blip_checkouts=1), heal, hold=5
                    )
                )
                await settle(prom, watch)
                tallies.append(
                    await incident(
                        "5-minute outage",
                        watch,
                        set_faults(west, east, checkout_500=True),
                        heal,
                        hold=300,
                    )
                )
                await settle(prom, watch)
                tallies.append(
                    await incident(
                        "slow pages",
                        watch,
                        set_faults(west, east, delay_ms=3500),
                        heal,
                        hold=420,
                    )
                )
                await settle(prom, watch)

                async def break_then_stop_collector() -> None:
                    heal()
                    set_faults(west, east, checkout_500=True)()
                    await asyncio.sleep(2 * INTERVAL + 60)  # paged by then
                    stop_process(collector_process)
                    await asyncio.sleep(180)
                    stack.enter_context(started_process(collector_args, log))

                    async def back() -> bool:
                        return (await aget(f"{collector}/-/ready"))[0] == 200

                    await wait_until(back, 60, "the collector back")

                tallies.append(
                    await incident(
                        "collector down while broken",
                        watch,
                        break_then_stop_collector,
                        heal,
                        hold=INTERVAL,
                    )
                )
                await settle(prom, watch)
                tallies.append(
                    await incident(
                        "agent frozen",
                        watch,
                        lambda: agents["paris"].send_signal(signal.SIGSTOP),
                        lambda: agents["paris"].send_signal(signal.SIGCONT),
                        hold=180,
                    )
                )
                await settle(prom, watch)
                tallies.append(
                    await incident(
                        "one of three locations broken (low sensitivity)",
                        watch,
                        set_faults(east, checkout_500=True),
                        set_faults(east),
                        hold=180,
                    )
                )
    finally:
        await west.stop()
        await east.stop()
    write(
        "alert_noise",
        {
            "interval_seconds": INTERVAL,
            "scrape_and_evaluation": SCRAPE,
            "incidents": [
                {
                    "incident": t.name,
                    "pages": sorted(t.pages.values()),
                    "team_notices": sorted(t.team.values()),
                    "resolved_notices": t.resolved,
                    "false_all_clears": t.false_all_clears,
                    "break_to_page_seconds": t.break_to_page,
                    "repair_to_resolved_seconds": t.repair_to_resolved,
                }
                for t in tallies
            ],
        },
    )


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__).parse_args()
    asyncio.run(main())
