"""Data collection endpoints, rules and associations, judged by azure-mgmt-monitor 7 (2023-03-11).

Facts relied on: DCE and DCR PUTs are synchronous (200/201) and a DCR PUT replaces the whole rule
(spec stable/2023-03-11 dataCollectionRules_API.json); a DCE reports ``configurationAccess``,
``logsIngestion`` and ``metricsIngestion`` endpoints ``https://<name>-<4ch>.<region>-1.…``
(spec stable/2024-03-11 examples/DataCollectionEndpointsCreate.json) and
``privateLinkScopedResources``;
the ``configurationAccessEndpoint`` association carries only ``dataCollectionEndpointId``
(spec examples/DataCollectionRuleAssociationsCreateA.json, research/azure.md §1.4).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

if TYPE_CHECKING:
    from conftest import RunningAzure


def monitor_client(azure: RunningAzure, **overrides: object) -> MonitorManagementClient:
    return MonitorManagementClient(
        azure.credential(), azure.environment.subscription_id, **azure.client_kwargs(**overrides)
    )


def test_dce_create_read_update_list_delete(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox)
    created = monitor.data_collection_endpoints.create(
        env.resource_group,
        "MSProm-PL-koreacentral-test",
        {
            "location": "koreacentral",
            "properties": {"networkAcls": {"publicNetworkAccess": "Enabled"}},
        },
    )
    host = re.compile(
        r"^https://msprom-pl-koreacentral-test-[a-z0-9]{4}\.koreacentral-1\."
        r"(handler\.control|ingest|metrics\.ingest)\.monitor\.azure\.com$"
    )
    assert host.match(created.configuration_access.endpoint)
    assert host.match(created.logs_ingestion.endpoint)
    assert host.match(created.metrics_ingestion.endpoint)
    assert created.immutable_id.startswith("dce-")
    assert created.provisioning_state == "Succeeded"

    again = monitor.data_collection_endpoints.create(
        env.resource_group,
        "MSProm-PL-koreacentral-test",
        {"location": "koreacentral", "tags": {"team": "platform"}},
    )
    # Same resource: the generated parts stay, the etag moves on every write.
    assert again.immutable_id == created.immutable_id
    assert again.configuration_access.endpoint == created.configuration_access.endpoint
    assert again.etag != created.etag
    assert again.tags == {"team": "platform"}

    names = {
        d.name for d in monitor.data_collection_endpoints.list_by_resource_group(env.resource_group)
    }
    assert {"MSProm-PL-koreacentral-test", env.configuration_dce} <= names
    everywhere = {d.name for d in monitor.data_collection_endpoints.list_by_subscription()}
    assert env.workspace in everywhere  # the workspace's managed DCE, in the MA_… group

    monitor.data_collection_endpoints.delete(env.resource_group, "MSProm-PL-koreacentral-test")
    with pytest.raises(ResourceNotFoundError) as caught:
        monitor.data_collection_endpoints.get(env.resource_group, "MSProm-PL-koreacentral-test")
    assert caught.value.error.code == "ResourceNotFound"


def test_dce_without_location_is_refused_with_400(azure_sandbox: RunningAzure) -> None:
    monitor = monitor_client(azure_sandbox, retry_total=0)
    with pytest.raises(HttpResponseError) as caught:
        monitor.data_collection_endpoints.create(azure_sandbox.environment.resource_group, "x", {})
    assert caught.value.status_code == 400


def test_dcr_put_replaces_the_whole_rule_and_links_its_dce(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox)
    rule = monitor.data_collection_rules.get(env.resource_group, env.prometheus_dcr)
    assert rule.data_collection_endpoint_id.lower() == env.configuration_dce_id.lower()
    immutable = rule.immutable_id

    replaced = monitor.data_collection_rules.create(
        env.resource_group,
        env.prometheus_dcr,
        {"location": "koreacentral", "kind": "Linux", "properties": {"description": "bare"}},
    )
    # A PUT is the whole rule: what it does not carry is gone, the immutable id stays.
    assert replaced.data_collection_endpoint_id is None
    assert replaced.data_sources is None
    assert replaced.immutable_id == immutable

    relinked = monitor.data_collection_rules.create(
        env.resource_group,
        env.prometheus_dcr,
        {
            "location": "koreacentral",
            "properties": {"dataCollectionEndpointId": env.configuration_dce_id},
        },
    )
    assert relinked.data_collection_endpoint_id.lower() == env.configuration_dce_id.lower()
    names = {
        r.name
        for r in monitor.data_collection_rules.list_by_resource_group(env.managed_resource_group)
    }
    assert names == {env.workspace}


def test_dcr_naming_a_missing_dce_is_refused_with_400(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox, retry_total=0)
    with pytest.raises(HttpResponseError) as caught:
        monitor.data_collection_rules.create(
            env.resource_group,
            "rule",
            {
                "location": "koreacentral",
                "properties": {"dataCollectionEndpointId": env.configuration_dce_id + "-missing"},
            },
        )
    assert caught.value.status_code == 400
    assert "was not found" in caught.value.error.message


def test_configuration_access_endpoint_association_is_created_read_and_listed(
    azure_sandbox: RunningAzure,
) -> None:
    """The runbook's section 3.6 with the SDK the project uses (DCRA on the managed cluster)."""
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox)
    created = monitor.data_collection_rule_associations.create(
        env.cluster_id,
        "configurationAccessEndpoint",
        {"properties": {"dataCollectionEndpointId": env.configuration_dce_id}},
    )
    assert created.type == "Microsoft.Insights/dataCollectionRuleAssociations"
    assert created.id.lower() == env.association_id("configurationAccessEndpoint").lower()
    assert created.data_collection_rule_id is None

    # Association names are case-insensitive.
    read = monitor.data_collection_rule_associations.get(
        env.cluster_id, "CONFIGURATIONACCESSENDPOINT"
    )
    assert read.data_collection_endpoint_id.lower() == env.configuration_dce_id.lower()

    listed = {
        a.name: (a.data_collection_rule_id, a.data_collection_endpoint_id)
        for a in monitor.data_collection_rule_associations.list_by_resource(env.cluster_id)
    }
    assert set(listed) == {
        "ContainerInsightsExtension",
        "ContainerInsightsMetricsExtension",
        "configurationAccessEndpoint",
    }
    assert listed["configurationAccessEndpoint"][0] is None
    by_endpoint = monitor.data_collection_rule_associations.list_by_data_collection_endpoint(
        env.resource_group, env.configuration_dce
    )
    assert [a.name for a in by_endpoint] == ["configurationAccessEndpoint"]
    by_rule = monitor.data_collection_rule_associations.list_by_rule(
        env.resource_group, env.prometheus_dcr
    )
    assert [a.name for a in by_rule] == ["ContainerInsightsMetricsExtension"]
    assert (
        azure_sandbox.state.associations_of(env.cluster_id)[0]["name"]
        == "configurationAccessEndpoint"
    )

    monitor.data_collection_rule_associations.delete(env.cluster_id, "configurationAccessEndpoint")
    with pytest.raises(ResourceNotFoundError):
        monitor.data_collection_rule_associations.get(env.cluster_id, "configurationAccessEndpoint")


