"""The shipped Prometheus rules and Alertmanager config, checked by the real tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, cwd=ROOT, timeout=120)


def test_every_rule_file_passes_promtool_check() -> None:
    files = sorted(str(p) for p in (ROOT / "configs" / "prometheus").glob("*.yml"))
    assert files

    done = run("promtool", "check", "rules", *files)

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    tests = sorted(str(p) for p in (ROOT / "configs" / "prometheus" / "tests").glob("*.yml"))

    done = run("promtool", "test", "rules", *tests)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load((ROOT / "configs/prometheus/parcours-rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tested = {
        case["alertname"]
        for path in (ROOT / "configs" / "prometheus" / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }

    assert alerts - tested == set()


def test_every_alert_says_what_where_and_how_to_act() -> None:
    rules = yaml.safe_load((ROOT / "configs/prometheus/parcours-rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule
                assert {"summary", "description", "runbook_url", "dashboard"} <= set(
                    rule["annotations"]
                ), rule["alert"]


def test_the_alertmanager_config_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    assert amtool is not None, (
        "amtool comes with prometheus-alertmanager; ./scripts/test installs it"
    )

    done = run(amtool, "check-config", "configs/alertmanager/alertmanager.yml")

    assert done.returncode == 0, done.stdout + done.stderr


def test_every_runbook_link_has_its_section() -> None:
    rules = yaml.safe_load((ROOT / "configs/prometheus/parcours-rules.yml").read_text())
    runbook = (ROOT / "docs" / "runbooks.md").read_text().lower()
    anchors = {line[3:].strip() for line in runbook.splitlines() if line.startswith("## ")}
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
                assert anchor in anchors, rule["alert"]
