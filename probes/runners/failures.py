"""A step failure carries its error type and a message a person can act on."""

from __future__ import annotations

from probes.result import ErrorType


class StepFailure(Exception):
    """Raised inside a step; the runner records it and skips the remaining steps."""

    def __init__(self, error_type: ErrorType, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
