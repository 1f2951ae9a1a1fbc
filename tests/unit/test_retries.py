"""What is retried, what fails at once, and how waits end."""

from __future__ import annotations

import pickle

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from kubernetes.client.exceptions import ApiException
from prefect.states import Failed

from tasks.retries import (
    Observation,
    StepFailed,
    WaitTimedOut,
    is_transient,
    poll,
    retry_on_transient,
    service_errors,
)


class FakeResponse:
    """Just enough of an azure-core response for HttpResponseError to read a status and body."""

    def __init__(self, status: int, body: str = "") -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self._body = body.encode()
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def body(self) -> bytes:
        return self._body


def arm_error(status: int, code: str = "Code", message: str = "the message") -> HttpResponseError:
    body = f'{{"error": {{"code": "{code}", "message": "{message}"}}}}'
    return HttpResponseError(response=FakeResponse(status, body))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_arm_throttling_and_server_errors_are_transient(status: int) -> None:
    assert is_transient(arm_error(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 412])
def test_arm_client_errors_are_permanent(status: int) -> None:
    assert not is_transient(arm_error(status))


def test_connection_errors_are_transient_but_a_refused_credential_is_not() -> None:
    assert is_transient(ServiceRequestError("connection reset"))
    assert is_transient(ConnectionResetError())
    assert not is_transient(ClientAuthenticationError("AADSTS7000215: invalid client secret"))


@pytest.mark.parametrize(
    ("status", "transient"),
    [(409, True), (429, True), (503, True), (0, True), (403, False), (422, False), (404, False)],
)
def test_kubernetes_conflicts_and_server_errors_are_transient(status: int, transient: bool) -> None:
    assert is_transient(ApiException(status=status)) is transient


def test_the_prefect_retry_condition_follows_the_error_in_the_state() -> None:
    assert retry_on_transient(None, None, Failed(data=arm_error(429)))
    assert not retry_on_transient(None, None, Failed(data=arm_error(400)))
    assert not retry_on_transient(None, None, Failed(data=StepFailed("/x", "no")))


def test_a_permanent_error_becomes_step_failed_with_id_code_message_and_advice() -> None:
    with (
        pytest.raises(StepFailed) as failed,
        service_errors("/subscriptions/s/x", doing="writing x"),
    ):
        raise arm_error(403, "AuthorizationFailed", "The client has no permission")

    text = str(failed.value)
    assert failed.value.status == 403 and failed.value.code == "AuthorizationFailed"
    assert text.startswith("/subscriptions/s/x: 403 AuthorizationFailed: writing x failed")
    assert "The client has no permission" in text and "grant" in text


def test_a_transient_error_passes_through_for_the_task_to_retry() -> None:
    with pytest.raises(HttpResponseError), service_errors("/x", doing="reading x"):
        raise arm_error(503)


def test_a_kubernetes_status_keeps_its_reason_and_message() -> None:
    error = ApiException(status=422, reason="Unprocessable Entity")
    error.body = '{"kind":"Status","reason":"Invalid","message":"spec.mode: Unsupported value"}'

    with pytest.raises(StepFailed) as failed, service_errors("v1/Pod/ns/p", doing="applying"):
        raise error

    assert failed.value.code == "Invalid" and "spec.mode: Unsupported value" in str(failed.value)


def test_step_failed_survives_pickling() -> None:
    error = StepFailed("/x", "message", code="C", status=400, hint="do this")

    copy = pickle.loads(pickle.dumps(error))

    assert str(copy) == str(error) and copy.hint == "do this"


def test_not_found_is_permanent() -> None:
    assert not is_transient(ResourceNotFoundError("gone"))


class Clock:
    """A fake clock that advances only when the poll sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_poll_backs_off_exponentially_up_to_the_maximum() -> None:
    clock = Clock()
    looks = iter([False] * 5 + [True])

    result = poll(
        lambda: Observation(next(looks), "not yet", 42),
        what="thing",
        timeout=100,
        initial_delay=1,
        max_delay=5,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )

    assert result.value == 42
    assert clock.sleeps == [1, 2, 4, 5, 5]


def test_poll_gives_up_at_the_deadline_saying_what_it_saw_last() -> None:
    clock = Clock()
    count = iter(range(100))

    with pytest.raises(WaitTimedOut) as timed_out:
        poll(
            lambda: Observation(False, f"look {next(count)}"),
            what="DNS to answer privately",
            timeout=10,
            initial_delay=1,
            max_delay=4,
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )

    assert clock.now == 10, "the last sleep is cut to the deadline"
    assert str(timed_out.value).startswith("DNS to answer privately: not reached within 10s")
    assert timed_out.value.last == "look 4", "looks at 0, 1, 3, 7 and at the deadline itself"


def test_poll_treats_a_transient_error_as_a_failed_look_and_a_permanent_one_as_the_end() -> None:
    clock = Clock()
    outcomes: list[object] = [arm_error(503), Observation(True, "ok")]

    def look() -> Observation[None]:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[return-value]

    assert poll(look, what="x", timeout=10, sleep=clock.sleep, clock=lambda: clock.now).done

    with pytest.raises(HttpResponseError):
        poll(
            lambda: (_ for _ in ()).throw(arm_error(400)),
            what="x",
            timeout=10,
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
