"""``teardown`` against the sandbox: only the project's objects go, in reverse order, after a
confirmation; judged by the sandbox's request logs and by reading the objects back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.privatedns import PrivateDnsManagementClient
from e2e_support import arm_client, arm_writes, kube_writes, run_kubectl
from prefect.states import State

from aksmetrics.changes import Change
from flows.teardown import teardown

if TYPE_CHECKING:
    from conftest import RunningSandbox, SandboxFactory

pytestmark = pytest.mark.e2e

BLOB_ZONE = "privatelink.blob.core.windows.net"


def method_and_path(writes: list[str]) -> list[tuple[str, str]]:
    """``"METHOD path"`` writes (:func:`e2e_support.arm_writes`, ``kube_writes``) as pairs."""
    return [(method, path) for method, path in (write.split(" ", 1) for write in writes)]


def run(sandbox: RunningSandbox, **parameters: object) -> tuple[State, list[Change]]:
    sandbox.clear_requests()
    state = teardown(environment=str(sandbox.environment), return_state=True, **parameters)
    changes = state.result(raise_on_failure=False)
    assert isinstance(changes, list), f"{state.type}: {state.message} ({changes!r})"
    return state, changes


def first_index(writes: list[tuple[str, str]], method: str, ending: str) -> int:
    """Where the first ``method`` of a path ending with ``ending`` is in ``writes``."""
    for index, (verb, path) in enumerate(writes):
        if verb == method and path.lower().rstrip("/").endswith(ending.lower()):
            return index
    raise AssertionError(f"no {method} of …{ending} in {writes}")


@pytest.fixture(scope="module")
def healthy(sandbox_factory: SandboxFactory) -> RunningSandbox:
    """A healthy environment that the read-only runs of this module share."""
    return sandbox_factory.start("healthy")


def test_a_plan_lists_the_projects_objects_and_writes_nothing(healthy: RunningSandbox) -> None:
    state, changes = run(healthy, plan=True)

    assert state.is_completed(), state.message
    assert arm_writes(healthy) == [] and kube_writes(healthy) == []
    doomed = {change.kind for change in changes if change.action == "would delete"}
    assert {
        "data collection rule association",
        "private endpoint",
        "DNS zone group",
        "private DNS zone",
        "virtual network link",
        "private link scoped resource",
        "private link scope",
        "PodMonitor",
        "OpenTelemetryCollector",
        "CustomResourceDefinition",
        "Namespace",
    } <= doomed
    # What the add-on and the workspace made stays: rules, endpoints, ama-metrics.
    assert "data collection rule" not in doomed and "data collection endpoint" not in doomed
    assert not any(
        "kube-system" in change.resource_id for change in changes if change.action == "would delete"
    )


def test_without_the_environments_name_as_confirmation_nothing_is_deleted(
    healthy: RunningSandbox,
) -> None:
    state, changes = run(healthy, confirm="yes")

    assert state.is_failed()
    assert "rubicon-krc-01" in (state.message or "")
    assert arm_writes(healthy) == [] and kube_writes(healthy) == []
    assert any(change.action == "would delete" for change in changes)


def test_a_confirmed_teardown_removes_the_projects_objects_in_reverse_order(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("healthy")

    state, _ = run(sandbox, confirm="rubicon-krc-01")

    assert state.is_completed(), state.message
    arm = method_and_path(arm_writes(sandbox))
    assert {method for method, _ in arm} == {"DELETE"}, arm
    # Reverse dependency order on the Azure plane.
    association = first_index(arm, "DELETE", "configurationAccessEndpoint")
    zone_group = first_index(arm, "DELETE", "/privateDnsZoneGroups/default")
    endpoint = first_index(arm, "DELETE", "/privateEndpoints/pe-ampls-rubicon-krc-01")
    zone = first_index(arm, "DELETE", "/privateDnsZones/privatelink.monitor.azure.com")
    link = first_index(
        arm,
        "DELETE",
        "/privateDnsZones/privatelink.monitor.azure.com/virtualNetworkLinks/"
        "vnet-rubicon-koreacentral-01",
    )
    scoped = first_index(
        arm, "DELETE", "/scopedResources/MSProm-koreacentral-aks-rubicon-koreacentral"
    )
    scope = first_index(arm, "DELETE", "/privateLinkScopes/ampls-rubicon-krc-01")
    assert association < endpoint and zone_group < endpoint
    assert endpoint < link < zone
    assert endpoint < scoped < scope
    # Nothing of the add-on's or the workspace's was written.
    assert not any("dataCollectionRules/" in p or "dataCollectionEndpoints/" in p for _, p in arm)

    kube = method_and_path(kube_writes(sandbox))
    pod_monitor = first_index(kube, "DELETE", "/podmonitors/otel-collector-metrics")
    collector = first_index(kube, "DELETE", "/opentelemetrycollectors/otel-collector")
    operator = first_index(kube, "DELETE", "/deployments/opentelemetry-operator-controller-manager")
    crd = first_index(
        kube, "DELETE", "/customresourcedefinitions/opentelemetrycollectors.opentelemetry.io"
    )
    namespace = first_index(kube, "DELETE", "/namespaces/opentelemetry-operator-system")
    assert pod_monitor < collector < operator < crd < namespace
    # In kube-system only the restart of ama-metrics, which stays.
    assert all(
        method == "PATCH" and "ama-metrics" in path
        for method, path in kube
        if "/namespaces/kube-system/" in path
    )
    ama_metrics = run_kubectl(
        sandbox, "-n", "kube-system", "get", "deployment", "ama-metrics", check=False
    )
    assert ama_metrics.returncode == 0

    # The objects are gone when read back with a plain client.
    client, env = arm_client(sandbox, PrivateDnsManagementClient)
    with pytest.raises(ResourceNotFoundError):
        client.private_zones.get(env.private_dns.resource_group, "privatelink.monitor.azure.com")
    crds = run_kubectl(
        sandbox, "get", "crd", "opentelemetrycollectors.opentelemetry.io", check=False
    )
    assert crds.returncode != 0

    # A second teardown finds nothing to do and writes nothing.
    again, changes_again = run(sandbox, confirm="rubicon-krc-01")
    assert again.is_completed(), again.message
    assert arm_writes(sandbox) == [] and kube_writes(sandbox) == []
    assert not any(change.is_write for change in changes_again)


def test_a_zone_that_also_serves_other_private_endpoints_is_kept_with_its_link(
    sandbox_factory: SandboxFactory,
) -> None:
    sandbox = sandbox_factory.start("healthy")
    client, env = arm_client(sandbox, PrivateDnsManagementClient)
    group = env.private_dns.resource_group
    # Another team's storage account, reached through the same zone.
    client.record_sets.create_or_update(
        group,
        BLOB_ZONE,
        "A",
        "stteamdata",
        {"properties": {"ttl": 10, "aRecords": [{"ipv4Address": "10.2.0.40"}]}},
    )

    state, changes = run(sandbox, confirm="rubicon-krc-01")

    assert state.is_completed(), state.message
    (kept,) = [c for c in changes if c.kind == "private DNS zone" and BLOB_ZONE in c.resource_id]
    assert kept.action == "refused" and "stteamdata" in kept.note
    assert client.private_zones.get(group, BLOB_ZONE) is not None
    links = list(client.virtual_network_links.list(group, BLOB_ZONE))
    assert links, "the link that lets the VNet resolve the other team's record was deleted"
    record = client.record_sets.get(group, BLOB_ZONE, "A", "stteamdata")
    assert record.a_records[0].ipv4_address == "10.2.0.40"
    # The zones only the project used are gone.
    with pytest.raises(ResourceNotFoundError):
        client.private_zones.get(group, "privatelink.monitor.azure.com")
