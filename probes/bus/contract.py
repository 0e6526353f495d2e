"""What the collector and agents agree on over NATS: names, subjects, the job document.

Every name an operator sees in ``nats stream ls`` or in a permission list is
made here, so that the server config (``parcours nats-config``), the collector
and the agents cannot drift apart. Locations are label values (short,
printable, no dots or wildcards: see the CLI's ``_label``), so they are safe as
subject tokens.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

JOBS_STREAM = "PARCOURS_JOBS"  # work queue: a job is removed once an agent acknowledges it
RESULTS_STREAM = "PARCOURS_RESULTS"  # results and heartbeats, kept by age and size
JOBS_PREFIX = "parcours.jobs"
RESULTS_PREFIX = "parcours.results"
HEARTBEATS_PREFIX = "parcours.heartbeats"
MSG_ID = "Nats-Msg-Id"  # JetStream drops a second message with the same id in its window
MAX_JOB_FILES_BYTES = 512 * 1024  # the config travels with each job; NATS' payload cap is 1 MiB


LOCATION_PATTERN = r"[A-Za-z0-9_-]{1,64}"  # also the config's LocationName
LOCATION = re.compile(LOCATION_PATTERN)


def valid_location(name: str) -> bool:
    """A location name is a subject token: no dots, wildcards or spaces."""
    return LOCATION.fullmatch(name) is not None


def jobs_subject(location: str) -> str:
    """Where a location's jobs are queued."""
    return f"{JOBS_PREFIX}.{location}"


def results_subject(location: str) -> str:
    """Where a location's agents publish results."""
    return f"{RESULTS_PREFIX}.{location}"


def heartbeats_subject(location: str) -> str:
    """Where a location's agents publish heartbeats."""
    return f"{HEARTBEATS_PREFIX}.{location}"


def agents_consumer(location: str) -> str:
    """The durable consumer a location's agents share: each job goes to one of them."""
    return f"agents-{location}"


def artifacts_bucket(location: str) -> str:
    """A location's object store bucket: per location, so permissions can fence it."""
    return f"parcours-artifacts-{location}"


def inbox_prefix(location: str) -> str:
    """An agent's reply subjects; fenced per location so no agent reads another's replies."""
    return f"_INBOX.{location}"


COLLECTOR_INBOX = "_INBOX.collector"


def location_of(subject: str) -> str:
    """The location token of a results or heartbeats subject."""
    return subject.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class Job:
    """One scheduled run of a check on a device in a location.

    The config travels as the files' text, unresolved: each agent resolves
    parameters and secrets from its own environment, so the collector never holds
    an agent's secrets. ``config_id`` (a hash of the files) lets agents load a
    config once.
    """

    check: str
    device: str
    location: str
    planned_at: float  # the slot's time, the same on every collector
    deadline: float  # past this, the job is dropped and counted as missed
    config_id: str
    files: tuple[tuple[str, str], ...]  # (name, text) of every config file, in load order

    @property
    def message_id(self) -> str:
        """Check, device, location and slot: two collectors publish each job once."""
        return f"{self.check}@{self.device}@{self.location}@{self.planned_at:.0f}"

    @property
    def name(self) -> str:
        """``check@device``: the job's name in heartbeats."""
        return f"{self.check}@{self.device}"

    def to_bytes(self) -> bytes:
        """The JSON sent on the jobs subject."""
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Job:
        """Parse a job; raises ValueError on anything malformed."""
        try:
            raw: Any = json.loads(data)
            files = tuple((str(name), str(text)) for name, text in raw["files"])
            return cls(
                check=str(raw["check"]),
                device=str(raw["device"]),
                location=str(raw["location"]),
                planned_at=float(raw["planned_at"]),
                deadline=float(raw["deadline"]),
                config_id=str(raw["config_id"]),
                files=files,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed job: {type(exc).__name__}: {exc}"[:300]) from None


def config_id(files: tuple[tuple[str, str], ...]) -> str:
    """A short stable hash of the config files' names and text."""
    digest = hashlib.sha256()
    for name, text in files:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]
