"""Logging set-up, done once by the entry point (never at import time).

JSON lines when stderr is not a terminal (collected by a log pipeline),
readable key=value lines on a terminal. Context such as journey, device and
run id is bound per run by the runner.
"""

from __future__ import annotations

import logging
import sys

import structlog

from probes.secrets import Masker


class SecretScrubber:
    """A structlog processor masking every known secret in every event.

    The entry point owns the one instance and hands it the loaded config's
    masker (again on each reload); runners mask what they log as well, so
    this is the second line of defence, not the only one.
    """

    def __init__(self) -> None:
        self.masker = Masker()

    def __call__(
        self, _logger: object, _method: str, event: structlog.typing.EventDict
    ) -> structlog.typing.EventDict:
        if not self.masker:
            return event
        return {key: self.masker.mask_data(value) for key, value in event.items()}


def configure_logging(level: str = "info", json: bool | None = None) -> SecretScrubber:
    """Configure structlog for this process; ``json=None`` picks by terminal."""
    scrubber = SecretScrubber()
    use_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            scrubber,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # APScheduler logs skips and misses itself; we log them as structured events instead.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    return scrubber
