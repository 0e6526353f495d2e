"""On-call, end to end: a broken shop pages with journey, step and error; repaired, it resolves.

Everything is real: `parcours run`, Prometheus loading the project's rule file,
Alertmanager loading the project's config (only the webhook URL and the
timings are changed for the test), and a webhook receiver in this test.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiosmtpd.controller import Controller

from probes.demo_shop.server import RunningShop
from tests.services import (
    Webhook,
    alertmanager,
    free_port,
    parcours_run,
    prometheus,
    wait_until,
    webhook_server,
)
from tests.test_run_with_prometheus import checkout_config

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "configs" / "prometheus" / "parcours-rules.yml"
AM_CONFIG = ROOT / "configs" / "alertmanager" / "alertmanager.yml"


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    async with webhook_server() as served:
        yield served


def alertmanager_config_for(webhook_url: str) -> dict[str, Any]:
    """The shipped Alertmanager config, pointed at the test and with short timings."""
    config: dict[str, Any] = yaml.safe_load(AM_CONFIG.read_text())
    config["templates"] = [str(AM_CONFIG.parent / pattern) for pattern in config["templates"]]
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = hook["url"].replace("http://127.0.0.1:9099", webhook_url)
    routes = [config["route"], *config["route"]["routes"]]
    for route in routes:
        route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    return config


async def test_a_broken_checkout_pages_with_journey_step_and_error_then_resolves(
    shop: RunningShop,
    faults: Callable[..., None],
    webhook: tuple[Webhook, str],
    tmp_path: Path,
) -> None:
    receiver, url = webhook
    with (
        parcours_run(checkout_config(tmp_path, shop), tmp_path / "data") as (_, collector),
        alertmanager(tmp_path, alertmanager_config_for(url)) as am,
        prometheus(
            tmp_path, [collector.removeprefix("http://")], rule_files=[RULES], alertmanager=am
        ) as _prom,
    ):

        async def healthy() -> bool:
            from tests.services import promql

            return bool(await promql(_prom, 'parcours_journey_success{journey="checkout"} == 1'))

        await wait_until(healthy, 30, "a healthy checkout in Prometheus")
        faults(checkout_500=True)
        broken_at = time.monotonic()

        async def paged() -> list[Any]:
            return receiver.alerts("ParcoursJourneyFailing", "firing")

        ((paged_at, path, alert), *_) = await wait_until(paged, 40, "the page")
        faults()  # repair: every switch back off
        repaired_at = time.monotonic()

        async def resolved() -> list[Any]:
            return receiver.alerts("ParcoursJourneyFailing", "resolved")

        ((resolved_at, _, done), *_) = await wait_until(resolved, 40, "the resolved notice")

    assert path == "/parcours/oncall"  # critical goes to the on-call receiver
    labels, notes = alert["labels"], alert["annotations"]
    # Identity is journey, location, device: the step and error are read into the page.
    assert "step" not in labels and "error_type" not in labels
    assert (labels["journey"], labels["severity"]) == ("checkout", "critical")
    assert 'at step "place order" (http_error)' in notes["summary"]
    assert "HTTP 500 for POST" in notes["error"] and "/checkout" in notes["error"]
    assert notes["run"].endswith(
        f"/latest-failure?location={labels['location']}&device={labels['device']}"
    )
    assert "var-journey=checkout" in notes["dashboard"]
    assert done["labels"]["journey"] == "checkout"
    print(
        f"break -> page {paged_at - broken_at:.1f}s, repair -> resolved "
        f"{resolved_at - repaired_at:.1f}s"
    )
    # Two failed runs 3 s apart, a 1 s scrape and evaluation, Alertmanager's 1 s group_wait.
    assert paged_at - broken_at < 20


def two_device_page(journey: str) -> list[dict[str, Any]]:
    """What Prometheus sends for one journey failing on mobile and desktop, each its own error."""
    errors = {
        "mobile": "HTTP 500 for POST /checkout",
        "desktop": 'no element matches test_id="pay"',
    }
    return [
        {
            "labels": {
                "alertname": "ParcoursJourneyFailing",
                "severity": "critical",
                "journey": journey,
                "location": "paris",
                "device": device,
            },
            "annotations": {
                "summary": f"Journey {journey} fails on {device} in paris",
                "error": error,
                "run": f"https://parcours.test/status/journeys/{journey}/latest-failure?device={device}",
                "dashboard": "https://grafana.test/d/parcours-journey",
            },
        }
        for device, error in errors.items()
    ]


async def test_the_shipped_slack_and_pagerduty_templates_render_each_alerts_own_error_and_link(
    webhook: tuple[Webhook, str], tmp_path: Path
) -> None:
    receiver, url = webhook
    config = alertmanager_config_for(url)
    example = yaml.safe_load(
        "\n".join(
            line.removeprefix("    # ")
            for line in AM_CONFIG.read_text().splitlines()
            if line.startswith("    #   ")
            or line.startswith("    # slack")
            or line.startswith("    # pagerduty")
        )
    )  # the commented examples, as a user would uncomment them
    slack = dict(example["slack_configs"][0], api_url=f"{url}/parcours/slack")
    pagerduty = dict(example["pagerduty_configs"][0], routing_key="test", url=f"{url}/parcours/pd")
    (oncall,) = [r for r in config["receivers"] if r["name"] == "oncall"]
    oncall.update(slack_configs=[slack], pagerduty_configs=[pagerduty])

    with alertmanager(tmp_path, config) as am:
        async with aiohttp.ClientSession() as session:
            posted = await session.post(
                f"http://{am}/api/v2/alerts", json=two_device_page("checkout")
            )
            assert posted.status == 200, await posted.text()

        async def both() -> list[str]:
            paths = {path for _, path, _ in receiver.notifications}
            return sorted(paths) if {"/parcours/slack", "/parcours/pd"} <= paths else []

        await wait_until(both, 30, "Slack and PagerDuty notifications")

    bodies = {path: body for _, path, body in receiver.notifications}
    slack_text = bodies["/parcours/slack"]["attachments"][0]["text"]
    pd = bodies["/parcours/pd"]
    for device, error in (("mobile", "HTTP 500 for POST /checkout"), ("desktop", "test_id=")):
        assert f"fails on {device} in paris" in slack_text
        assert error in slack_text and error in pd["payload"]["custom_details"]["alerts"]
        assert f"latest-failure?device={device}" in slack_text
    assert bodies["/parcours/slack"]["attachments"][0]["title"].startswith("[FIRING:2]")
    assert pd["payload"]["summary"].startswith("[FIRING:2] ParcoursJourneyFailing")


class Mailbox:
    """What a local SMTP server received (aiosmtpd's handler interface)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        return "250 OK"


async def test_the_shipped_email_template_is_delivered_by_smtp_with_each_alerts_error_and_link(
    webhook: tuple[Webhook, str], tmp_path: Path
) -> None:
    _, url = webhook
    config = alertmanager_config_for(url)
    lines = AM_CONFIG.read_text().splitlines()
    start = lines.index("    # email_configs:")
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("    #   "):
            break
        block.append(line)
    # The commented example, as a user would uncomment it.
    example = yaml.safe_load("\n".join(line.removeprefix("    # ") for line in block))
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        mail = dict(example["email_configs"][0], smarthost=f"127.0.0.1:{smtp.port}")
        for key in ("auth_username", "auth_password_file"):
            mail.pop(key)  # a local relay: no login (Alertmanager refuses one without TLS)
        mail["require_tls"] = False
        (oncall,) = [r for r in config["receivers"] if r["name"] == "oncall"]
        oncall["email_configs"] = [mail]
        with alertmanager(tmp_path, config) as am:
            async with aiohttp.ClientSession() as session:
                posted = await session.post(
                    f"http://{am}/api/v2/alerts", json=two_device_page("checkout")
                )
                assert posted.status == 200, await posted.text()

            async def delivered() -> bool:
                return bool(mailbox.messages)

            await wait_until(delivered, 30, "an e-mail at the local SMTP server")
    finally:
        smtp.stop()

    (message,) = mailbox.messages
    assert message["To"] == "shop-team@example.com"
    assert str(message["Subject"]).startswith("[FIRING:2] ParcoursJourneyFailing")
    parts = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    assert isinstance(parts[0], email.message.EmailMessage)  # the default policy's kind
    text = parts[0].get_content()
    for device, error in (("mobile", "HTTP 500 for POST /checkout"), ("desktop", "test_id=")):
        assert f"fails on {device} in paris" in text
        assert error in text
        assert f"latest-failure?device={device}" in text
