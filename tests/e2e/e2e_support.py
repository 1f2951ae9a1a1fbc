"""What several end-to-end test modules do to a sandbox, written once.

Two families:

- reading the request logs: which writes a run made, as the servers saw them;
- changing the environment from outside the project, the way an operator's script would: the Azure
  SDK on the sandbox's ARM endpoint, ``kubectl`` with the sandbox's kubeconfig.

Test modules import it as ``e2e_support`` (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import TypeVar

from azure.identity import ClientSecretCredential
from azure.mgmt.monitor import MonitorManagementClient

from aksmetrics.environment import Environment, load_environment
from sandbox.handle import RunningSandbox

# -- the request logs --------------------------------------------------------------------------

KUBERNETES_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def arm_writes(sandbox: RunningSandbox) -> list[str]:
    """Every answered (2xx) write to an ARM resource, as ``"METHOD path"``: any method but GET, on
    a path under ``/subscriptions/`` (so not the token endpoint). Polls are GETs, so not writes.

    Not :func:`sandbox.handle.writes`: that one keeps failed attempts and leaves out HEAD."""
    return [
        f"{entry['method']} {entry['path'].split('?')[0]}"
        for entry in sandbox.requests("arm")
        if entry["method"] != "GET"
        and entry["path"].lower().startswith("/subscriptions/")
        and 200 <= entry["status"] < 300
    ]


def kube_writes(sandbox: RunningSandbox) -> list[str]:
    """Every answered (2xx) Kubernetes write, as ``"METHOD path"`` without the query: the verbs
    that change objects (exec and the service proxy change none).

    Not :func:`sandbox.handle.writes`: that one goes by the HTTP method, not the verb, and keeps
    failed attempts."""
    return [
        f"{entry['method']} {entry['path'].split('?')[0]}"
        for entry in sandbox.requests("kube")
        if entry.get("verb") in KUBERNETES_WRITE_VERBS and 200 <= entry["status"] < 300
    ]


# -- Azure, through the SDK ----------------------------------------------------------------------

ASSOCIATION_NAME = "configurationAccessEndpoint"

ClientT = TypeVar("ClientT")


def arm_client(
    sandbox: RunningSandbox, client_class: Callable[..., ClientT]
) -> tuple[ClientT, Environment]:
    """A plain azure-mgmt client (``MonitorManagementClient``, ``PrivateDnsManagementClient``, …)
    on the sandbox, signed in with the environment's service principal, as an operator's script
    would make it; and the environment it was made from."""
    env = load_environment(sandbox.environment)
    assert env.auth.tenant_id and env.auth.client_id and env.auth.client_secret_file
    credential = ClientSecretCredential(
        env.auth.tenant_id,
        env.auth.client_id,
        env.auth.client_secret_file.read_text().strip(),
        authority=env.cloud.authority_host,
        disable_instance_discovery=True,
        connection_verify=str(sandbox.ca),
    )
    client = client_class(
        credential,
        env.subscription_id,
        base_url=env.cloud.arm_endpoint,
        credential_scopes=[env.cloud.resolved_credential_scope()],
        connection_verify=str(sandbox.ca),
    )
    return client, env


def delete_association(sandbox: RunningSandbox) -> None:
    """Delete the cluster's configurationAccessEndpoint association with azure-mgmt-monitor."""
    client, env = arm_client(sandbox, MonitorManagementClient)
    client.data_collection_rule_associations.delete(env.cluster_id, ASSOCIATION_NAME)


def association_exists(sandbox: RunningSandbox) -> bool:
    """Whether the cluster has its configurationAccessEndpoint association, read with the SDK."""
    client, env = arm_client(sandbox, MonitorManagementClient)
    names = [
        a.name for a in client.data_collection_rule_associations.list_by_resource(env.cluster_id)
    ]
    return ASSOCIATION_NAME in names


# -- Kubernetes, through kubectl -----------------------------------------------------------------

POD_MONITOR_NAMESPACE = "opentelemetry-operator-system"
POD_MONITOR_NAME = "otel-collector-metrics"


def run_kubectl(
    sandbox: RunningSandbox, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``kubectl --kubeconfig <the sandbox's> ARGS``; raises on a non-zero exit when ``check``."""
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(sandbox.directory / "kubeconfig"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )


def kubectl(sandbox: RunningSandbox, *args: str, stdin: str | None = None) -> str:
    """What ``kubectl ARGS`` printed; raises if it failed."""
    return run_kubectl(sandbox, *args, stdin=stdin, check=True).stdout


def set_pod_monitor_port(sandbox: RunningSandbox, port: str) -> None:
    """Change the PodMonitor's scraped port with ``kubectl patch``, as a person would."""
    patch = f'[{{"op":"replace","path":"/spec/podMetricsEndpoints/0/port","value":"{port}"}}]'
    kubectl(
        sandbox,
        "-n",
        POD_MONITOR_NAMESPACE,
        "patch",
        "podmonitor",
        POD_MONITOR_NAME,
        "--type=json",
        "-p",
        patch,
    )


def pod_monitor_port(sandbox: RunningSandbox) -> str:
    """The PodMonitor's scraped port, read back with ``kubectl get``."""
    return kubectl(
        sandbox,
        "-n",
        POD_MONITOR_NAMESPACE,
        "get",
        "podmonitor",
        POD_MONITOR_NAME,
        "-o",
        "jsonpath={.spec.podMetricsEndpoints[0].port}",
    )
