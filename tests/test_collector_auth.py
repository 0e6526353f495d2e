"""The collector's HTTP side with --auth-file: tokens by scope, refused without one."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from collector.app import CollectorSettings, create_app
from collector.auth import TokenFileError, load_tokens, new_token
from probes.result import to_dict
from tests.documents import result
from tests.services import collector_command, free_port, started_process, wait_until

TOKENS: dict[str, str] = {}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    lines = []
    for scope in ("read", "metrics", "write"):
        TOKENS[scope], line = new_token(scope, f"{scope}-user")
        lines.append(line)
    path = tmp_path / "tokens"
    path.write_text("# who may read this collector\n" + "\n".join(lines) + "\n")
    app = create_app(CollectorSettings(tmp_path, tokens=load_tokens(path)))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def bearer(scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


async def test_without_a_token_the_status_page_is_refused_with_a_reason(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/status")

    assert response.status == 401
    assert "scope read" in await response.text()
    assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_a_wrong_token_is_refused(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/v1/runs", headers={"Authorization": "Bearer nope"})

    assert response.status == 401
    assert "does not grant" in await response.text()


async def test_a_read_token_opens_pages_and_history_but_not_metrics(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.get("/status", headers=bearer("read"))).status == 200
    assert (await client.get("/api/v1/runs", headers=bearer("read"))).status == 200
    assert (await client.get("/metrics", headers=bearer("read"))).status == 401


async def test_prometheus_scrapes_with_its_own_metrics_token(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/metrics", headers=bearer("metrics"))

    assert response.status == 200
    assert "parcours_collector" in await response.text()
    assert (await client.get("/status", headers=bearer("metrics"))).status == 401


async def test_a_browser_sends_the_token_as_the_basic_password(
    client: TestClient[Any, Any],
) -> None:
    credentials = base64.b64encode(f"ada:{TOKENS['read']}".encode()).decode()

    response = await client.get("/status", headers={"Authorization": f"Basic {credentials}"})

    assert response.status == 200


async def test_posting_results_needs_a_write_token(client: TestClient[Any, Any]) -> None:
    document = to_dict(result())

    refused = await client.post("/api/v1/results", json=document, headers=bearer("read"))
    accepted = await client.post("/api/v1/results", json=document, headers=bearer("write"))

    assert refused.status == 401
    assert accepted.status == 200


async def test_health_endpoints_stay_open_for_load_balancers(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.get("/-/healthy")).status == 200
    assert (await client.get("/-/ready")).status == 200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("read 1234 grafana\n", "tokens:1: expected 'SCOPE sha256:HEX NAME'"),
        ("admin sha256:" + "0" * 64 + " x\n", "tokens:1: scope 'admin' is not one of"),
        ("\nread sha256:zz x\n", "tokens:2: the hash is not hexadecimal"),
        ("read sha256:abcd x\n", "a SHA-256 is 64 hexadecimal digits"),
        ("# nothing\n", "no tokens"),
    ],
)
def test_a_broken_token_file_names_its_line_and_the_expected_form(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)

    with pytest.raises(TokenFileError, match=message.replace("(", r"\(")):
        load_tokens(path)


def test_the_token_file_stores_no_token_only_its_hash(tmp_path: Path) -> None:
    token, line = new_token("read", "grafana")
    path = tmp_path / "tokens"
    path.write_text(line)

    assert token not in path.read_text()
    assert load_tokens(path)[0].name == "grafana"


@pytest.mark.slow
async def test_a_collector_open_to_the_network_without_auth_warns_at_start(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = tmp_path / "collector.log"
    command = collector_command(port, tmp_path / "data")
    command[command.index(f"127.0.0.1:{port}")] = f"0.0.0.0:{port}"
    with started_process(command, log):
        await wait_until(lambda: _logged(log, "collector_open_to_the_network"), 30, "the warning")
    quiet_log = tmp_path / "loopback.log"
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "probes.cli", "token", "--scope", "metrics", "--name", "prom"],
        capture_output=True,
        text=True,
        check=True,
    )
    line = done.stdout.splitlines()[1].split(": ", 1)[1]
    (tmp_path / "tokens").write_text(line + "\n")
    with started_process([*command, "--auth-file", str(tmp_path / "tokens")], quiet_log) as process:
        await wait_until(
            lambda: _logged(quiet_log, "collector_listening"), 30, "the collector to listen"
        )
        assert process.poll() is None
    assert "collector_open_to_the_network" not in quiet_log.read_text()


async def _logged(path: Path, event: str) -> bool | None:
    return event in await asyncio.to_thread(path.read_text) or None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Token abc",
        "Bearer " + "x" * 6000,
    ],
    ids=["bare", "empty", "bad-base64", "not-utf8", "no-password", "other-scheme", "huge"],
)
async def test_a_garbled_authorization_header_is_refused_not_crashed_on(
    client: TestClient[Any, Any], header: str
) -> None:
    response = await client.get("/status", headers={"Authorization": header})

    assert response.status == 401
    assert "scope read" in await response.text()
