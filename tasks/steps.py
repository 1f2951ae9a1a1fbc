"""What every step task has in common: its Prefect options and how it reports its changes.

``@task(**STEP)`` gives a task the project's retry behaviour (reruns after transient errors only,
with exponential backoff and jitter; see :mod:`tasks.retries`) and no caching: a step reads live
state every time it runs, so a cached result would be a stale answer. ``@task(**CHECK)`` is for
read-only checks and waits, which are never cached either.

:func:`report` logs one line per change (the action and the resource id) through the run logger and
returns the changes, so that an ensure task ends with ``return report(change)``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError
from prefect.logging import get_logger, get_run_logger
from prefect.tasks import exponential_backoff

from aksmetrics.changes import Change
from tasks.clients import get_settings
from tasks.retries import retry_on_transient

_settings = get_settings()

# Read once, when the task modules are imported: Prefect fixes a task's retries at decoration.
STEP: dict[str, Any] = {
    "retries": _settings.task_retries,
    "retry_delay_seconds": exponential_backoff(backoff_factor=_settings.task_retry_delay),
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_on_transient,
    "cache_policy": NO_CACHE,
}

# The same options: a check that met a transient error is rerun like a step, never cached.
CHECK: dict[str, Any] = {**STEP}


T = TypeVar("T")
R = TypeVar("R")


def concurrently(
    function: Callable[[T], R], items: Iterable[T], *, max_workers: int = 8
) -> list[R]:
    """``function`` of each item, called side by side, results in the items' order.

    For independent reads inside one task, so that a step pays the API's latency about once rather
    than once per object. Each call runs in a copy of the caller's context, so the run logger and
    Prefect's settings work there too.
    """
    items = list(items)
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        futures = [pool.submit(contextvars.copy_context().run, function, item) for item in items]
        return [future.result() for future in futures]


def logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a flow or task; the module logger elsewhere (scripts, unit tests)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("aksmetrics.tasks")


def report(*changes: Change) -> list[Change]:
    """Log one line per change and return the changes.

    Every object a step looked at gets its line, unchanged ones too, so that a run's log shows what
    was checked as well as what was written.
    """
    log = logger()
    for change in changes:
        log.info("%s", change.line())
    return list(changes)
