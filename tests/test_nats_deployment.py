"""The split deployment on a real nats-server: collectors schedule, agents share the work.

Everything here is real and on loopback: nats-server with JetStream and the
permissions `parcours nats-config` writes, `parcours collector` and `parcours
agent` processes, and an HTTP API that counts every request its checks make
(the truth about how often a check ran, whatever the collectors say).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import nats
import pytest
from aiohttp import web
from nats.aio.client import Client as NatsClient

from probes.bus import contract as c
from probes.bus.server_config import new_user
from probes.demo_shop.server import RunningShop
from tests.services import (
    NatsHub,
    aget,
    collector_command,
    free_port,
    nats_server,
    nats_site,
    started_process,
    stop_process,
    wait_until,
)
from tests.test_http_checks import serve

pytestmark = pytest.mark.slow
INTERVAL = 4.0  # seconds between runs of each check in these tests


class CountingApi:
    """Records when each check called it; ``/hang/NAME`` never answers its first call."""

    def __init__(self) -> None:
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.hung = asyncio.Event()
        self.release = asyncio.Event()  # set at teardown: the hung request ends
        self._hang_used = False
        self.app = web.Application()
        self.app.router.add_get("/hit/{name}", self.hit)
        self.app.router.add_get("/hang/{name}", self.hang)

    async def hit(self, request: web.Request) -> web.Response:
        self.hits[request.match_info["name"]].append(time.time())
        return web.json_response({"ok": True})

    async def hang(self, request: web.Request) -> web.Response:
        self.hits[request.match_info["name"]].append(time.time())
        if not self._hang_used:
            self._hang_used = True
            self.hung.set()
            await self.release.wait()  # the agent dies first
        return web.json_response({"ok": True})


@pytest.fixture
async def api() -> AsyncIterator[tuple[CountingApi, str]]:
    server = CountingApi()
    runner, port = await serve(server.app)
    yield server, f"http://127.0.0.1:{port}"
    server.release.set()
    await runner.cleanup()


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[NatsHub]:
    with nats_server(tmp_path, ["lyon", "paris"]) as running:
        yield running


def checks_config(
    path: Path, base_url: str, names: list[str], route: str = "hit", extra: str = ""
) -> Path:
    journeys = "".join(
        f"""
  - name: {name}
    kind: http
    base_url: {base_url}
    steps:
      - name: call
        request: {{url: /{route}/{name}}}
        expect: [status == 200]
