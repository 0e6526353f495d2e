"""docker-compose.yml and the Dockerfile, checked without a Docker engine (there is none here)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "schemas" / "compose-spec.json").read_text())

    jsonschema.Draft201909Validator(schema).validate(COMPOSE)  # the schema says 2019-09


def test_the_stack_has_every_part() -> None:
    assert set(COMPOSE["services"]) == {
        "demo-shop",
        "nats-config",
        "nats",
        "collector",
        "agent",
        "prometheus",
        "alertmanager",
        "grafana",
    }


def test_every_file_the_stack_mounts_or_builds_exists() -> None:
    for name, service in COMPOSE["services"].items():
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_the_image_is_built_with_the_commands_the_readme_gives() -> None:
    readme = (ROOT / "README.md").read_text()
    runs = re.findall(r"^RUN (.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    build_steps = [r for r in runs if not r.startswith("useradd")]

    assert build_steps
    for command in build_steps:
        assert command in readme, command


def test_the_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs/compose/prometheus.yml").read_text())
    config["rule_files"] = [str(ROOT / "configs/prometheus/parcours-rules.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))

    done = subprocess.run(
        ["promtool", "check", "config", str(local)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_journey_is_the_bundled_demo_journey() -> None:
    bundled = yaml.safe_load((ROOT / "probes/demo_shop/journey.yaml").read_text())
    compose = yaml.safe_load((ROOT / "configs/compose/journeys/demo.yaml").read_text())
    for config in (bundled, compose):
        for journey in config["journeys"]:
            journey.pop("base_url")

    assert compose == bundled


def option(service: str, name: str) -> str:
    """The value of ``--name=value`` in a compose service's command."""
    (found,) = [
        a.split("=", 1)[1]
        for a in COMPOSE["services"][service]["command"]
        if a.startswith(f"--{name}=")
    ]
    return str(found)


def test_the_agent_and_collector_use_the_seeds_nats_config_writes() -> None:
    setup = " ".join(COMPOSE["services"]["nats-config"]["command"])
    location = option("agent", "location")

    assert f"nats-config {location} --dir /keys" in setup
    assert option("agent", "nats-creds") == f"/keys/agent-{location}.nk"
    assert option("collector", "nats-creds") == "/keys/collector.nk"
    assert option("agent", "nats") == option("collector", "nats") == "nats://nats:4222"
    assert "/keys/nats.conf" in COMPOSE["services"]["nats"]["command"]
