"""Network and CPU conditions a run is measured under, applied through Chromium's DevTools.

Mobile first: a phone is measured on a 4G network with a 4x slower CPU by
default, the way most customers arrive; a desktop is measured unthrottled.
The named networks follow WebPageTest's connectivity profiles. CDP applies
``latency`` to every request (request sent to response headers), which is
what a round trip costs a page on a real mobile network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Network:
    """A network profile: added latency and throughput limits."""

    name: str
    latency_ms: float
    download_kbps: float  # 0 = unlimited
    upload_kbps: float  # 0 = unlimited
    offline: bool = False

    def cdp(self) -> dict[str, Any]:
        """Parameters of ``Network.emulateNetworkConditions`` (throughput in bytes/s)."""

        def rate(kbps: float) -> float:
            return kbps * 1000 / 8 if kbps > 0 else -1

        return {
            "offline": self.offline,
            "latency": self.latency_ms,
            "downloadThroughput": rate(self.download_kbps),
            "uploadThroughput": rate(self.upload_kbps),
        }


NETWORKS: dict[str, Network] = {
    network.name: network
    for network in (
        Network("none", 0, 0, 0),
        Network("cable", 28, 5_000, 1_000),
        Network("4g", 170, 9_000, 9_000),
        Network("3g-fast", 150, 1_600, 768),
        Network("3g-slow", 400, 400, 400),
        Network("offline", 0, 0, 0, offline=True),
    )
}
MOBILE_DEFAULT = ("4g", 4.0)
DESKTOP_DEFAULT = ("none", 1.0)


@dataclass(frozen=True)
class Conditions:
    """What a run is measured under; recorded in its result."""

    network: Network
    cpu_slowdown: float

    def describe(self) -> dict[str, Any]:
        """Plain data for ``RunResult.conditions``."""
        return {
            "network": self.network.name,
            "latency_ms": self.network.latency_ms,
            "download_kbps": self.network.download_kbps,
            "upload_kbps": self.network.upload_kbps,
            "offline": self.network.offline,
            "cpu_slowdown": self.cpu_slowdown,
        }


def resolve_conditions(
    is_mobile: bool,
    *,
    device_network: str | None,
    device_cpu: float | None,
    journey_network: str | None,
    journey_cpu: float | None,
    custom: dict[str, Network],
) -> Conditions:
    """Journey settings win over the device's, which win over the mobile/desktop default."""
    default_network, default_cpu = MOBILE_DEFAULT if is_mobile else DESKTOP_DEFAULT
    name = journey_network or device_network or default_network
    cpu = journey_cpu or device_cpu or default_cpu
    network = custom.get(name) or NETWORKS[name]  # names are checked at load
    return Conditions(network, cpu)
