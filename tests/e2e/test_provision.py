"""``provision`` against the sandbox, judged by the sandbox's request logs, not by the run's report.

From the runbook's start (``addon-only``) one run ends healthy; a plan run before it writes nothing
and lists exactly what the apply run then does; a second run and a plan on the now healthy
environment write nothing. From ``no-dcra`` a run writes only the association and the restart.
Transient errors (ARM 429, Kubernetes 409) are retried until the run converges; a permanent one
(403, 400) fails its step at once, naming the resource and the service's message.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dns.resolver
import pytest
import yaml
from e2e_support import arm_writes, kube_writes
from kubernetes import client as kube
from kubernetes import config as kube_config
from kubernetes.stream import stream
from prefect.states import State

from aksmetrics.changes import Change
from flows.provision import ProvisionFailed, provision

if TYPE_CHECKING:
    from conftest import RunningSandbox, SandboxFactory

pytestmark = pytest.mark.e2e

# A broken run should fail in seconds, not after the production deadlines.
for _name, _value in {
    "AKS_METRICS_HEALTHY_TIMEOUT": "60",
    "AKS_METRICS_ROLLOUT_TIMEOUT": "60",
    "AKS_METRICS_OPERATOR_TIMEOUT": "60",
    "AKS_METRICS_CRD_TIMEOUT": "30",
}.items():
    os.environ.setdefault(_name, _value)

ASSOCIATION = (
    "/providers/Microsoft.Insights/dataCollectionRuleAssociations/configurationAccessEndpoint"
)


@dataclass
class Run:
    """One provision run and the writes the sandbox saw during it."""

    state: State
    outcome: Any
    arm_writes: list[str]
    kube_writes: list[str]

    @property
    def changes(self) -> list[Change]:
        if isinstance(self.outcome, ProvisionFailed):
            return self.outcome.changes
        assert isinstance(self.outcome, list), f"unexpected outcome {self.outcome!r}"
        return self.outcome


def run_provision(sandbox: RunningSandbox, **parameters: Any) -> Run:
    sandbox.clear_requests()
    state = provision(environment=str(sandbox.environment), return_state=True, **parameters)
    return Run(
        state=state,
        outcome=state.result(raise_on_failure=False),
        arm_writes=arm_writes(sandbox),
        kube_writes=kube_writes(sandbox),
    )


def write_records(changes: list[Change]) -> set[tuple[str, str, str]]:
    return {
        (change.action, change.kind, change.resource_id.lower())
        for change in changes
        if change.is_write
    }


# -- from the runbook's start ------------------------------------------------------------------


@dataclass
class Journey:
    sandbox: RunningSandbox
    plan: Run
    apply: Run
    again: Run
    plan_when_healthy: Run


@pytest.fixture(scope="module")
def from_addon_only(sandbox_factory: SandboxFactory) -> Journey:
    """Plan, apply, apply again and plan again, from the runbook's start."""
    sandbox = sandbox_factory.start("addon-only")
    return Journey(
        sandbox=sandbox,
        plan=run_provision(sandbox, plan=True),
        apply=run_provision(sandbox),
        again=run_provision(sandbox),
        plan_when_healthy=run_provision(sandbox, plan=True),
    )


def test_a_plan_run_writes_nothing_and_lists_the_runbook(from_addon_only: Journey) -> None:
    plan = from_addon_only.plan

    assert plan.state.is_completed(), plan.outcome
    assert plan.arm_writes == [] and plan.kube_writes == []
    kinds = {change.kind for change in plan.changes if change.is_planned_write}
    assert {
        "private link scope",
        "private link scoped resource",
        "private endpoint",
        "DNS zone group",
        "private DNS zone",
        "virtual network link",
        "data collection rule association",
        "OpenTelemetryCollector",
        "PodMonitor",
        "CustomResourceDefinition",
        "Deployment",
    } <= kinds
    assert not any(change.is_write for change in plan.changes)


