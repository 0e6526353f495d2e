"""Starting and stopping the demo shop on a real socket (CLI, `parcours run`, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from aiohttp import web

from probes.demo_shop.app import FAULTS, create_app
from probes.demo_shop.faults import Faults
from probes.demo_shop.tls_front import SlowHandshakeFront, self_signed_context

DEMO_JOURNEY = files("probes.demo_shop").joinpath("journey.yaml")
URL_VARIABLE = "PARCOURS_DEMO_URL"
TLS_URL_VARIABLE = "PARCOURS_DEMO_TLS_URL"
# The shop as a visitor meets it (`parcours run`, `parcours demo-shop`): a cookie banner on
# half the visits. Tests start it with every switch off and turn on what they prove.
AS_VISITED = Faults(cookie_banner_percent=50)


@dataclass
class RunningShop:
    """A started shop: its base URL and how to stop it."""

    url: str
    runner: web.AppRunner
    tls_url: str  # the same shop over HTTPS, self-signed, behind the slow-handshake switch
    tls_front: SlowHandshakeFront

    @property
    def variables(self) -> dict[str, str]:
        """What the bundled demo config needs: where the shop is, over HTTP and HTTPS."""
        return {URL_VARIABLE: self.url, TLS_URL_VARIABLE: self.tls_url}

    @property
    def app(self) -> web.Application:
        """The aiohttp application, for tests that flip fault switches directly."""
        return self.runner.app

    async def stop(self) -> None:
        """Close the sockets and every open request (hung pages included)."""
        await self.tls_front.stop()
        await self.runner.cleanup()


async def start_demo_shop(
    host: str = "127.0.0.1", port: int = 0, tls_port: int = 0, faults: Faults | None = None
) -> RunningShop:
    """Listen on host:port over HTTP and host:tls_port over HTTPS (0 picks a free port)."""
    app = create_app(faults)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_port = runner.addresses[0][1]
    # The HTTPS side: the same application on a private loopback port, behind the front.
    tls_site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed_context(host))
    await tls_site.start()
    private_port = runner.addresses[-1][1]
    front = SlowHandshakeFront(private_port, lambda: app[FAULTS].current.tls_delay_ms)
    bound_tls = await front.start(host, tls_port)
    url_host = f"[{host}]" if ":" in host else host
    return RunningShop(
        f"http://{url_host}:{bound_port}", runner, f"https://{url_host}:{bound_tls}", front
    )


def demo_journey_text() -> str:
    """The bundled demo journey's YAML."""
    return DEMO_JOURNEY.read_text(encoding="utf-8")
