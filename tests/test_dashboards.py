"""The Grafana dashboards: well-formed, and every query runs and returns data on real Prometheus."""

from __future__ import annotations

import contextlib
import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probes.demo_shop.server import RunningShop
from tests.services import aget, parcours_run, prometheus, promql, wait_until
from tests.test_http_checks import Api, serve
from tests.tls_certs import make_cert

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
RULES = ROOT / "configs" / "prometheus" / "parcours-rules.yml"
BUILTIN_VARIABLES = {
    "__range",
    "__rate_interval",
    "__interval",
    "__all",
    "__data",
    "__value",
    "__field",
    "__series",
    "__from",
    "__to",
}
VARIABLE = re.compile(r"\$\{?(\w+)")
# What Grafana would put in: the journeys this test runs, every location and device.
FILLED = {
    "journey": "(checkout|slow|broken|api)",
    "location": ".*",
    "device": ".*",
    "__rate_interval": "30s",
    "__interval": "15s",
    "__range": "5m",
}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) of every panel query and annotation query."""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        yield f"annotation {annotation['name']!r}", annotation["expr"]


def fill(expr: str) -> str:
    return VARIABLE.sub(lambda m: FILLED.get(m.group(1), m.group(0)), expr)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panel_ids_are_unique(path: Path) -> None:
    ids = [panel["id"] for panel in load(path)["panels"]]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_data_source_reference_resolves(path: Path) -> None:
    dashboard = load(path)
    datasource_vars = {
        v["name"] for v in dashboard["templating"]["list"] if v["type"] == "datasource"
    }
    provisioned = {"prometheus"}  # grafana/provisioning/datasources/prometheus.yml
    refs = [panel["datasource"] for panel in dashboard["panels"]]
    refs += [t["datasource"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    refs += [v["datasource"] for v in dashboard["templating"]["list"] if "datasource" in v]
    refs += [a["datasource"] for a in dashboard["annotations"]["list"]]

    for ref in refs:
        assert ref["type"] == "prometheus"
        uid = ref["uid"]
        assert uid in provisioned or uid.strip("${}") in datasource_vars, ref


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_variable_used_is_defined(path: Path) -> None:
    dashboard = load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]} | BUILTIN_VARIABLES
    text = (
        json.dumps(dashboard["panels"])
        + json.dumps(dashboard["annotations"])
        + json.dumps(dashboard["links"])
        + json.dumps(dashboard["templating"])
    )

    used = set(VARIABLE.findall(text))

    assert used <= defined, used - defined


def test_the_provisioned_data_source_is_the_one_dashboards_default_to() -> None:
    provisioning = (ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text()

    assert "uid: prometheus" in provisioning
    for path in DASHBOARDS:
        (var,) = [v for v in load(path)["templating"]["list"] if v["type"] == "datasource"]
        assert var["current"]["value"] == "prometheus"


async def every_query(prom: str) -> tuple[list[str], list[str]]:
    """(queries that failed, queries that returned nothing) over every dashboard."""
    empty, failing = [], []
    for path in DASHBOARDS:
        dashboard = load(path)
        for where, expr in targets(dashboard):
            query = fill(expr)
            url = f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
            status, body = await aget(url)
            if status != 200:
                failing.append(f"{path.stem} {where}: {query} -> {status} {body}")
            elif not json.loads(body)["data"]["result"]:
                empty.append(f"{path.stem} {where}: {query}")
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = re.fullmatch(r"label_values\((.*), *(\w+)\)", variable["query"]["query"])
            assert match, variable["query"]
            selector, label = fill(match.group(1)), match.group(2)
            url = (
                f"{prom}/api/v1/label/{label}/values?"
                f"{urllib.parse.urlencode({'match[]': selector})}"
            )
            status, body = await aget(url)
            if status != 200 or not json.loads(body)["data"]:
                empty.append(f"{path.stem} variable {variable['name']}: {selector}")
    return failing, empty


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_stat_has_thresholds_that_say_good_or_bad(path: Path) -> None:
    for panel in load(path)["panels"]:
        if panel["type"] != "stat":
            continue
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        colours = {step["color"] for step in steps}
        assert "green" in colours and len(colours) >= 2, (panel["title"], steps)


def test_failing_journeys_are_counted_as_journeys_not_series() -> None:
    (overview,) = [p for p in DASHBOARDS if p.stem == "parcours-overview"]
    exprs = {p["title"]: p["targets"][0]["expr"] for p in load(overview)["panels"]}
    assert exprs["Failing journeys"].startswith("count(count by (journey) (")


def two_journeys(tmp_path: Path, shop: RunningShop, api_port: int, ca: Path) -> Path:
    path = tmp_path / "dashboards.yaml"
    path.write_text(
        f"""
defaults:
  interval: 2s
  devices: [desktop]
  retries: 0
  step_timeout: 3s
journeys:
  - name: checkout
    base_url: {shop.url}
    steps:
      - name: home
        goto: /
      - name: product
        click: {{role: link, name: Trail Runner shoes}}
  - name: slow
    base_url: {shop.url}
    budgets:
      page_load: {{warn: 1ms}}
    steps:
      - name: home
        goto: /
  - name: broken
    base_url: {shop.url}
    steps:
      - name: product
        goto: /product/trail-runner?hide_add_to_cart=1
      - name: add to cart
        click: {{test_id: add-to-cart}}
  - name: api
    kind: http
    base_url: https://localhost:{api_port}
    steps:
      - name: health
        request: {{url: /ok, tls: {{ca_bundle: {ca}}}}}
        expect: [status == 200]
"""
    )
    return path


@pytest.mark.slow
async def test_every_dashboard_query_runs_and_returns_data_on_real_prometheus(
    shop: RunningShop, tmp_path: Path
) -> None:
    cert = make_cert(tmp_path / "tls", days_left=30)
    api_runner, api_port = await serve(Api().app, cert)
    with (
        parcours_run(two_journeys(tmp_path, shop, api_port, cert.ca), tmp_path / "data") as (
            _,
            collector,
        ),
        prometheus(tmp_path, [collector.removeprefix("http://")], rule_files=[RULES]) as prom,
    ):

        async def enough_history() -> bool:
            runs = await promql(prom, "sum(increase(parcours_journey_runs_total[30s])) >= 4")
            if not await promql(prom, "parcours_tls_cert_expiry_timestamp_seconds"):
                return False
            failures = await promql(prom, "parcours_journey_failed_step")
            availability = await promql(prom, "parcours:journey_availability:ratio_1d")
            return bool(runs and failures and availability)

        await wait_until(enough_history, 60, "a few runs of both journeys in Prometheus")

        async def panels() -> tuple[list[str], list[str]]:
            return await every_query(prom)

        async def all_show_data() -> bool:
            failing, empty = await panels()
            return not failing and not empty

        # A counter needs two samples before increase() says anything: on a busy machine
        # that can take a few more scrapes than the conditions above. Bounded, and it
        # returns as soon as every panel shows data.
        with contextlib.suppress(AssertionError):
            await wait_until(all_show_data, 60, "every panel to show data", every=1.0)
        failing, empty = await panels()
        announced = await promql(prom, "parcours_collector_info")

    await api_runner.cleanup()
    # The dashboards' links to the collector come from what it says its URL is.
    assert [sample["metric"]["url"] for sample in announced] == [collector]
    assert failing == []
    assert empty == [], "\n".join(empty)