"""
        for name in names
    )
    path.write_text(
        f"defaults: {{interval: {INTERVAL:.0f}s, retries: 0{extra}}}\njourneys:{journeys}"
    )
    return path


def nats_collector(
    hub: NatsHub, port: int, data: Path, name: str, config: Path | None, *extra: str
) -> list[str]:
    args = ["--nats", hub.url, "--nats-creds", hub.creds["collector"], "--name", name]
    if config is not None:
        args += ["--config", str(config)]
    return collector_command(port, data, *args, *extra)


@contextlib.contextmanager
def one_collector(hub: NatsHub, tmp_path: Path, config: Path | None, *extra: str) -> Iterator[str]:
    """`parcours collector` "c1" on the hub, on a free port (log c1.log); yields its URL."""
    port = free_port()
    command = nats_collector(hub, port, tmp_path / "data", "c1", config, *extra)
    with started_process(command, tmp_path / "c1.log"):
        yield f"http://127.0.0.1:{port}"


def nats_agent(hub: NatsHub, location: str, name: str, creds: str | None = None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "probes.cli",
        "agent",
        "--nats",
        hub.url,
        "--nats-creds",
        creds or hub.creds[location],
        "--location",
        location,
        "--agent-name",
        name,
        "--heartbeat-interval",
        "1",
        "--max-concurrency",
        "2",
    ]


async def all_runs(url: str) -> list[dict[str, Any]]:
    """Every run the collector holds (newest first), page by page."""
    runs: list[dict[str, Any]] = []
    before = ""
    while True:
        status, body = await aget(f"{url}/api/v1/runs?limit=500{before}")
        assert status == 200, body
        page = json.loads(body)
        runs.extend(page["runs"])
        if page["next_before"] is None:
            return runs
        before = f"&before={page['next_before']}"


async def metrics(url: str) -> str:
    status, body = await aget(f"{url}/metrics")
    assert status == 200
    return body


def journey_series(text: str) -> set[str]:
    """The journey series a collector exports (names and labels, not values)."""
    return {
        line.rsplit(" ", 1)[0]
        for line in text.splitlines()
        if line.startswith("parcours_journey_success{")
    }


def gaps(times: list[float]) -> list[float]:
    ordered = sorted(times)
    return [b - a for a, b in itertools.pairwise(ordered)]


async def test_three_agents_in_a_location_run_every_check_once_per_slot_and_share_the_work(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    server, base = api
    names = [f"check-{i}" for i in range(6)]
    config = checks_config(tmp_path / "checks.yaml", base, names, extra=", locations: [lyon]")
    with ExitStack() as stack:
        url = stack.enter_context(one_collector(hub, tmp_path, config))
        for index in range(3):
            command = nats_agent(hub, "lyon", f"lyon-{index}")
            stack.enter_context(started_process(command, tmp_path / f"lyon-{index}.log"))

        async def enough() -> bool | None:
            return all(len(server.hits[n]) >= 6 for n in names) or None

        await wait_until(enough, 120, "six runs of every check")
        started = min(t for n in names for t in server.hits[n])
        runs = await wait_until(
            lambda: _runs_at_least(url, sum(len(server.hits[n]) for n in names)),
            30,
            "the collector to hold every run",
        )
    for name in names:
        # Once per slot: never two runs of a check in one interval (a double would be ~0 s
        # apart; slots are INTERVAL apart, give or take the agents' start delays), and no
        # slot left out (a job may start late, up to its deadline one interval on).
        assert min(gaps(server.hits[name])) > INTERVAL / 2, (name, server.hits[name])
        assert max(gaps(server.hits[name])) < 2 * INTERVAL, (name, server.hits[name])
    elapsed = max(t for n in names for t in server.hits[n]) - started
    assert sum(len(server.hits[n]) for n in names) <= len(names) * (elapsed / INTERVAL + 1)
    by_agent = Counter(run["agent"] for run in runs)
    assert len(by_agent) >= 2, f"the work went to one agent only: {by_agent}"
    assert {run["location"] for run in runs} == {"lyon"}


async def _runs_at_least(url: str, count: int) -> list[dict[str, Any]] | None:
    if not await _ready(url):  # still starting
        return None
    runs = await all_runs(url)
    return runs if len(runs) >= count else None


async def _same_runs(first: str, second: str) -> bool:
    """Whether both collectors hold as many runs, twice in a row a moment apart."""
    counts = []
    for _ in range(2):
        counts += [len(await all_runs(first)), len(await all_runs(second))]
        await asyncio.sleep(0.5)
    return len(set(counts)) == 1


async def test_an_agent_killed_mid_run_has_its_job_run_by_another_agent_within_the_slot(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    server, base = api
    interval = 20.0
    config = tmp_path / "hang.yaml"
    config.write_text(
        f"""
defaults: {{interval: {interval:.0f}s, retries: 0, locations: [lyon]}}
journeys:
  - name: slow-api
    kind: http
    base_url: {base}
    steps:
      - name: call
        request: {{url: /hang/slow-api}}
        expect: [status == 200]