def test_configuration_access_endpoint_carrying_a_rule_id_is_refused_with_400(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox, retry_total=0)
    with pytest.raises(HttpResponseError) as caught:
        monitor.data_collection_rule_associations.create(
            env.cluster_id,
            "configurationAccessEndpoint",
            {
                "properties": {
                    "dataCollectionEndpointId": env.configuration_dce_id,
                    "dataCollectionRuleId": env.prometheus_dcr_id,
                }
            },
        )
    assert caught.value.status_code == 400
    assert caught.value.error.code == "InvalidPayload"


def test_an_ordinary_association_must_name_a_rule_and_not_an_endpoint(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox, retry_total=0)
    for properties in ({}, {"dataCollectionEndpointId": env.configuration_dce_id}):
        with pytest.raises(HttpResponseError) as caught:
            monitor.data_collection_rule_associations.create(
                env.cluster_id, "myAssociation", {"properties": properties}
            )
        assert caught.value.status_code == 400


def test_association_on_a_missing_resource_is_404(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox, retry_total=0)
    with pytest.raises(ResourceNotFoundError):
        monitor.data_collection_rule_associations.create(
            env.cluster_id + "-gone",
            "configurationAccessEndpoint",
            {"properties": {"dataCollectionEndpointId": env.configuration_dce_id}},
        )


