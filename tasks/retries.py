"""What is worth retrying, what is not, and how to wait for a condition.

Retries happen at two levels, on purpose:

1. **Inside one call.** azure-core's retry policy retries 408/429/5xx and connection errors
   itself, honouring ``Retry-After``; we keep its count small (``AKS_METRICS_ARM_RETRY_TOTAL``,
   default 3) so that a throttled call waits as ARM asks but a long outage does not hide inside
   one call.
2. **The whole step.** Every Prefect task that calls a service has ``retries`` with exponential
   backoff and :func:`retry_on_transient` as its ``retry_condition_fn``: a transient error left
   over from level 1 (or any Kubernetes 409/429/5xx, which the ``kubernetes`` client never
   retries) reruns the step. Steps are idempotent *ensures*, so rerunning one is safe.

A permanent error (400, 403 on our own call, 404 where the object must exist, validation) is turned
into :class:`StepFailed` by :func:`service_errors`, and :func:`retry_on_transient` never retries it:
the step fails at once, naming the resource, the service's code and message, and what to do.

:func:`poll` waits for a condition (a rollout finished, DNS answers a private IP, a file appears)
with exponential backoff and a deadline, and when time runs out says what it saw last.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Kubernetes answers 409 Conflict when an update raced another writer; rereading and retrying is the
# documented remedy. (A 409 AlreadyExists on create is not raced by our server-side applies.)
TRANSIENT_KUBERNETES_STATUSES = TRANSIENT_HTTP_STATUSES | {409}


class StepFailed(Exception):
    """A permanent failure of one step: retrying would not help, a person must act.

    Carries the resource the step was working on, the service's own error code and message, and a
    sentence saying what to do next.
    """

    def __init__(
        self,
        resource_id: str,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.resource_id = resource_id
        self.code = code
        self.status = status
        self.message = message
        self.hint = hint
        text = f"{resource_id}: "
        if status or code:
            text += f"{' '.join(str(part) for part in (status, code) if part)}: "
        text += message
        if hint:
            text += f" — {hint}"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: pickling (Prefect may persist a failed state) must rebuild them.
        return (
            _rebuild_step_failed,
            (self.resource_id, self.message, self.code, self.status, self.hint),
        )


def _rebuild_step_failed(
    resource_id: str, message: str, code: str | None, status: int | None, hint: str | None
) -> StepFailed:
    return StepFailed(resource_id, message, code=code, status=status, hint=hint)


class WaitTimedOut(Exception):
    """A condition did not come true before its deadline; the message says what was seen last."""

    def __init__(self, what: str, seconds: float, last: str) -> None:
        self.what = what
        self.seconds = seconds
        self.last = last
        super().__init__(f"{what}: not reached within {seconds:g}s; last observed: {last}")


def is_transient(error: BaseException) -> bool:
    """True for errors that may pass on their own: throttling, 5xx, timeouts, dropped connections,
    and Kubernetes update conflicts."""
    if isinstance(error, StepFailed | WaitTimedOut):
        return False
    if isinstance(error, ClientAuthenticationError):
        # A wrong secret stays wrong; the token endpoint's 5xx surface as ServiceRequestError.
        return False
    if isinstance(error, HttpResponseError):
        return error.status_code in TRANSIENT_HTTP_STATUSES
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        return True
    if isinstance(error, ApiException):
        # Status 0 is the client's own connection failure.
        return error.status in TRANSIENT_KUBERNETES_STATUSES or not error.status
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    return _is_connection_error(error)


def _is_connection_error(error: BaseException) -> bool:
    """Connection errors of urllib3 (under the kubernetes client) and websocket (exec)."""
    module = type(error).__module__
    if module.startswith("urllib3"):
        name = type(error).__name__
        return name in {
            "MaxRetryError",
            "ProtocolError",
            "NewConnectionError",
            "ReadTimeoutError",
            "ConnectTimeoutError",
        }
    if module.startswith("websocket"):
        return type(error).__name__ in {
            "WebSocketConnectionClosedException",
            "WebSocketTimeoutException",
            "WebSocketBadStatusException",
        }
    return False


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry the task only when it failed with a transient error."""
    error = getattr(state, "data", None)
    if not isinstance(error, BaseException):
        try:
            error = state.result(raise_on_failure=False)
        except Exception as raised:  # the state could not give its result back: judge that error
            error = raised
    return isinstance(error, BaseException) and is_transient(error)


def describe_error(error: BaseException) -> tuple[int | None, str | None, str]:
    """(HTTP status, the service's error code, its message) of an Azure or Kubernetes error."""
    if isinstance(error, HttpResponseError):
        code = getattr(error.error, "code", None) if error.error else None
        message = getattr(error.error, "message", None) if error.error else None
        return error.status_code, code, message or error.reason or str(error)
    if isinstance(error, ApiException):
        code, message = error.reason, None
        try:
            import json

            body = json.loads(error.body or "{}")
            code, message = body.get("reason") or code, body.get("message")
        except (ValueError, AttributeError):
            pass
        return error.status, code, message or str(error.reason)
    return None, type(error).__name__, str(error)


_HINTS = {
    400: "the request was refused as invalid; check the environment file's values for this object",
    401: "the credential was not accepted; check auth in the environment file",
    403: "the identity lacks a permission on this resource; grant it (e.g. Contributor on the "
    "resource group) or ask the owner",
    404: "the resource does not exist; create it or fix its name in the environment file",
    409: "the resource is in a conflicting state; read the message, fix it, and rerun",
    412: "the resource changed while we wrote it; rerun",
    422: "the object was refused as invalid; check the environment file's values for this object",
}


@contextlib.contextmanager
def service_errors(resource_id: str, *, doing: str, hint: str | None = None) -> Iterator[None]:
    """Turn a permanent service error raised inside the block into :class:`StepFailed`.

    Transient errors pass through unchanged, so that the task's retries handle them. ``doing`` says
    what the call was for ("reading the AMPLS"), ``hint`` overrides the default advice per status.
    """
    try:
        yield
    except (StepFailed, WaitTimedOut):
        raise
    except Exception as error:
        if is_transient(error):
            raise
        status, code, message = describe_error(error)
        raise StepFailed(
            resource_id,
            f"{doing} failed: {message}",
            code=code,
            status=status,
            hint=hint or _HINTS.get(status or 0),
        ) from error


@dataclass
class Observation(Generic[T]):
    """One look at a condition: whether it holds, what was seen (for the final message), a value."""

    done: bool
    detail: str
    value: T | None = None


def poll(
    check: Callable[[], Observation[T]],
    *,
    what: str,
    timeout: float,
    initial_delay: float = 0.5,
    max_delay: float = 10.0,
    factor: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Observation[T]:
    """Call ``check`` until it reports ``done``, waiting ``initial_delay`` then doubling up to
    ``max_delay`` between looks, for at most ``timeout`` seconds.

    A transient error inside ``check`` counts as one failed look (its text becomes the last
    observation); any other error ends the wait at once. On the deadline raises
    :class:`WaitTimedOut` with the last observation. The last wait is cut to the deadline, so a
    condition that comes true just before it is still seen.
    """
    deadline = clock() + timeout
    delay = initial_delay
    last = "nothing observed yet"
    while True:
        try:
            observation = check()
        except Exception as error:
            if not is_transient(error):
                raise
            last = f"{type(error).__name__}: {error}"
        else:
            if observation.done:
                return observation
            last = observation.detail
        remaining = deadline - clock()
        if remaining <= 0:
            raise WaitTimedOut(what, timeout, last)
        sleep(min(delay, remaining))
        delay = min(delay * factor, max_delay)