"""
    )
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "second")}
    with ExitStack() as stack:
        url = stack.enter_context(one_collector(hub, tmp_path, config, "--job-ack-wait", "3"))
        agents = {
            name: stack.enter_context(started_process(nats_agent(hub, "lyon", name), log))
            for name, log in logs.items()
        }
        await asyncio.wait_for(server.hung.wait(), interval * 2 + 60)
        hung_at = server.hits["slow-api"][0]
        holder = await wait_until(
            lambda: _job_holder(logs), 10, "the log line of the agent that took the job"
        )
        agents[holder].send_signal(signal.SIGKILL)
        agents[holder].wait()
        other = next(name for name in logs if name != holder)
        runs = await wait_until(lambda: _runs_at_least(url, 1), interval + 30, "the job's result")
    (run,) = runs
    assert run["agent"] == other
    assert run["status"] == "passed"
    # Run again by the other agent after the ack wait (3 s), within the slot's 20 s.
    assert run["started_at"] - hung_at < interval, (run["started_at"], hung_at)
    assert len(server.hits["slow-api"]) == 2


async def _job_holder(logs: dict[str, Path]) -> str | None:
    for name, log in logs.items():
        if '"job_started"' in log.read_text():
            return name
    return None


async def test_two_collectors_schedule_each_job_once_and_one_stopped_catches_up_exactly_once(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    """The Prometheus HA pair pattern: two collectors on one config and one stream. One is
    stopped for a while (an agent restarting meanwhile); back, it holds every result made
    meanwhile exactly once, and both export the same journey series."""
    server, base = api
    names = ["home", "search"]
    config = checks_config(tmp_path / "checks.yaml", base, names, extra=", locations: [lyon]")
    ports = {"a": free_port(), "b": free_port()}
    urls = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}

    def collector(key: str) -> list[str]:
        return nats_collector(hub, ports[key], tmp_path / f"data-{key}", key, config)

    outage = float(os.environ.get("PARCOURS_TEST_OUTAGE", "120"))
    with ExitStack() as stack:
        stack.enter_context(started_process(collector("a"), tmp_path / "a.log"))
        b = stack.enter_context(started_process(collector("b"), tmp_path / "b.log"))
        first = stack.enter_context(
            started_process(nats_agent(hub, "lyon", "one"), tmp_path / "one.log")
        )
        second = stack.enter_context(
            started_process(nats_agent(hub, "lyon", "two"), tmp_path / "two.log")
        )
        await wait_until(
            lambda: _runs_at_least(urls["b"], 4), 60, "runs seen by the second collector"
        )
        stop_process(b)
        stopped_at = time.time()
        await asyncio.sleep(outage / 2)
        stop_process(first)  # an agent restarted during the outage
        first_again = stack.enter_context(
            started_process(nats_agent(hub, "lyon", "one"), tmp_path / "one-again.log")
        )
        await asyncio.sleep(max(0.0, outage - (time.time() - stopped_at)))
        stack.enter_context(started_process(collector("b"), tmp_path / "b-again.log"))
        made = sum(len(server.hits[n]) for n in names)
        await wait_until(
            lambda: _runs_at_least(urls["b"], made), 60, "the returning collector to catch up"
        )
        await wait_until(lambda: _runs_at_least(urls["a"], made), 30, "the first collector")
        # Runs go on meanwhile: with the agents stopped (their runs in flight finish and
        # are published), both collectors can be read at the same point of the stream.
        stop_process(first_again)
        stop_process(second)
        await wait_until(lambda: _same_runs(urls["a"], urls["b"]), 60, "both collectors level")
        runs = {k: await all_runs(url) for k, url in urls.items()}
        series = {k: journey_series(await metrics(url)) for k, url in urls.items()}
        published = await metrics(urls["a"]) + await metrics(urls["b"])
    ids = {k: [run["run_id"] for run in found] for k, found in runs.items()}
    during = [r for r in runs["b"] if stopped_at < r["started_at"] < stopped_at + outage]
    assert len(during) >= outage / INTERVAL, "the outage's runs are there"
    for key, held in ids.items():
        assert len(held) == len(set(held)), f"collector {key} holds a run twice"
    assert set(ids["a"]) == set(ids["b"])
    # Each run was one request to the API: none lost, none made twice by two schedulers.
    requests = sum(len(server.hits[n]) for n in names)
    assert len(ids["b"]) <= requests <= len(ids["b"]) + len(names)  # a run may be in flight
    for name in names:
        assert min(gaps(server.hits[name])) > INTERVAL / 2, (name, server.hits[name])
    assert series["a"] == series["b"] and series["a"]
    assert 'outcome="duplicate"' in published, "the second collector's copies were dropped"


async def test_an_agent_with_unknown_credentials_is_refused_and_says_so(
    hub: NatsHub, tmp_path: Path
) -> None:
    stranger = new_user(tmp_path, "stranger")  # a valid seed the server does not know
    command = nats_agent(hub, "lyon", "intruder", creds=str(stranger.seed_file))
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "cannot connect to NATS" in done.stderr
    assert "uthorization" in done.stderr, done.stderr


async def test_a_paris_agent_can_neither_take_lyon_jobs_nor_publish_lyon_results(
    hub: NatsHub, tmp_path: Path
) -> None:
    admin = await hub.connect("collector")
    paris = await hub.connect("paris")
    try:
        config = checks_config(
            tmp_path / "c.yaml", "http://127.0.0.1:9", ["x"], extra=", locations: [lyon]"
        )
        with one_collector(hub, tmp_path, config) as url:
            await wait_until(
                lambda: _jobs_waiting(admin, "lyon"), 30, "a lyon job waiting (no lyon agent)"
            )
            js = paris.jetstream()
            sub = await js.pull_subscribe_bind(
                c.agents_consumer("lyon"),
                c.JOBS_STREAM,
                inbox_prefix=f"{c.inbox_prefix('paris')}.".encode(),
            )
            with pytest.raises((TimeoutError, nats.errors.Error)):
                await sub.fetch(1, timeout=2)  # a job waits: only a refusal comes back empty
            with pytest.raises((TimeoutError, nats.errors.Error)):
                await js.publish(c.results_subject("lyon"), b"{}", timeout=2)
            with pytest.raises((TimeoutError, nats.errors.Error)):
                await js.publish(c.jobs_subject("paris"), b"{}", timeout=2)  # no forged jobs
            manager = admin.jetstream()
            assert (await manager.stream_info(c.RESULTS_STREAM)).state.messages == 0
            lyon = await manager.consumer_info(c.JOBS_STREAM, c.agents_consumer("lyon"))
            assert lyon.num_ack_pending == 0, "paris took a lyon job"
            with pytest.raises(nats.js.errors.NotFoundError):
                await manager.get_last_msg(c.JOBS_STREAM, c.jobs_subject("paris"))
            # Nobody takes lyon's jobs: the collector says so, the signal to add agents.
            await wait_until(lambda: _queue_grows(url), 30, "lyon's queue metrics")
    finally:
        await paris.close()
        await admin.close()


async def _queue_grows(url: str) -> bool | None:
    found = {}
    for line in (await metrics(url)).splitlines():
        if line.startswith(("parcours_location_jobs_waiting{", "parcours_location_oldest_job")):
            name, value = line.rsplit(" ", 1)
            found[name.split("{")[0]] = float(value)
    waiting = found.get("parcours_location_jobs_waiting", 0)
    return (waiting >= 2 and found["parcours_location_oldest_job_age_seconds"] > INTERVAL) or None


async def _jobs_waiting(nc: NatsClient, location: str) -> bool | None:
    try:
        info = await nc.jetstream().consumer_info(c.JOBS_STREAM, c.agents_consumer(location))
    except nats.js.errors.NotFoundError:
        return None
    return (info.num_pending or 0) > 0 or None


async def test_a_result_claiming_another_location_than_its_subject_is_refused_and_counted(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    _, base = api
    config = checks_config(tmp_path / "checks.yaml", base, ["home"], extra=", locations: [paris]")
    paris = await hub.connect("paris")
    try:
        with (
            one_collector(hub, tmp_path, config) as url,
            started_process(nats_agent(hub, "paris", "p1"), tmp_path / "p1.log"),
        ):
            (genuine,) = (await wait_until(lambda: _runs_at_least(url, 1), 60, "a run"))[:1]
            forged = {**genuine, "run_id": uuid.uuid4().hex, "location": "lyon"}
            await paris.jetstream().publish(
                c.results_subject("paris"), json.dumps(forged).encode(), timeout=5
            )
            line = 'parcours_collector_refused_total{reason="location_mismatch",what="result"} 1.0'
            await wait_until(
                lambda: _contains(url, line), 30, "the forged result to be refused and counted"
            )
            assert forged["run_id"] not in {r["run_id"] for r in await all_runs(url)}
    finally:
        await paris.close()


async def test_a_job_for_another_location_in_a_queue_is_refused_not_run_nor_counted_missed(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    server, base = api
    config = checks_config(tmp_path / "checks.yaml", base, ["home"], extra=", locations: [paris]")
    admin = await hub.connect("collector")
    stray = c.Job(
        "stray", "none", "lyon", time.time(), time.time() + 600, "x", (("c.yaml", "checks: []"),)
    )
    try:
        with one_collector(hub, tmp_path, config) as url:
            await wait_until(lambda: _jobs_waiting(admin, "paris"), 30, "paris' queue")
            await admin.jetstream().publish(c.jobs_subject("paris"), stray.to_bytes(), timeout=5)
            log = tmp_path / "p1.log"
            with started_process(nats_agent(hub, "paris", "p1"), log):
                await wait_until(
                    lambda: _logged(log, "a job for another location"), 60, "the stray refused"
                )
                await wait_until(lambda: _hit(server, "home"), 60, "paris' own check running")
                missed = 'parcours_agent_missed_runs_total{agent="p1",location="paris"} 0.0'
                await wait_until(lambda: _contains(url, missed), 60, "the agent's heartbeat")
            assert "stray" not in {r["journey"] for r in await all_runs(url)}
    finally:
        await admin.close()


async def _logged(log: Path, text: str) -> bool | None:
    return text in await asyncio.to_thread(log.read_text, errors="replace") or None


async def _contains(url: str, line: str) -> bool | None:
    return line in await metrics(url) or None


async def test_a_nats_collector_refuses_results_over_http(hub: NatsHub, tmp_path: Path) -> None:
    with one_collector(hub, tmp_path, None) as url:
        await wait_until(lambda: _ready(url), 30, "the collector")
        status, body = await asyncio.to_thread(_post, f"{url}/api/v1/results", b"[]")
    assert status == 410
    assert "NATS" in body


async def _ready(url: str) -> bool | None:
    status, _ = await aget(f"{url}/-/ready")
    return status == 200 or None  # 0: nobody listens yet


def _post(url: str, body: bytes) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_an_agent_missing_a_variable_reports_a_config_error_for_that_check_only(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    _, base = api
    config = tmp_path / "vars.yaml"
    config.write_text(
        f"""
