"""Evidence for the on-call person: what the customer saw, captured when it matters.

A screenshot and the HTML of the page when a step fails (and of the last page
when a run is degraded), and a Playwright trace of the run, each as the
journey's ``evidence`` settings say. Secrets never leave: fields typed with a
secret are blacked out in screenshots (Playwright's ``mask``), and every text
artifact, every text entry of the trace zip included, is masked.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from playwright.async_api import BrowserContext, Error, Page

from probes.config.model import EvidenceSettings, Locator, Step
from probes.result import Artifact
from probes.runners.locators import all_matches
from probes.secrets import Masker

log = structlog.get_logger(__name__)
CAPTURE_TIMEOUT_SECONDS = 10.0


@dataclass
class Evidence:
    """Artifacts of one run: their descriptions for the result, their bytes for upload."""

    artifacts: list[Artifact] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, artifact: Artifact, data: bytes) -> None:
        """Keep one artifact (its size is what was actually kept)."""
        self.artifacts.append(
            Artifact(artifact.name, artifact.kind, artifact.content_type, len(data), artifact.step)
        )
        self.blobs[artifact.name] = data


def secret_fields(steps: tuple[Step, ...], masker: Masker) -> list[Locator]:
    """Fields the journey types a secret into: to be blacked out in screenshots."""
    return [s.fill for s in steps if s.fill is not None and s.value and masker.hides(s.value)]


async def capture_page(
    page: Page,
    evidence: Evidence,
    *,
    step: str,
    prefix: str,
    settings: EvidenceSettings,
    masker: Masker,
    secrets: list[Locator],
) -> None:
    """Screenshot and HTML of the page now; a page that cannot be captured is logged."""
    try:
        if settings.screenshots != "never":
            shot = await asyncio.wait_for(
                page.screenshot(
                    full_page=settings.full_page,
                    type="png",
                    mask=[all_matches(page, locator) for locator in secrets],
                    mask_color="#000000",
                    timeout=CAPTURE_TIMEOUT_SECONDS * 1000,
                ),
                CAPTURE_TIMEOUT_SECONDS + 1,
            )
            evidence.add(Artifact(f"{prefix}.png", "screenshot", "image/png", 0, step), shot)
        if settings.html:
            html = await asyncio.wait_for(page.content(), CAPTURE_TIMEOUT_SECONDS)
            evidence.add(
                Artifact(f"{prefix}.html", "html", "text/html", 0, step),
                masker.mask(html).encode("utf-8"),
            )
    except (Error, TimeoutError) as exc:
        log.warning("evidence_capture_failed", step=step, error=str(exc).splitlines()[0][:200])


async def start_trace(
    context: BrowserContext, settings: EvidenceSettings, attempt: int, *, screencast: bool
) -> bool:
    """Record a trace when one may be kept; returns whether one is being recorded.

    Recording costs about 30 % of a run's wall time (bench/journey_overhead), so
    ``on_failure`` records only in a retry, the attempt that follows a failure: the
    trace shows the failure reproduced, and healthy runs pay nothing.

    ``screencast`` is false when a step types a secret: the trace's screencast frames are
    pictures, which text masking cannot reach, and Playwright cannot black out a field in
    them. Such traces keep their DOM snapshots (masked as text), not the frames.
    """
    if settings.trace == "never" or (settings.trace == "on_failure" and attempt < 2):
        return False
    await context.tracing.start(screenshots=screencast, snapshots=True, sources=False)
    return True


async def stop_trace(
    context: BrowserContext, evidence: Evidence, *, keep: bool, masker: Masker
) -> None:
    """Stop recording; keep the trace (masked) or drop it."""
    try:
        if not keep:
            await asyncio.wait_for(context.tracing.stop(), CAPTURE_TIMEOUT_SECONDS)
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "trace.zip"
            await asyncio.wait_for(context.tracing.stop(path=path), CAPTURE_TIMEOUT_SECONDS * 3)
            raw = await asyncio.to_thread(path.read_bytes)
        masked = await asyncio.to_thread(mask_zip, raw, masker)
        evidence.add(Artifact("trace.zip", "trace", "application/zip", 0), masked)
    except (Error, TimeoutError, OSError, zipfile.BadZipFile) as exc:
        log.warning("trace_capture_failed", error=str(exc).splitlines()[0][:200])


def mask_zip(data: bytes, masker: Masker) -> bytes:
    """The same zip with every text entry masked (DOM snapshots, network bodies, logs)."""
    if not masker:
        return data
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            target.writestr(entry, masker.mask_bytes(source.read(entry)))
    return out.getvalue()
