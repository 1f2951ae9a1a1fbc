"""``drift-check`` against the sandbox: what it finds, what each policy writes, judged by the
sandbox's request logs.

Drift is made the way it happens in real life, from outside the project: the association deleted
with the Azure SDK, the PodMonitor edited or replaced with ``kubectl``. The canary is left out of
these runs (``canary=False``): with the PodMonitor broken it would wait out its deadline.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from e2e_support import (
    arm_writes,
    association_exists,
    delete_association,
    kube_writes,
    kubectl,
    pod_monitor_port,
    set_pod_monitor_port,
)
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.flow_runs import resume_flow_run
from prefect.states import State

from aksmetrics.drift import DriftReport
from flows.drift_check import DRIFT_DETECTED, drift_check

if TYPE_CHECKING:
    from conftest import RunningSandbox, SandboxFactory

pytestmark = pytest.mark.e2e

ASSOCIATION = "dataCollectionRuleAssociations/configurationAccessEndpoint"
POD_MONITOR_PATH = "/podmonitors/otel-collector-metrics"


# -- helpers -------------------------------------------------------------------------------------


def check(sandbox: RunningSandbox, **parameters: Any) -> tuple[State, DriftReport]:
    """One drift check with the request logs cleared before it."""
    sandbox.clear_requests()
    state = drift_check(
        environment=str(sandbox.environment), canary=False, return_state=True, **parameters
    )
    found = state.result(raise_on_failure=False)
    assert isinstance(found, DriftReport), f"{state.type}: {state.message} ({found!r})"
    return state, found


def drift_events(environment: str) -> list[Any]:
    """The ``aks-metrics.drift.detected`` events about ``environment`` the server has stored."""
    event_filter = EventFilter(
        event=EventNameFilter(name=[DRIFT_DETECTED]),
        resource=EventResourceFilter(id=[f"aks-metrics.environment.{environment}"]),
    )
    with get_client(sync_client=True) as client:
        return list(client.read_events(filter=event_filter, limit=50).events)


# -- report ---------------------------------------------------------------------------------------


def test_a_healthy_environment_has_no_drift_and_a_check_writes_nothing(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("healthy")

    state, found = check(sandbox, policy="safe")

    assert state.is_completed(), state.message
    assert not found.drifted
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []


def test_a_report_names_the_podmonitor_port_and_emits_an_event_without_writing(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("port-mismatch")
    before = {event.id for event in drift_events("rubicon-krc-01")}

    state, found = check(sandbox, policy="report")

    assert state.is_failed()
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []
    (item,) = [item for item in found.objects if item.kind == "PodMonitor"]
    assert item.action == "would update"
    assert [(f.path, f.actual, f.desired) for f in item.fields] == [
        ("spec.podMetricsEndpoints[0].port", "prometheus-dev", "prometheus")
    ]
    assert "pod_monitor_ports" in {check.resource_id for check in found.checks}
    assert "pod-monitor" in found.repair_steps()

    # The event reaches the server with the drifted object in its payload.
    deadline = time.monotonic() + 20
    new: list[Any] = []
    while time.monotonic() < deadline and not new:
        new = [e for e in drift_events("rubicon-krc-01") if e.id not in before]
        time.sleep(0.5)
    assert new, "no aks-metrics.drift.detected event reached the server"
    payload = new[0].payload
    assert payload["policy"] == "report"
    assert any(
        o["kind"] == "PodMonitor" and o["fields"] == ["spec.podMetricsEndpoints[0].port"]
        for o in payload["objects"]
    )


# -- safe -----------------------------------------------------------------------------------------


def test_a_safe_check_repairs_the_deleted_association_and_the_changed_port_and_only_them(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("healthy")
    delete_association(sandbox)
    set_pod_monitor_port(sandbox, "prometheus-dev")

    state, found = check(sandbox, policy="safe")

    assert state.is_completed(), state.message
    assert {(item.kind, item.action) for item in found.objects} == {
        ("data collection rule association", "would create"),
        ("PodMonitor", "would update"),
    }
    # Azure: the association and nothing else. Kubernetes: the PodMonitor and the restart.
    assert [write.split(" ")[0] for write in arm_writes(sandbox)] == ["PUT"]
    assert arm_writes(sandbox)[0].endswith(ASSOCIATION)
    written = kube_writes(sandbox)
    assert any(write.endswith(POD_MONITOR_PATH) for write in written)
    others = [w for w in written if not w.endswith(POD_MONITOR_PATH)]
    assert others and all("/namespaces/kube-system/" in w and "ama-metrics" in w for w in others)
    assert association_exists(sandbox)
    assert pod_monitor_port(sandbox) == "prometheus"

    # Repaired for good: the next check finds nothing and writes nothing.
    again, found_again = check(sandbox, policy="safe")
    assert again.is_completed() and not found_again.drifted
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []


def test_an_object_the_project_does_not_own_is_reported_and_left_alone(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("healthy")
    delete_association(sandbox)
    # Someone replaced the PodMonitor with their own, without the project's label.
    kubectl(sandbox, "-n", "opentelemetry-operator-system", "delete", "podmonitor", "--all")
    kubectl(sandbox, "create", "-f", "-", stdin=FOREIGN_POD_MONITOR)

    state, found = check(sandbox, policy="safe")

    assert state.is_failed()
    (item,) = [item for item in found.objects if item.kind == "PodMonitor"]
    assert item.action == "refused" and not item.repairable
    assert [item.kind for item in found.left_for_a_person()] == ["PodMonitor"]
    assert "left for a person" in (state.message or "")
    # The association was still repaired; the foreign PodMonitor was not touched.
    assert association_exists(sandbox)
    assert not any(write.endswith(POD_MONITOR_PATH) for write in kube_writes(sandbox))
    assert pod_monitor_port(sandbox) == "prometheus-dev"


FOREIGN_POD_MONITOR = """
apiVersion: azmonitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: otel-collector-metrics
  namespace: opentelemetry-operator-system