defaults: {{interval: {INTERVAL:.0f}s, retries: 0, locations: [lyon]}}
journeys:
  - name: needs-token
    kind: http
    base_url: {base}
    steps:
      - name: call
        request: {{url: "/hit/needs-token?t=${{secret:LYON_API_TOKEN}}"}}
        expect: [status == 200]
  - name: plain
    kind: http
    base_url: {base}
    steps:
      - name: call
        request: {{url: /hit/plain}}
        expect: [status == 200]
"""
    )
    with (
        one_collector(hub, tmp_path, config) as url,
        started_process(nats_agent(hub, "lyon", "l1"), tmp_path / "l1.log"),
    ):
        runs = await wait_until(lambda: _both_checks(url), 60, "a run of each check")
    needs = next(r for r in runs if r["journey"] == "needs-token")
    plain = next(r for r in runs if r["journey"] == "plain")
    assert needs["status"] == "failed"
    assert needs["error_type"] == "config_error"
    assert "LYON_API_TOKEN" in needs["error_message"]
    assert "not set on agent l1" in needs["error_message"]
    assert plain["status"] == "passed"


async def _both_checks(url: str) -> list[dict[str, Any]] | None:
    runs = await _runs_at_least(url, 2) or []
    return runs if {r["journey"] for r in runs} >= {"needs-token", "plain"} else None


async def test_a_failed_browser_run_over_nats_shows_its_screenshot_on_the_collectors_run_page(
    hub: NatsHub, shop: RunningShop, tmp_path: Path
) -> None:
    """Artifacts go to the location's object store bucket; the collector serves them."""
    config = tmp_path / "cart.yaml"
    config.write_text(
        f"""
journeys:
  - name: broken-cart
    base_url: {shop.url}
    interval: 10s
    devices: [desktop]
    locations: [paris]
    retries: 0
    step_timeout: 3s
    steps:
      - name: product
        goto: /product/trail-runner?hide_add_to_cart=1
      - name: add to cart
        click: {{test_id: add-to-cart}}
"""
    )
    with (
        one_collector(hub, tmp_path, config) as url,
        started_process(
            [*nats_agent(hub, "paris", "edge-1"), "--collector", url], tmp_path / "edge-1.log"
        ),
    ):
        (run,) = (await wait_until(lambda: _runs_at_least(url, 1), 90, "a failed run"))[:1]
        shot = next(a for a in run["artifacts"] if a["kind"] == "screenshot")
        address = f"{url}/runs/{run['run_id']}/artifacts/{shot['name']}"
        await wait_until(lambda: _served(address), 30, "the screenshot on the collector")
        served = await asyncio.to_thread(_read_bytes, address)
        text = await metrics(url)
    assert run["status"] == "failed" and run["failed_step"] == "add to cart"
    assert run["location"] == "paris" and run["agent"] == "edge-1"
    assert run["run_url"] == f"{url}/status/runs/{run['run_id']}"
    assert len(served) == shot["size"] and served.startswith(b"\x89PNG")
    assert 'parcours_agent_up{agent="edge-1",location="paris"} 1.0' in text


