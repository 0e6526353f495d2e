"""The ``python:`` step: a function of the user's for what YAML cannot express.

It is called with the Playwright page and the values captured so far, timed and
reported like any step; a mapping it returns adds captures. ``module:function``
is imported by name; ``file.py:function`` is loaded from beside the config file
that names it, so that a journey's helpers live with the journey.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from playwright.async_api import Error, Page

from probes.result import ErrorType
from probes.runners.failures import StepFailure

StepFunction = Callable[[Page, dict[str, str]], Any]


def load(target: str, config_source: str) -> StepFunction:
    """The function a ``python:`` step names; a config_error that says why when it cannot."""
    module_name, _, function = target.partition(":")
    try:
        module = _module(module_name, config_source)
    except Exception as exc:  # noqa: BLE001 - the user's module may raise anything on import
        raise StepFailure(
            ErrorType.CONFIG_ERROR, f"python step {target}: cannot import {module_name}: {exc!r}"
        ) from None
    found = getattr(module, function, None)
    if not callable(found):
        raise StepFailure(
            ErrorType.CONFIG_ERROR,
            f"python step {target}: {module_name} has no function {function}",
        )
    return found  # type: ignore[no-any-return]


def _module(name: str, config_source: str) -> Any:
    if not name.endswith(".py"):
        return importlib.import_module(name)
    config_file = config_source.rsplit(":", 1)[0]
    path = (Path(config_file).parent / name).resolve()
    spec = importlib.util.spec_from_file_location(f"parcours_steps_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"no Python file at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def call(function: StepFunction, page: Page, captures: dict[str, str]) -> dict[str, str]:
    """Run the user's function; what it returns as a mapping becomes captures."""
    try:
        returned = function(page, dict(captures))
        if inspect.isawaitable(returned):
            returned = await returned
    except (StepFailure, Error):
        raise  # Playwright's errors are reported like any step's
    except AssertionError as exc:
        raise StepFailure(ErrorType.ASSERTION_FAILED, f"python step: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything: its failure
        raise StepFailure(
            ErrorType.ASSERTION_FAILED, f"python step raised {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(returned, Mapping):
        return {str(k): str(v) for k, v in returned.items()}
    return {}
