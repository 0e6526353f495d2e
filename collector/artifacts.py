"""Artifacts on disk: one folder per run, bounded by age and total size, oldest first.

Names and run ids are checked against strict patterns before any path is
built, and the resolved path must stay inside the store: a hostile name
(``../../etc/passwd``), a wrong content type or an oversized upload is
refused and nothing is written. Files are written to a temporary name and
renamed, so a reader never sees half an artifact. File I/O runs in a thread.
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

RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,56}\.(png|html|zip)$")
CONTENT_TYPES = {"png": "image/png", "html": "text/html", "zip": "application/zip"}
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "zip": b"PK\x03\x04"}


class ArtifactRefused(ValueError):
    """An upload that must not be stored; the message says why (sent back as a 4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetentionLimits:
    """How much evidence to keep."""

    max_age_seconds: float = 14 * 24 * 3600
    max_total_bytes: int = 2 * 1024**3
    max_artifact_bytes: int = 25 * 1024**2


class ArtifactStore:
    """Stores, serves and expires the artifacts of runs."""

    def __init__(self, root: Path, limits: RetentionLimits | None = None) -> None:
        self.root = root.resolve()
        self.limits = limits or RetentionLimits()
        self._lock = asyncio.Lock()

    def check(self, run_id: str, name: str, content_type: str, size: int) -> Path:
        """The path an upload would take, or ArtifactRefused saying why not."""
        if not RUN_ID.match(run_id):
            raise ArtifactRefused("run id must be 1-128 letters, digits, '_' or '-'")
        if not NAME.match(name):
            raise ArtifactRefused(
                "artifact name must be lower-case letters, digits, '_' or '-' and end in "
                ".png, .html or .zip"
            )
        expected = CONTENT_TYPES[name.rsplit(".", 1)[1]]
        if content_type != expected:
            raise ArtifactRefused(f"{name} must be sent as {expected}, got {content_type}", 415)
        if size > self.limits.max_artifact_bytes:
            raise ArtifactRefused(
                f"artifact is {size} bytes, over the limit of {self.limits.max_artifact_bytes}",
                413,
            )
        path = (self.root / run_id / name).resolve()
        if path.parent.parent != self.root:
            raise ArtifactRefused("artifact path escapes the store")
        return path

    async def put(self, run_id: str, name: str, content_type: str, data: bytes) -> None:
        """Store one artifact, then apply retention."""
        path = self.check(run_id, name, content_type, len(data))
        magic = MAGIC.get(name.rsplit(".", 1)[1])
        if magic is not None and not data.startswith(magic):
            raise ArtifactRefused(f"{name} is not a {content_type} file", 415)
        async with self._lock:
            await asyncio.to_thread(_write, path, data)
            removed = await asyncio.to_thread(self._expire_sync, time.time())
        if removed:
            log.info("artifacts_expired", runs=removed)

    def path(self, run_id: str, name: str) -> Path | None:
        """Where a stored artifact is, or None if it is not (or never could be) there."""
        if not RUN_ID.match(run_id) or not NAME.match(name):
            return None
        path = (self.root / run_id / name).resolve()
        return path if path.parent.parent == self.root and path.is_file() else None

    def names(self, run_id: str) -> list[str]:
        """The artifacts stored for a run."""
        folder = self.root / run_id
        if not RUN_ID.match(run_id) or not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if NAME.match(p.name))

    def _expire_sync(self, now: float) -> int:
        """Delete whole runs: past the age limit, then oldest first until under the size limit."""
        runs = []
        for folder in self.root.iterdir() if self.root.is_dir() else []:
            if folder.is_dir() and RUN_ID.match(folder.name):
                files = [f for f in folder.iterdir() if f.is_file()]
                size = sum(f.stat().st_size for f in files)
                runs.append((folder.stat().st_mtime, folder, size))
        runs.sort()
        total = sum(size for _, _, size in runs)
        removed = 0
        for mtime, folder, size in runs:
            too_old = now - mtime > self.limits.max_age_seconds
            if not too_old and total <= self.limits.max_total_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            removed += 1
        return removed


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
    os.utime(path.parent)  # a run's age is its last upload
