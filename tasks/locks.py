"""One write lock per environment, so that two runs never write to the same cluster at once.

Provision, a drift repair and teardown all write to the same Azure resources and Kubernetes objects.
Run side by side on one environment, one could delete what the other is creating, or two rollout
restarts could overlap. Each of them therefore holds the environment's lock while it writes.

The lock is a Prefect global concurrency limit with one slot, named after the environment
(:func:`lock_name`). It lives on the Prefect server, so it holds across workers, machines and work
pools that share one server. A slot is held under a lease that the holder renews while it runs; a
holder that dies (a killed worker, a lost pod) stops renewing, and the slot frees itself when the
lease runs out, so a crashed run never locks an environment for good.

The lock is re-entrant within one run: a flow that holds it may call a subflow that asks for it
again (a drift repair that runs provision steps) without waiting for itself.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency
from prefect.context import FlowRunContext
from prefect.exceptions import MissingContextError, ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger
from prefect.logging.loggers import get_run_logger

LOCK_PREFIX = "aks-metrics-write-"

# How long a holder's slot survives without renewal. The holder renews at three quarters of it, so
# it only matters when the holder died: the next run waits at most this long.
DEFAULT_LEASE_SECONDS = float(os.environ.get("AKS_METRICS_LOCK_LEASE_SECONDS", "120"))

# How long a run waits for another run on the same environment to finish writing. A provision of a
# fresh environment takes minutes, so the default is generous; a scheduled drift check that gives
# up is simply tried again at its next slot.
DEFAULT_WAIT_SECONDS = float(os.environ.get("AKS_METRICS_LOCK_WAIT_SECONDS", "1800"))

# The environments whose lock this run (this context and the flows and tasks it starts) holds.
_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "aks_metrics_environment_locks", default=frozenset()
)


class LockUnavailable(RuntimeError):
    """The environment's lock could not be taken: another run holds it, or it is misconfigured."""


def lock_name(environment: str) -> str:
    """The name of the global concurrency limit that guards ``environment``'s writes."""
    return f"{LOCK_PREFIX}{environment}"


def holds_lock(environment: str) -> bool:
    """Whether the current run already holds ``environment``'s lock."""
    return environment in _held.get()


@contextmanager
def environment_lock(
    environment: str,
    *,
    purpose: str,
    wait_seconds: float | None = None,
    lease_seconds: float | None = None,
) -> Iterator[None]:
    """Hold the write lock of ``environment`` for the duration of the ``with`` block.

    ``purpose`` says who is writing ("provision", "drift repair", "teardown"); it appears in the log
    lines, so that a person watching a waiting run knows what it waits for. Waits at most
    ``wait_seconds`` for the run that holds the lock, then raises :class:`LockUnavailable`.
    """
    log = _logger()
    if holds_lock(environment):
        yield
        return

    name = lock_name(environment)
    ensure_lock_exists(environment)
    wait = DEFAULT_WAIT_SECONDS if wait_seconds is None else wait_seconds
    log.info("%s of %s: waiting for the environment's write lock %r", purpose, environment, name)
    try:
        with concurrency(
            name,
            occupy=1,
            timeout_seconds=wait,
            lease_duration=lease_seconds or DEFAULT_LEASE_SECONDS,
            # A limit that vanished between ensure_lock_exists and here must stop the writer,
            # never let it through unguarded.
            strict=True,
            holder=_holder(),
        ):
            log.info("%s of %s: holding the write lock %r", purpose, environment, name)
            token = _held.set(_held.get() | {environment})
            try:
                yield
            finally:
                _held.reset(token)
                log.info("%s of %s: releasing the write lock %r", purpose, environment, name)
    except TimeoutError:
        raise LockUnavailable(
            f"{purpose} of {environment}: another run has held the write lock {name!r} for more "
            f"than {wait:g} s; let it finish (see the flow runs of this environment in the Prefect "
            f"UI) or cancel it, then run again"
        ) from None


def ensure_lock_exists(environment: str) -> None:
    """Create the environment's one-slot limit if it does not exist; refuse a changed one.

    Someone may have raised the limit or switched it off in the UI; either would let two writers in,
    so the run stops with what to fix instead of writing unguarded.
    """
    name = lock_name(environment)
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
                return
            except ObjectAlreadyExists:
                # Another run created it a moment ago: use theirs.
                existing = client.read_global_concurrency_limit_by_name(name)
    if existing.limit != 1 or not existing.active:
        raise LockUnavailable(
            f"the write lock {name!r} must be an active global concurrency limit with exactly one "
            f"slot (it has limit {existing.limit}, active {existing.active}); restore it with "
            f"`prefect gcl update {name} --limit 1 --enable`"
        )


def _holder() -> ConcurrencyLeaseHolder | None:
    """The flow run that holds the lease, so the server (and UI) can show who holds the lock."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a flow or task, the module's logger elsewhere (tests, scripts)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return get_logger("aksmetrics.locks")
