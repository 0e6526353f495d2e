"""Blocking work off the event loop, and the config files' change signature.

Both the agent and the collector (which schedules in the split deployment)
reload configs on change, with reads that hostile input must not be able to
stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from probes.config.loader import config_files

_T = TypeVar("_T")


async def in_daemon_thread(func: Callable[[], _T]) -> _T:
    """Run blocking work off the event loop in a daemon thread.

    asyncio.to_thread's pool threads are joined at exit, so a config load stuck on a
    hostile file would keep a stopped agent alive; a daemon thread is abandoned.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def work() -> None:
        try:
            report = functools.partial(_settle, future, func(), None)
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            report = functools.partial(_settle, future, None, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed while we worked
            loop.call_soon_threadsafe(report)

    threading.Thread(target=work, name="blocking-work", daemon=True).start()
    return await future


def config_signature(paths: Iterable[str]) -> tuple[tuple[str, int, int], ...]:
    """What changes when a config file is edited, added or removed."""
    entries = []
    for path in config_files(paths):
        try:
            status = Path(path).stat()
        except OSError:
            continue
        entries.append((str(path), status.st_mtime_ns, status.st_size))
    return tuple(entries)


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled (shutdown)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
