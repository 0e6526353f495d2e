"""Real processes for integration tests: `parcours run`, Prometheus; free loopback ports.

Every process started here is stopped by its context manager, even when the
test fails. Waiting is done against a deadline on an observable condition,
never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

T = TypeVar("T")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(
    check: Callable[[], Awaitable[T | None]], within: float, what: str, every: float = 0.2
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``within``."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """A blocking GET for use from threads; (status, body), connection errors as status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


async def aget(url: str) -> tuple[int, str]:
    """``http_get`` off the event loop."""
    return await asyncio.to_thread(http_get, url)


def descendants(root: int) -> list[int]:
    """A process and every process below it, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def chromium_with_marker(marker: str) -> list[int]:
    """PIDs of live Chromium processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"chrom" in cmdline.lower() and marker.encode() in environ:
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def parcours_run(
    config: Path | None,
    data_dir: Path,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
    own_process_group: bool = False,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`parcours run` as a real process; yields it and its collector's URL. In its own
    process group when asked, so that a test can signal the group as a terminal's Ctrl-C
    does."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "probes.cli",
        "--log-level",
        "info",
        "run",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--heartbeat-interval",
        "1",
        *extra,
    ]
    if config is not None:
        args.append(str(config))
    log = (data_dir.parent / f"parcours-{port}.log").open("w")
    process = subprocess.Popen(
        args,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        process_group=0 if own_process_group else None,
    )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM (a process stopped with SIGSTOP is continued first, so that it can obey),
    then SIGKILL if it is still there after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def started_process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process writing to ``log`` (appended), stopped by ``stop_process`` on the way out."""
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            stop_process(process)


def collector_command(port: int, data_dir: Path, *extra: str) -> list[str]:
    """`parcours collector` on a loopback port, as a command line."""
    return [
        sys.executable,
        "-m",
        "probes.cli",
        "collector",
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def alertmanager_binary() -> str:
    """The Alertmanager binary (Debian package `prometheus-alertmanager`)."""
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if found is None:
        raise RuntimeError("alertmanager is not installed: run ./scripts/test, which installs it")
    return found


@contextlib.contextmanager
def serving(name: str, args: list[str], log_path: Path, ready_url: str) -> Iterator[None]:
    """Start a server process, wait for its readiness URL, stop it (kill if it lingers)."""
    with log_path.open("w") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while http_get(ready_url)[0] != 200:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield
        finally:
            stop_process(process)


@contextlib.contextmanager
def alertmanager(tmp: Path, config: dict[str, Any]) -> Iterator[str]:
    """A real Alertmanager with ``config``, clustering off; yields its host:port."""
    port = free_port()
    config_file = tmp / f"alertmanager-{port}.yml"
    config_file.write_text(json.dumps(config))
    args = [
        alertmanager_binary(),
        f"--config.file={config_file}",
        f"--storage.path={tmp / f'am-{port}'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    address = f"127.0.0.1:{port}"
    with serving(
        "alertmanager", args, tmp / f"alertmanager-{port}.log", f"http://{address}/-/ready"
    ):
        yield address


def prometheus_binary() -> str:
    """The Prometheus server binary (Debian package `prometheus`)."""
    found = shutil.which("prometheus")
    if found is None:
        raise RuntimeError("prometheus is not installed: run ./scripts/test, which installs it")
    return found


@contextlib.contextmanager
def prometheus(
    tmp: Path,
    targets: list[str],
    rule_files: list[Path] | None = None,
    alertmanager: str | None = None,
    interval: str = "1s",
) -> Iterator[str]:
    """A real Prometheus scraping ``targets`` (host:port) every ``interval``; yields its URL."""
    port = free_port()
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "parcours", "static_configs": [{"targets": targets}]}],
        "rule_files": [str(p) for p in rule_files or []],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config_file = tmp / f"prometheus-{port}.yml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    args = [
        prometheus_binary(),
        f"--config.file={config_file}",
        f"--storage.tsdb.path={tmp / f'tsdb-{port}'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-lifecycle",
    ]
    url = f"http://127.0.0.1:{port}"
    with serving("prometheus", args, tmp / f"prometheus-{port}.log", f"{url}/-/ready"):
        yield url


class Webhook:
    """Alertmanager's webhook receiver: keeps every notification it is sent."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, str, dict[str, Any]]] = []

    async def receive(self, request: web.Request) -> web.Response:
        """Record one notification with when and on which path it came."""
        self.notifications.append((time.monotonic(), request.path, await request.json()))
        return web.Response(text="ok")

    def alerts(self, name: str, status: str) -> list[tuple[float, str, dict[str, Any]]]:
        """(when, path, alert) of each alert of that name and status received."""
        return [
            (at, path, alert)
            for at, path, body in self.notifications
            for alert in body["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == status
        ]


@contextlib.asynccontextmanager
async def webhook_server() -> AsyncIterator[tuple[Webhook, str]]:
    """A webhook receiver on a free loopback port; yields it and its base URL."""
    receiver = Webhook()
    app = web.Application()
    app.router.add_post("/parcours/{receiver}", receiver.receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def promql(prometheus_url: str, query: str, at: float | None = None) -> list[dict[str, Any]]:
    """Instant query (now, or at the Unix time ``at``); the result vector (empty when
    nothing matches)."""
    params = {"query": query} | ({} if at is None else {"time": f"{at:.3f}"})
    url = f"{prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    status, body = await aget(url)
    assert status == 200, f"query {query!r} failed: {status} {body}"
    data: dict[str, Any] = json.loads(body)["data"]
    result: list[dict[str, Any]] = data["result"]
    return result


def nats_server_binary() -> str:
    """The NATS server (Debian package `nats-server`)."""
    found = shutil.which("nats-server") or (
        "/usr/sbin/nats-server" if os.path.exists("/usr/sbin/nats-server") else None
    )
    if found is None:
        raise RuntimeError("nats-server is not installed: run ./scripts/test, which installs it")
    return found


@dataclasses.dataclass(frozen=True)
class NatsHub:
    """A running NATS server made by `parcours nats-config`: its URL and users' seeds."""

    url: str
    creds: dict[str, str]  # "collector" and each location -> seed file
    config: Path
    site_port: int | None = None  # with leaf nodes: where each site's own server listens

    async def connect(self, user: str) -> NatsClient:
        """A client logged in as ``user`` ("collector" or a location), on its own inbox as
        the permissions want."""
        import nats

        from probes.bus import contract as c

        inbox = c.COLLECTOR_INBOX if user == "collector" else c.inbox_prefix(user)
        seed = self.creds[user]
        return await nats.connect(self.url, nkeys_seed=seed, inbox_prefix=inbox.encode())


@contextlib.contextmanager
def nats_server(tmp: Path, locations: list[str], *, leafnodes: bool = False) -> Iterator[NatsHub]:
    """A real nats-server with JetStream on free loopback ports and a temporary store,
    its users and permissions written by Parcours' own generator; stopped on the way out."""
    from probes.bus.server_config import write_config

    port, monitor = free_port(), free_port()
    leaf_port, site_port = (free_port(), free_port()) if leafnodes else (None, None)
    folder = tmp / f"nats-{port}"
    path, users = write_config(
        folder,
        locations,
        listen=f"127.0.0.1:{port}",
        store_dir=str(folder / "store"),
        leafnode_listen=f"127.0.0.1:{leaf_port}" if leaf_port else None,
        site_listen=f"127.0.0.1:{site_port}",
    )
    args = [nats_server_binary(), "-c", str(path), "-m", str(monitor)]
    with serving("nats-server", args, folder / "nats.log", f"http://127.0.0.1:{monitor}/healthz"):
        creds = {name: str(user.seed_file) for name, user in users.items()}
        yield NatsHub(f"nats://127.0.0.1:{port}", creds, path, site_port)


@contextlib.contextmanager
def nats_site(hub: NatsHub, location: str) -> Iterator[str]:
    """A remote site's own nats-server, a leaf node of ``hub`` as `parcours nats-config`
    wrote it; yields the URL the site's agents use."""
    assert hub.site_port is not None, "start the hub with leafnodes=True"
    monitor = free_port()
    config = hub.config.parent / f"site-{location}.conf"
    args = [nats_server_binary(), "-c", str(config), "-m", str(monitor)]
    log = hub.config.parent / f"site-{location}.log"
    with serving("site nats-server", args, log, f"http://127.0.0.1:{monitor}/healthz"):
        yield f"nats://127.0.0.1:{hub.site_port}"
