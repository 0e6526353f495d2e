"""``parcours nats-config``: a NATS server config whose permissions fence each location.

One NKey user for the collector, one per location for its agents. An agent's
user may take only its location's jobs and publish only its location's
results, heartbeats and artifacts; its replies come on an inbox no other
location can read. Seeds are written 0600 beside the config; the config holds
public keys only, so it can be shared and versioned.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nkeys

from probes.bus import contract as c

Permissions = dict[str, dict[str, list[str]]]
# The hub's JetStream domain: agents behind a leaf node address its API as $JS.hub.API.
DOMAIN = "hub"


@dataclass(frozen=True)
class NatsUser:
    """A generated user: who, its seed file, its public key."""

    name: str
    seed_file: Path
    public_key: str


def agent_permissions(location: str, *, domain: str | None = None) -> Permissions:
    """What a location's agents may do, and nothing more. ``domain``: the same, for agents
    reaching the hub's JetStream through a leaf node (API subjects carry the domain)."""
    jobs = f"{c.JOBS_STREAM}.{c.agents_consumer(location)}"
    bucket = c.artifacts_bucket(location)
    api = [
        f"CONSUMER.INFO.{jobs}",
        f"CONSUMER.MSG.NEXT.{jobs}",
        f"STREAM.INFO.OBJ_{bucket}",
        f"STREAM.MSG.GET.OBJ_{bucket}",
        f"DIRECT.GET.OBJ_{bucket}.>",
        f"STREAM.PURGE.OBJ_{bucket}",
    ]
    prefix = f"$JS.{domain}.API" if domain else "$JS.API"
    return {
        "publish": {
            "allow": [
                *(f"{prefix}.{call}" for call in api),
                f"$JS.ACK.{jobs}.>",
                c.results_subject(location),
                c.heartbeats_subject(location),
                f"$O.{bucket}.>",
            ]
        },
        "subscribe": {"allow": [f"{c.inbox_prefix(location)}.>"]},
    }


def collector_permissions() -> Permissions:
    """The collector manages streams, publishes jobs, reads results and artifacts; it
    cannot publish a result or a heartbeat."""
    return {
        "publish": {
            "allow": ["$JS.API.>", "$JS.ACK.>", "$JS.FC.>", f"{c.JOBS_PREFIX}.>"],
        },
        "subscribe": {"allow": [f"{c.COLLECTOR_INBOX}.>"]},
    }


def new_user(folder: Path, name: str) -> NatsUser:
    """Write a fresh NKey user seed to ``folder/name.nk`` (mode 0600)."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(bytearray(seed)).public_key.decode()
    path = folder / f"{name}.nk"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(seed + b"\n")
    return NatsUser(name, path, public)


@dataclass(frozen=True)
class SiteUser:
    """A remote site's leaf node login (nats-server 2.9 leaf remotes take no NKey seed)."""

    location: str
    user: str
    password: str


def server_config(
    users: Sequence[tuple[NatsUser, Permissions]],
    *,
    listen: str,
    store_dir: str,
    leafnode_listen: str | None = None,
    sites: Sequence[SiteUser] = (),
) -> str:
    """The hub's config text (NATS' format accepts JSON values)."""
    entries = [
        f"    {{nkey: {user.public_key}, permissions: {json.dumps(perms)}}}  # {user.name}"
        for user, perms in users
    ]
    entries += [
        f"    {{user: {json.dumps(site.user)}, password: {json.dumps(site.password)}, "
        f"permissions: {json.dumps(agent_permissions(site.location, domain=DOMAIN))}}}"
        for site in sites
    ]
    leaf = f"leafnodes {{ listen: {json.dumps(leafnode_listen)} }}\n" if leafnode_listen else ""
    joined = ",\n".join(entries)
    return (
        "# Written by `parcours nats-config`. Agents and the collector log in with NKeys (the\n"
        "# seeds are beside this file); remote sites' leaf nodes with a password. Keep 0600.\n"
        f"listen: {json.dumps(listen)}\n"
        f"jetstream {{ store_dir: {json.dumps(store_dir)}, domain: {DOMAIN} }}\n"
        f"{leaf}"
        f"authorization {{\n  users: [\n{joined}\n  ]\n}}\n"
    )


def site_config(site: SiteUser, hub_leafnodes: str, listen: str = "127.0.0.1:4222") -> str:
    """A remote site's own nats-server: a leaf node with one outbound connection to the hub.
    Agents on the site connect to it with ``--nats-domain hub`` and no credentials."""
    remote = f"nats-leaf://{site.user}:{site.password}@{hub_leafnodes}"
    return (
        f"# Site {site.location}: written by `parcours nats-config`; holds a password, keep 0600.\n"
        f"listen: {json.dumps(listen)}\n"
        f"leafnodes {{ remotes: [ {{ url: {json.dumps(remote)} }} ] }}\n"
    )


def write_config(
    folder: Path,
    locations: Sequence[str],
    *,
    listen: str = "127.0.0.1:4222",
    store_dir: str = "/var/lib/nats",
    leafnode_listen: str | None = None,
    site_listen: str = "127.0.0.1:4222",
    hub_address: str | None = None,
) -> tuple[Path, dict[str, NatsUser]]:
    """Write ``nats.conf``, one seed per user and, with leaf nodes, one ``site-LOCATION.conf``
    per location (dialling ``hub_address``, default the leaf listen address); returns the
    hub's config path and the users."""
    folder.mkdir(parents=True, exist_ok=True)
    users = {"collector": new_user(folder, "collector")}
    entries = [(users["collector"], collector_permissions())]
    for location in locations:
        user = users[location] = new_user(folder, f"agent-{location}")
        entries.append((user, agent_permissions(location)))
    sites = []
    if leafnode_listen:
        for location in locations:
            site = SiteUser(location, f"site-{location}", secrets.token_urlsafe(24))
            text = site_config(site, hub_address or leafnode_listen, site_listen)
            _write_private(folder / f"site-{location}.conf", text)
            sites.append(site)
    path = folder / "nats.conf"
    text = server_config(
        entries,
        listen=listen,
        store_dir=store_dir,
        leafnode_listen=leafnode_listen,
        sites=sites,
    )
    _write_private(path, text)
    return path, users


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