async def _served(address: str) -> tuple[int, str] | None:
    status, body = await aget(address)
    return (status, body) if status == 200 else None


def _read_bytes(address: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(address, timeout=10) as response:
        data: bytes = response.read()
        return data


async def test_an_agent_at_a_remote_site_works_through_the_sites_leaf_node(
    api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    """A store or kiosk with one outbound connection: its own nats-server is a leaf node
    of the hub; the agent talks to it without credentials, the leaf logs in as the site's
    user, whose permissions fence it to its location."""
    server, base = api
    config = checks_config(tmp_path / "c.yaml", base, ["kiosk"], extra=", locations: [lyon]")
    with (
        nats_server(tmp_path, ["lyon", "paris"], leafnodes=True) as hub,
        nats_site(hub, "lyon") as site,
    ):
        agent = nats_agent(hub, "lyon", "kiosk-1")
        agent[agent.index("--nats") + 1] = site
        del agent[agent.index("--nats-creds") : agent.index("--nats-creds") + 2]
        with (
            one_collector(hub, tmp_path, config) as url,
            started_process([*agent, "--nats-domain", "hub"], tmp_path / "kiosk.log"),
        ):
            runs = await wait_until(lambda: _runs_at_least(url, 2), 60, "runs through the leaf")
            forged = await nats.connect(site, inbox_prefix=c.inbox_prefix("lyon").encode())
            try:
                js = forged.jetstream(domain="hub")
                await js.publish(c.results_subject("lyon"), b"{}", timeout=5)  # the way works
                with pytest.raises((TimeoutError, nats.errors.Error)):
                    await js.publish(c.results_subject("paris"), b"{}", timeout=2)
            finally:
                await forged.close()
    assert {r["agent"] for r in runs} == {"kiosk-1"}
    assert all(r["status"] == "passed" for r in runs)
    assert len(server.hits["kiosk"]) >= 2


async def test_the_collector_reloads_its_config_and_keeps_the_last_good_one(
    hub: NatsHub, api: tuple[CountingApi, str], tmp_path: Path
) -> None:
    server, base = api
    config = checks_config(tmp_path / "checks.yaml", base, ["first"], extra=", locations: [lyon]")
    with (
        one_collector(hub, tmp_path, config) as url,
        started_process(nats_agent(hub, "lyon", "l1"), tmp_path / "l1.log"),
    ):
        await wait_until(lambda: _hit(server, "first"), 60, "the first check to run")
        checks_config(config, base, ["first", "second"], extra=", locations: [lyon]")
        await wait_until(lambda: _hit(server, "second"), 60, "the added check to run")
        good = len(server.hits["second"])
        config.write_text(config.read_text().replace("kind: http", "kind: htp"))
        line = "parcours_collector_config_reload_successful 0.0"
        await wait_until(lambda: _contains(url, line), 30, "the failed reload to be exported")
        await wait_until(
            lambda: _more_hits(server, "second", good + 2), 60, "the last good config to go on"
        )
    log = (tmp_path / "c1.log").read_text()
    assert "config_reload_failed" in log
    assert "checks.yaml" in log  # the problem names the file (and line)


async def _hit(server: CountingApi, name: str) -> bool | None:
    return bool(server.hits[name]) or None


async def _more_hits(server: CountingApi, name: str, count: int) -> bool | None:
    return len(server.hits[name]) >= count or None