def test_deleting_a_dce_held_by_an_ampls_is_refused_with_409(azure_sandbox: RunningAzure) -> None:
    """Docs private-link-configure.md: a resource in an AMPLS is disconnected before deletion."""
    env = azure_sandbox.environment
    resources = ResourceManagementClient(
        azure_sandbox.credential(), env.subscription_id, **azure_sandbox.client_kwargs()
    )
    resources.resources.begin_create_or_update_by_id(
        env.private_link_scope_id,
        api_version="2021-07-01-preview",
        parameters={
            "location": "global",
            "properties": {
                "accessModeSettings": {"ingestionAccessMode": "Open", "queryAccessMode": "Open"}
            },
        },
    ).result()
    resources.resources.begin_create_or_update_by_id(
        f"{env.private_link_scope_id}/scopedResources/{env.configuration_dce}",
        api_version="2021-07-01-preview",
        parameters={"properties": {"linkedResourceId": env.configuration_dce_id}},
    ).result()

    monitor = monitor_client(azure_sandbox, retry_total=0)
    dce = monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    assert [s.resource_id.rsplit("/", 1)[1] for s in dce.private_link_scoped_resources] == [
        env.configuration_dce
    ]
    with pytest.raises(ResourceExistsError) as caught:
        monitor.data_collection_endpoints.delete(env.resource_group, env.configuration_dce)
    assert caught.value.status_code == 409


def test_workspace_reports_its_ingestion_settings_and_a_query_endpoint_on_the_sandbox(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    workspace = monitor_client(azure_sandbox).azure_monitor_workspaces.get(
        env.resource_group, env.workspace
    )
    settings = workspace.default_ingestion_settings
    assert settings.data_collection_endpoint_resource_id.lower() == env.ingestion_dce_id.lower()
    assert settings.data_collection_rule_resource_id.lower() == env.workspace_dcr_id.lower()
    assert workspace.metrics.prometheus_query_endpoint == (
        f"{azure_sandbox.arm_url}/prometheus/{env.workspace}"
    )


def test_dce_patch_changes_tags_only(azure_sandbox: RunningAzure) -> None:
    """DCE PATCH (ResourceForUpdate) carries tags and identity, never properties."""
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox)
    before = monitor.data_collection_endpoints.get(env.resource_group, env.configuration_dce)
    after = monitor.data_collection_endpoints.update(
        env.resource_group, env.configuration_dce, {"tags": {"owner": "platform"}}
    )
    assert after.tags == {"owner": "platform"}
    assert after.configuration_access.endpoint == before.configuration_access.endpoint
    assert after.etag != before.etag


def test_deleting_a_rule_with_delete_associations_removes_its_associations(
    azure_sandbox: RunningAzure,
) -> None:
    """2023-03-11 added ``deleteAssociations`` to the DCR DELETE."""
    env = azure_sandbox.environment
    monitor = monitor_client(azure_sandbox)
    monitor.data_collection_rules.delete(
        env.resource_group, env.container_insights_dcr, delete_associations=True
    )
    names = {
        a.name for a in monitor.data_collection_rule_associations.list_by_resource(env.cluster_id)
    }
    assert names == {"ContainerInsightsMetricsExtension"}