def test_one_run_from_addon_only_ends_healthy(from_addon_only: Journey) -> None:
    apply, sandbox = from_addon_only.apply, from_addon_only.sandbox

    assert apply.state.is_completed(), apply.outcome
    assert {"created", "restarted"} <= {change.action for change in apply.changes}

    # Judged without the project's code: the cluster's resolver and the agent's own files.
    environment = yaml.safe_load(sandbox.environment.read_text())
    host, port = environment["network"]["dns_resolver"].split(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [host], int(port)
    answer = resolver.resolve("global.handler.control.monitor.azure.com", "A")
    assert all(ipaddress.ip_address(record.address).is_private for record in answer)

    api = kube_config.new_client_from_config(str(sandbox.directory / "kubeconfig"))
    core = kube.CoreV1Api(api)
    pods = core.list_namespaced_pod("kube-system", label_selector="rsName=ama-metrics").items
    running = [pod for pod in pods if pod.status.phase == "Running"]
    assert running
    for pod in running:
        for command, expected in (
            (["cat", "/etc/mdsd.d/config-cache/metricsextension/TokenConfig.json"], None),
            (["ps"], "MetricsExtension"),
        ):
            session = stream(
                kube.CoreV1Api(
                    kube_config.new_client_from_config(str(sandbox.directory / "kubeconfig"))
                ).connect_get_namespaced_pod_exec,
                pod.metadata.name,
                "kube-system",
                command=command,
                container="prometheus-collector",
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            session.run_forever(timeout=10)
            output = session.read_stdout()
            assert session.returncode == 0, (command, session.read_stderr())
            if expected:
                assert expected in output


def test_the_plan_listed_exactly_what_the_apply_run_then_did(from_addon_only: Journey) -> None:
    plan, apply = from_addon_only.plan, from_addon_only.apply

    planned = {
        (change.applied().action, change.kind, change.resource_id.lower())
        for change in plan.changes
        if change.is_planned_write
    }

    assert planned == write_records(apply.changes)
    # And the apply run's report matches what the servers saw: one request per write.
    assert len(apply.arm_writes) == sum(
        1 for change in apply.changes if change.is_write and change.plane == "azure"
    )
    assert len(apply.kube_writes) == sum(
        1 for change in apply.changes if change.is_write and change.plane == "kubernetes"
    )


def test_a_second_run_on_a_healthy_environment_writes_nothing(from_addon_only: Journey) -> None:
    again = from_addon_only.again

    assert again.state.is_completed(), again.outcome
    assert again.arm_writes == [], again.arm_writes
    assert again.kube_writes == [], again.kube_writes
    assert {change.action for change in again.changes} == {"unchanged"}


def test_a_plan_on_a_healthy_environment_has_nothing_to_do(from_addon_only: Journey) -> None:
    plan = from_addon_only.plan_when_healthy

    assert plan.state.is_completed(), plan.outcome
    assert plan.arm_writes == [] and plan.kube_writes == []
    assert {change.action for change in plan.changes} == {"unchanged"}


# -- from the private-link 403 -----------------------------------------------------------------


def test_from_no_dcra_the_run_writes_only_the_association_and_the_restart(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("no-dcra")

    run = run_provision(sandbox)

    assert run.state.is_completed(), run.outcome
    assert len(run.arm_writes) == 1 and run.arm_writes[0].startswith("PUT ")
    assert run.arm_writes[0].endswith(ASSOCIATION)
    assert sorted(run.kube_writes) == [
        "PATCH /apis/apps/v1/namespaces/kube-system/daemonsets/ama-metrics-node",
        "PATCH /apis/apps/v1/namespaces/kube-system/deployments/ama-metrics",
    ]


# -- errors ------------------------------------------------------------------------------------


def test_transient_throttling_and_conflicts_are_retried_until_the_run_converges(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("no-dcra")
    # More 429s than azure-core retries inside one call, so the step itself is rerun; a 503 on a
    # read; and Kubernetes conflicts on the workload the restart patches.
    sandbox.add_fault(
        "arm",
        {
            "match": "dataCollectionRuleAssociations/configurationAccessEndpoint$",
            "method": "PUT",
            "status": 429,
            "count": 4,
        },
    )
    sandbox.add_fault(
        "arm",
        {
            "match": "privateEndpoints/pe-ampls-rubicon-krc-01$",
            "method": "GET",
            "status": 503,
            "count": 2,
        },
    )
    sandbox.add_fault("kube", {"match": "/deployments/ama-metrics$", "status": 409, "count": 2})

    run = run_provision(sandbox)
    arm_log, kube_log = sandbox.requests("arm"), sandbox.requests("kube")

    assert run.state.is_completed(), run.outcome
    association_puts = [
        e["status"] for e in arm_log if e["method"] == "PUT" and e["path"].endswith(ASSOCIATION)
    ]
    assert association_puts == [429, 429, 429, 429, 201]
    assert [
        e["status"]
        for e in arm_log
        if e["path"].endswith("privateEndpoints/pe-ampls-rubicon-krc-01")
    ][:3] == [503, 503, 200]
    assert sum(1 for e in kube_log if e["status"] == 409) == 2
    assert len(run.arm_writes) == 1, "a retried write is still one write"
    assert {change.action for change in run.changes} >= {"created", "restarted"}


@pytest.fixture(scope="module")
def untouched_no_dcra(sandbox_factory: SandboxFactory) -> RunningSandbox:
    """A no-dcra sandbox that only failing runs touch (they write nothing)."""
    return sandbox_factory.start("no-dcra")


@pytest.mark.parametrize("status", [403, 400])
def test_a_permanent_error_fails_the_step_at_once_naming_the_resource(
    untouched_no_dcra: RunningSandbox, status: int
) -> None:
    sandbox = untouched_no_dcra
    sandbox.clear_faults("arm")
    sandbox.add_fault(
        "arm",
        {
            "match": "dataCollectionRuleAssociations/configurationAccessEndpoint$",
            "method": "PUT",
            "status": status,
            "count": 1,
        },
    )

    run = run_provision(sandbox)

    assert run.state.is_failed()
    assert isinstance(run.outcome, ProvisionFailed)
    message = str(run.outcome)
    assert "configurationAccessEndpoint" in message and f"{status}" in message
    assert "The sandbox injected this failure." in message, "the service's own message is kept"
    puts = [e for e in sandbox.requests("arm") if e["method"] == "PUT"]
    assert [e["status"] for e in puts] == [status], "a permanent error is not retried"
    assert run.kube_writes == [], "a failed Azure step must not be followed by the restart"


def test_preflight_names_what_is_missing_and_writes_nothing(
    untouched_no_dcra: RunningSandbox, tmp_path: Path
) -> None:
    sandbox = untouched_no_dcra
    sandbox.clear_faults("arm")
    environment = yaml.safe_load(sandbox.environment.read_text())
    environment["data_collection_endpoints"]["configuration"]["name"] = "dce-that-does-not-exist"
    environment["network"]["private_endpoint_subnet"] = "no-such-subnet"
    broken = tmp_path / "environment.yaml"
    broken.write_text(yaml.safe_dump(environment))

    sandbox.clear_requests()
    state = provision(environment=str(broken), return_state=True)
    outcome = state.result(raise_on_failure=False)

    assert state.is_failed() and isinstance(outcome, ProvisionFailed)
    message = str(outcome)
    assert "preflight" in message
    assert (
        "dataCollectionEndpoints/dce-that-does-not-exist: the configuration data collection "
        "endpoint does not exist" in message
    )
    assert "subnets/no-such-subnet: the subnet does not exist" in message
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []


def test_from_port_mismatch_the_run_rewrites_only_the_pod_monitor(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("port-mismatch")

    run = run_provision(sandbox)

    assert run.state.is_completed(), run.outcome
    assert run.arm_writes == []
    assert run.kube_writes == [
        "PATCH /apis/azmonitoring.coreos.com/v1/namespaces/opentelemetry-operator-system"
        "/podmonitors/otel-collector-metrics"
    ]
    [updated] = [change for change in run.changes if change.is_write]
    assert [(field.path, field.actual, field.desired) for field in updated.fields] == [
        ("spec.podMetricsEndpoints[0].port", "prometheus-dev", "prometheus")
    ]