spec:
  selector:
    matchLabels:
      app.kubernetes.io/component: opentelemetry-collector
  podMetricsEndpoints:
    - port: prometheus-dev
      path: /metrics
      interval: 30s
"""


# -- ask ------------------------------------------------------------------------------------------


def run_ask_in_background(
    sandbox: RunningSandbox, results: list[State]
) -> tuple[threading.Thread, str]:
    name = f"ask-{uuid.uuid4().hex[:8]}"
    flow = drift_check.with_options(flow_run_name=name)

    def run() -> None:
        results.append(
            flow(
                environment=str(sandbox.environment),
                policy="ask",
                canary=False,
                approval_timeout_seconds=120,
                return_state=True,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, name


def wait_until_paused(name: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
            )
            if runs and runs[0].state and runs[0].state.is_paused():
                return runs[0]
            time.sleep(0.5)
    raise AssertionError(f"flow run {name} never paused for approval")


def test_ask_writes_nothing_until_a_person_approves_in_the_ui(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("healthy")
    delete_association(sandbox)

    # Refused: the run ends Failed and nothing was written.
    sandbox.clear_requests()
    results: list[State] = []
    thread, name = run_ask_in_background(sandbox, results)
    paused = wait_until_paused(name)
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []
    resume_flow_run(paused.id, run_input={"approve": False, "reason": "not now"})
    thread.join(timeout=60)
    assert results and results[0].is_failed()
    assert "not approved" in (results[0].message or "")
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []
    assert not association_exists(sandbox)

    # Approved: the same drift is repaired.
    results.clear()
    thread, name = run_ask_in_background(sandbox, results)
    paused = wait_until_paused(name)
    resume_flow_run(paused.id, run_input={"approve": True, "reason": "change 42"})
    thread.join(timeout=120)
    assert results and results[0].is_completed(), results and results[0].message
    assert association_exists(sandbox)
