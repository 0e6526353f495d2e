"""Artifacts on disk: one folder per run, bounded by age and total size, oldest first.

Names and run ids are checked against strict patterns before any path is
built, and the resolved path must stay inside the store: a hostile name
(``../../etc/passwd``), a wrong content type or an oversized upload is
refused and nothing is written. Files are written to a temporary name and
renamed, so a reader never sees half an artifact. File I/O runs in a thread.

Only evidence of an accepted run is stored, and only the artifacts its result
declared, at the size declared. Each run and each agent has a quota, and when
the store is over its total the agent holding the most pays first, oldest run
first: one client cannot evict the evidence of others.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

# fullmatch only: with match, "$" also matches before a trailing newline ("x.png\n").
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,56}\.(png|html|zip)")
OWNER_FILE = ".agent"  # who sent the run, for per-agent quotas (not a NAME, never served)
CONTENT_TYPES = {"png": "image/png", "html": "text/html", "zip": "application/zip"}
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "zip": b"PK\x03\x04"}


class ArtifactRefused(ValueError):
    """An upload that must not be stored; the message says why (sent back as a 4xx)."""

    def __init__(self, message: str, status: int = 400, reason: str = "invalid") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class ExpectedArtifacts:
    """Who sent a run and which artifacts (name -> size in bytes) its result declared."""

    agent: str
    sizes: dict[str, int]


@dataclass(frozen=True)
class RetentionLimits:
    """How much evidence to keep."""

    max_age_seconds: float = 14 * 24 * 3600
    max_total_bytes: int = 2 * 1024**3
    max_artifact_bytes: int = 25 * 1024**2
    max_run_bytes: int = 64 * 1024**2
    max_agent_bytes: int = 1024**3


@dataclass
class _StoredRun:
    mtime: float
    folder: Path
    size: int
    agent: str


class ArtifactStore:
    """Stores, serves and expires the artifacts of runs."""

    def __init__(self, root: Path, limits: RetentionLimits | None = None) -> None:
        self.root = root.resolve()
        self.limits = limits or RetentionLimits()
        self._lock = asyncio.Lock()

    def check(
        self,
        run_id: str,
        name: str,
        content_type: str,
        size: int,
        expected: ExpectedArtifacts | None,
    ) -> Path:
        """The path an upload would take, or ArtifactRefused saying why not."""
        if not RUN_ID.fullmatch(run_id):
            raise ArtifactRefused("run id must be 1-128 letters, digits, '_' or '-'")
        if not NAME.fullmatch(name):
            raise ArtifactRefused(
                "artifact name must be lower-case letters, digits, '_' or '-' and end in "
                ".png, .html or .zip"
            )
        wanted = CONTENT_TYPES[name.rsplit(".", 1)[1]]
        if content_type != wanted:
            raise ArtifactRefused(f"{name} must be sent as {wanted}, got {content_type}", 415)
        if size > self.limits.max_artifact_bytes:
            raise ArtifactRefused(
                f"artifact is {size} bytes, over the limit of {self.limits.max_artifact_bytes}",
                413,
                "quota",
            )
        self._check_declared(run_id, name, size, expected)
        path = (self.root / run_id / name).resolve()
        if path.parent.parent != self.root:
            raise ArtifactRefused("artifact path escapes the store")
        return path

    def _check_declared(
        self, run_id: str, name: str, size: int, expected: ExpectedArtifacts | None
    ) -> None:
        """Evidence only of an accepted run, as its result declared it, within its quota."""
        if expected is None:
            raise ArtifactRefused(
                f"no accepted run {run_id} with artifacts: send its result first",
                404,
                "unknown_run",
            )
        declared = expected.sizes.get(name)
        if declared is None:
            raise ArtifactRefused(
                f"run {run_id} declared no artifact named {name} "
                f"(declared: {', '.join(sorted(expected.sizes)) or 'none'})",
                400,
                "undeclared",
            )
        if size != declared:
            raise ArtifactRefused(
                f"{name} was declared as {declared} bytes, got {size}", 400, "undeclared"
            )
        total = sum(expected.sizes.values())
        if total > self.limits.max_run_bytes:
            raise ArtifactRefused(
                f"run {run_id} declares {total} bytes of artifacts, over the per-run quota "
                f"of {self.limits.max_run_bytes}",
                413,
                "quota",
            )

    async def put(
        self,
        run_id: str,
        name: str,
        content_type: str,
        data: bytes,
        expected: ExpectedArtifacts | None,
    ) -> None:
        """Store one artifact of an accepted run, then apply retention."""
        path = self.check(run_id, name, content_type, len(data), expected)
        assert expected is not None  # check() refuses a run nobody declared
        magic = MAGIC.get(name.rsplit(".", 1)[1])
        if magic is not None and not data.startswith(magic):
            raise ArtifactRefused(f"{name} is not a {content_type} file", 415)
        async with self._lock:
            await asyncio.to_thread(_write, path, data, expected.agent)
            removed = await asyncio.to_thread(self._expire_sync, time.time())
        if removed:
            log.info("artifacts_expired", runs=removed)

    def path(self, run_id: str, name: str) -> Path | None:
        """Where a stored artifact is, or None if it is not (or never could be) there."""
        if not RUN_ID.fullmatch(run_id) or not NAME.fullmatch(name):
            return None
        path = (self.root / run_id / name).resolve()
        return path if path.parent.parent == self.root and path.is_file() else None

    def names(self, run_id: str) -> list[str]:
        """The artifacts stored for a run."""
        folder = self.root / run_id
        if not RUN_ID.fullmatch(run_id) or not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if NAME.fullmatch(p.name))

    def _expire_sync(self, now: float) -> int:
        """Delete whole runs: past the age limit; then an agent's oldest while it is over its
        quota; then, while the store is over its total, the oldest run of the largest holder."""
        runs = sorted(self._stored_runs(), key=lambda run: run.mtime)
        doomed = [run for run in runs if now - run.mtime > self.limits.max_age_seconds]
        kept = [run for run in runs if now - run.mtime <= self.limits.max_age_seconds]
        by_agent: dict[str, list[_StoredRun]] = {}
        for run in kept:
            by_agent.setdefault(run.agent, []).append(run)
        held = {agent: sum(run.size for run in owned) for agent, owned in by_agent.items()}
        for agent, owned in by_agent.items():
            while owned and held[agent] > self.limits.max_agent_bytes:
                doomed.append(run := owned.pop(0))
                held[agent] -= run.size
        while sum(held.values()) > self.limits.max_total_bytes:
            largest = max(held, key=lambda agent: held[agent])
            doomed.append(run := by_agent[largest].pop(0))
            held[largest] -= run.size
        for run in doomed:
            shutil.rmtree(run.folder, ignore_errors=True)
        return len(doomed)

    def _stored_runs(self) -> list[_StoredRun]:
        runs = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.is_dir() and RUN_ID.fullmatch(folder.name):
                files = [f for f in folder.iterdir() if f.is_file()]
                size = sum(f.stat().st_size for f in files)
                owner = folder / OWNER_FILE
                agent = owner.read_text("utf-8", "replace") if owner.is_file() else ""
                runs.append(_StoredRun(folder.stat().st_mtime, folder, size, agent))
        return runs


def _write(path: Path, data: bytes, agent: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.parent / OWNER_FILE
    if not owner.exists():
        owner.write_text(agent, "utf-8")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    os.utime(path.parent)  # a run's age is its last upload
