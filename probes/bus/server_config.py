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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nkeys

from probes.bus import contract as c


@dataclass(frozen=True)
class NatsUser:
    """A generated user: who, its seed file, its public key."""

    name: str
    seed_file: Path
    public_key: str


def agent_permissions(location: str) -> dict[str, dict[str, list[str]]]:
    """What a location's agents may do, and nothing more."""
    jobs = f"{c.JOBS_STREAM}.{c.agents_consumer(location)}"
    bucket = c.artifacts_bucket(location)
    return {
        "publish": {
            "allow": [
                f"$JS.API.CONSUMER.INFO.{jobs}",
                f"$JS.API.CONSUMER.MSG.NEXT.{jobs}",
                f"$JS.ACK.{jobs}.>",
                c.results_subject(location),
                c.heartbeats_subject(location),
                f"$O.{bucket}.>",
                f"$JS.API.STREAM.INFO.OBJ_{bucket}",
                f"$JS.API.STREAM.MSG.GET.OBJ_{bucket}",
                f"$JS.API.DIRECT.GET.OBJ_{bucket}.>",
                f"$JS.API.STREAM.PURGE.OBJ_{bucket}",
            ]
        },
        "subscribe": {"allow": [f"{c.inbox_prefix(location)}.>"]},
    }


def collector_permissions() -> dict[str, dict[str, list[str]]]:
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


def server_config(
    users: Sequence[tuple[NatsUser, dict[str, dict[str, list[str]]]]],
    *,
    listen: str,
    store_dir: str,
    leafnode_listen: str | None = None,
) -> str:
    """The server's config text (NATS' format accepts JSON values)."""
    entries = ",\n".join(
        f"    {{nkey: {user.public_key}, permissions: {json.dumps(perms)}}}  # {user.name}"
        for user, perms in users
    )
    leaf = f"leafnodes {{ listen: {json.dumps(leafnode_listen)} }}\n" if leafnode_listen else ""
    return (
        "# Written by `parcours nats-config`: public keys only; the seeds are beside it.\n"
        f"listen: {json.dumps(listen)}\n"
        f"jetstream {{ store_dir: {json.dumps(store_dir)} }}\n"
        f"{leaf}"
        f"authorization {{\n  users: [\n{entries}\n  ]\n}}\n"
    )


def write_config(
    folder: Path,
    locations: Sequence[str],
    *,
    listen: str = "127.0.0.1:4222",
    store_dir: str = "/var/lib/nats",
    leafnode_listen: str | None = None,
) -> tuple[Path, dict[str, NatsUser]]:
    """Write ``nats.conf`` and one seed per user; returns the config path and the users."""
    folder.mkdir(parents=True, exist_ok=True)
    users = {"collector": new_user(folder, "collector")}
    entries = [(users["collector"], collector_permissions())]
    for location in locations:
        user = users[location] = new_user(folder, f"agent-{location}")
        entries.append((user, agent_permissions(location)))
    path = folder / "nats.conf"
    path.write_text(
        server_config(entries, listen=listen, store_dir=store_dir, leafnode_listen=leafnode_listen)
    )
    return path, users
