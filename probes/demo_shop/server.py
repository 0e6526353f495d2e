"""Starting and stopping the demo shop on a real socket (CLI, `parcours run`, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from aiohttp import web

from probes.demo_shop.app import create_app

DEMO_JOURNEY = files("probes.demo_shop").joinpath("journey.yaml")
URL_VARIABLE = "PARCOURS_DEMO_URL"


@dataclass
class RunningShop:
    """A started shop: its base URL and how to stop it."""

    url: str
    runner: web.AppRunner

    @property
    def app(self) -> web.Application:
        """The aiohttp application, for tests that flip fault switches directly."""
        return self.runner.app

    async def stop(self) -> None:
        """Close the socket and every open request (hung pages included)."""
        await self.runner.cleanup()


async def start_demo_shop(host: str = "127.0.0.1", port: int = 0) -> RunningShop:
    """Listen on host:port (0 picks a free port) and return the shop's URL."""
    runner = web.AppRunner(create_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return RunningShop(f"http://{host}:{bound_port}", runner)


def demo_journey_text() -> str:
    """The bundled demo journey's YAML."""
    return DEMO_JOURNEY.read_text(encoding="utf-8")
