"""Long-running commands: the collector, an agent, or both in one process (`parcours run`)."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from collector.app import ARTIFACTS, INGESTOR, CollectorSettings, announce_url, create_app
from probes.agent.agent import Agent, AgentSettings
from probes.agent.shipper import HttpShipper, ResultSink
from probes.agent.stats import AgentStats
from probes.agent.worker import NatsAgent
from probes.browser import BrowserManager
from probes.config import LoadedConfig, load_config, load_config_text
from probes.demo_shop.server import AS_VISITED, RunningShop, demo_journey_text, start_demo_shop
from probes.embedded import LocalSink
from probes.logs import SecretScrubber

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Listen:
    """A HOST:PORT to listen on."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """``127.0.0.1:9480``, ``:9480`` or ``[::1]:9480``."""
        host, _, port = text.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]") or "0.0.0.0", int(port))  # an explicit ':PORT'


async def start_collector(settings: CollectorSettings, listen: Listen) -> web.AppRunner:
    """Start the collector app on a socket; the caller cleans the runner up."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, listen.host, listen.port).start()
    if not settings.public_url:
        announce_url(runner.app, public_url(runner))
    return runner


def public_url(runner: web.AppRunner) -> str:
    """The collector's address as others reach it: the bound one, with this host's name
    when it listens on every interface (0.0.0.0 is no address to give anyone)."""
    host, port = runner.addresses[0][:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()  # no DNS lookup on the event loop
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def bound_url(runner: web.AppRunner) -> str:
    """The URL a started runner answers on (its port may have been picked by the OS)."""
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"


def stop_on_signals(
    stop: asyncio.Event,
    reload: Callable[[], None] | None,
    hurry: Callable[[], None] | None = None,
) -> None:
    """SIGTERM and SIGINT stop gracefully, a second one stops at once; SIGHUP reloads."""
    loop = asyncio.get_running_loop()

    def on_stop_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            log.info("stop_requested", signal=sig.name, then="a second signal stops at once")
            stop.set()
        elif hurry is not None:
            log.warning("stop_now_requested", signal=sig.name)
            hurry()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal, sig)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, reload)


def config_loader(paths: list[str], demo: RunningShop | None) -> Callable[[], LoadedConfig]:
    """Loads the given files, or the demo journey pointed at the running demo shop."""
    if demo is not None:
        text = demo_journey_text()
        variables = demo.variables
        return lambda: load_config_text(text, "<demo journey>", variables=variables)
    return lambda: load_config(paths)


async def run_agent(
    settings: AgentSettings,
    *,
    load: Callable[[], LoadedConfig],
    sink: ResultSink,
    scrubber: SecretScrubber,
    stop: asyncio.Event,
    stats: AgentStats | None = None,
) -> None:
    """Run an agent until ``stop`` is set, then shut it down cleanly."""
    agent = Agent(settings, load, sink, BrowserManager(), scrubber=scrubber, stats=stats)
    reload_tasks: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = asyncio.create_task(agent.reload("SIGHUP"))
        reload_tasks.add(task)
        task.add_done_callback(reload_tasks.discard)

    stop_on_signals(stop, reload, agent.hurry)
    try:
        await agent.start()
        await stop.wait()
    finally:
        for task in reload_tasks:  # a reload never delays shutdown
            task.cancel()
        await agent.stop()


async def run_embedded(
    paths: list[str],
    *,
    listen: Listen,
    data_dir: Path,
    agent_settings: AgentSettings,
    scrubber: SecretScrubber,
    ready: Callable[[str, str | None], None] | None = None,
    public_url: str | None = None,
) -> None:
    """`parcours run`: collector, agent (and the demo shop when given no config)."""
    demo = None if paths else await start_demo_shop(faults=AS_VISITED)
    runner = await start_collector(CollectorSettings(data_dir, public_url=public_url), listen)
    stop = asyncio.Event()
    try:
        sink = LocalSink(runner.app[INGESTOR], runner.app[ARTIFACTS])
        load = config_loader(paths, demo)
        settings = dataclasses.replace(agent_settings, collector_url=bound_url(runner))
        task = asyncio.create_task(
            run_agent(settings, load=load, sink=sink, scrubber=scrubber, stop=stop)
        )
        await asyncio.sleep(0)
        if ready is not None:
            ready(bound_url(runner), demo.url if demo else None)
        await task
    finally:
        stop.set()
        await runner.cleanup()
        if demo is not None:
            await demo.stop()


async def run_collector(settings: CollectorSettings, listen: Listen) -> None:
    """`parcours collector`: serve until SIGTERM or SIGINT."""
    runner = await start_collector(settings, listen)
    stop = asyncio.Event()
    stop_on_signals(stop, None)
    log.info("collector_listening", url=bound_url(runner), auth=bool(settings.tokens))
    if not settings.tokens and not _loopback(listen.host):
        log.warning(
            "collector_open_to_the_network",
            listen=f"{listen.host}:{listen.port}",
            fix="anyone who reaches it reads every run and artifact; give --auth-file, or "
            "listen on 127.0.0.1 behind a reverse proxy that authenticates",
        )
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def run_remote_agent(
    paths: list[str], collector_url: str, settings: AgentSettings, scrubber: SecretScrubber
) -> None:
    """`parcours agent`: run journeys and post results to a collector."""
    stats = AgentStats()
    shipper = HttpShipper(collector_url, stats)
    settings = dataclasses.replace(settings, collector_url=collector_url)
    load = config_loader(paths, None)
    await run_agent(
        settings, load=load, sink=shipper, scrubber=scrubber, stop=asyncio.Event(), stats=stats
    )


async def run_nats_agent(
    settings: AgentSettings,
    nats_url: str,
    creds: str | None,
    scrubber: SecretScrubber,
    domain: str | None = None,
) -> None:
    """`parcours agent --nats`: work the location's queue until SIGTERM or SIGINT."""
    agent = NatsAgent(settings, nats_url, creds, BrowserManager(), scrubber=scrubber, domain=domain)
    stop = asyncio.Event()
    stop_on_signals(stop, None)
    try:
        await agent.start()
        await stop.wait()
    finally:
        await agent.stop()
