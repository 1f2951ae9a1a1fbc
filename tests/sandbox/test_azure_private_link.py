"""AMPLS, private endpoint, DNS zone group, private DNS and per-VNet DNS, judged by real clients.

Facts relied on:
- AMPLS (``Microsoft.Insights/privateLinkScopes``, 2021-07-01-preview) is written by id through
  azure-mgmt-resource; ``accessModeSettings`` is required; ``scopedResources`` PUT/DELETE are
  long-running with ``Azure-AsyncOperation`` on ``privateLinkScopeOperationStatuses``
  (spec preview/2021-07-01-preview examples/PrivateLinkScopedResourceUpdate.json,
  privateLinkScopeOperationStatuses.json).
- Private endpoints and zone groups are long-running PUTs (201 + Azure-AsyncOperation) that report
  ``customDnsConfigs`` and ``recordSets`` (network stable/2024-05-01
  examples/PrivateEndpointCreate.json, PrivateEndpointDnsZoneGroupCreate.json).
- Private DNS zones and links answer 202 with ``Azure-AsyncOperation`` and ``Location``; links
  report ``virtualNetworkLinkState: Completed``; record sets honour If-Match / If-None-Match
  (privatedns stable/2024-06-01 examples/PrivateZonePut.json, VirtualNetworkLinkPut.json,
  RecordSetAPut.json).
- The zone group writes A records for the AMPLS's members (research/azure.md §0.4).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dns.resolver
import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

if TYPE_CHECKING:
    from conftest import RunningAzure

AMPLS_API = "2021-07-01-preview"
MONITOR_ZONE = "privatelink.monitor.azure.com"
GLOBAL_HANDLER = "global.handler.control.monitor.azure.com"


class Clients:
    """The four SDK clients the project uses, pointed at one sandbox."""

    def __init__(self, azure: RunningAzure, **overrides: Any) -> None:
        credential = azure.credential()
        subscription = azure.environment.subscription_id
        kwargs = azure.client_kwargs(**overrides)
        self.resources = ResourceManagementClient(credential, subscription, **kwargs).resources
        self.network = NetworkManagementClient(credential, subscription, **kwargs)
        self.dns = PrivateDnsManagementClient(credential, subscription, **kwargs)


def resolver_for(azure: RunningAzure, vnet_id: str) -> dns.resolver.Resolver:
    host, port = azure.sandbox.dns_address_of(vnet_id)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.lifetime = 2.0
    return resolver


def a_records(resolver: dns.resolver.Resolver, name: str) -> list[str]:
    return sorted(r.to_text() for r in resolver.resolve(name, "A"))


def create_scope(clients: Clients, azure: RunningAzure, *dce_ids: str) -> None:
    env = azure.environment
    clients.resources.begin_create_or_update_by_id(
        env.private_link_scope_id,
        api_version=AMPLS_API,
        parameters={
            "location": "global",
            "tags": {"managed-by": "aks-metrics-pipeline"},
            "properties": {
                "accessModeSettings": {"ingestionAccessMode": "Open", "queryAccessMode": "Open"}
            },
        },
    ).result()
    for dce_id in dce_ids:
        clients.resources.begin_create_or_update_by_id(
            f"{env.private_link_scope_id}/scopedResources/{dce_id.rsplit('/', 1)[1]}",
            api_version=AMPLS_API,
            parameters={"properties": {"linkedResourceId": dce_id}},
        ).result()


def create_endpoint_and_dns(clients: Clients, azure: RunningAzure, *, link: bool = True) -> None:
    env = azure.environment
    for zone in env.zones:
        clients.dns.private_zones.begin_create_or_update(
            env.resource_group, zone, {"location": "global"}
        ).result()
        if link:
            clients.dns.virtual_network_links.begin_create_or_update(
                env.resource_group,
                zone,
                env.vnet,
                {
                    "location": "global",
                    "properties": {
                        "virtualNetwork": {"id": env.vnet_id},
                        "registrationEnabled": False,
                    },
                },
            ).result()
    clients.network.private_endpoints.begin_create_or_update(
        env.resource_group,
        env.private_endpoint,
        {
            "location": env.location,
            "properties": {
                "subnet": {"id": env.pe_subnet_id},
                "privateLinkServiceConnections": [
                    {
                        "name": f"{env.private_endpoint}-connection",
                        "properties": {
                            "privateLinkServiceId": env.private_link_scope_id,
                            "groupIds": ["azuremonitor"],
                        },
                    }
                ],
            },
        },
    ).result()
    clients.network.private_dns_zone_groups.begin_create_or_update(
        env.resource_group,
        env.private_endpoint,
        "default",
        {
            "properties": {
                "privateDnsZoneConfigs": [
                    {
                        "name": zone.replace(".", "-"),
                        "properties": {"privateDnsZoneId": env.zone_id(zone)},
                    }
                    for zone in env.zones
                ]
            }
        },
    ).result()


def test_dns_flips_from_public_to_private_once_scope_endpoint_zone_group_and_link_exist(
    azure_sandbox: RunningAzure,
) -> None:
    """The runbook's 3.3 and 3.4 end to end: nslookup answers 10.2.0.x once private link exists."""
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox)
    resolver = resolver_for(azure_sandbox, env.vnet_id)
    dce = azure_sandbox.state.get(env.configuration_dce_id)
    assert dce is not None
    metrics_host = dce["properties"]["metricsIngestion"]["endpoint"].removeprefix("https://")

    before = resolver.resolve(GLOBAL_HANDLER, "A")
    assert (
        before.canonical_name.to_text() == "global.handler.control.privatelink.monitor.azure.com."
    )
    assert a_records(resolver, GLOBAL_HANDLER)[0].startswith("20.")
    assert a_records(resolver, metrics_host)[0].startswith("20.")

    create_scope(clients, azure_sandbox, env.configuration_dce_id, env.ingestion_dce_id)
    create_endpoint_and_dns(clients, azure_sandbox, link=False)
    # Records exist but no zone is linked to the VNet yet: still the public answer.
    assert a_records(resolver, GLOBAL_HANDLER)[0].startswith("20.")

    for zone in env.zones:
        clients.dns.virtual_network_links.begin_create_or_update(
            env.resource_group,
            zone,
            env.vnet,
            {"location": "global", "properties": {"virtualNetwork": {"id": env.vnet_id}}},
        ).result()

    # The runbook's addresses: both DCEs were scoped before the endpoint was made.
    assert a_records(resolver, metrics_host) == ["10.2.0.6"]
    assert a_records(resolver, GLOBAL_HANDLER) == ["10.2.0.14"]
    resolution = azure_sandbox.state.resolve(GLOBAL_HANDLER, env.vnet_id)
    assert resolution.private and resolution.addresses == ["10.2.0.14"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("nothing.example.com", "A")


def test_private_endpoint_reports_approved_connection_ips_and_nic(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox)
    create_scope(clients, azure_sandbox, env.configuration_dce_id)
    create_endpoint_and_dns(clients, azure_sandbox)

    endpoint = clients.network.private_endpoints.get(env.resource_group, env.private_endpoint)
    assert endpoint.properties.provisioning_state == "Succeeded"
    connection = endpoint.properties.private_link_service_connections[0]
    assert connection.properties.private_link_service_connection_state.status == "Approved"
    configs = {c.fqdn: c.ip_addresses for c in endpoint.properties.custom_dns_configs}
    assert configs[GLOBAL_HANDLER][0].startswith("10.2.0.")
    assert len(configs) == 3 + 8  # one DCE's three hosts, the global members, the pack store
    addresses = [ip for ips in configs.values() for ip in ips]
    assert len(set(addresses)) == len(addresses)
    assert min(addresses, key=lambda ip: int(ip.rsplit(".", 1)[1])) == "10.2.0.4"

    nic_id = endpoint.properties.network_interfaces[0].id
    nic = clients.resources.get_by_id(nic_id, api_version="2024-05-01")
    assert len(nic.properties["ipConfigurations"]) == len(configs)

    listed = [pe.name for pe in clients.network.private_endpoints.list(env.resource_group)]
    assert listed == [env.private_endpoint]
    scope = clients.resources.get_by_id(env.private_link_scope_id, api_version=AMPLS_API)
    assert [
        c["properties"]["privateEndpoint"]["id"]
        for c in scope.properties["privateEndpointConnections"]
    ] == [endpoint.id]


def test_zone_group_reports_and_writes_its_records(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox)
    create_scope(clients, azure_sandbox, env.configuration_dce_id)
    create_endpoint_and_dns(clients, azure_sandbox)

    group = clients.network.private_dns_zone_groups.get(
        env.resource_group, env.private_endpoint, "default"
    )
    by_zone = {
        config.properties.private_dns_zone_id.rsplit("/", 1)[1]: {
            r.record_set_name: r.ip_addresses[0] for r in config.properties.record_sets
        }
        for config in group.properties.private_dns_zone_configs
    }
    assert by_zone["privatelink.blob.core.windows.net"].keys() == {"scadvisorcontentpl"}
    assert by_zone["privatelink.ods.opinsights.azure.com"] == {}
    monitor_records = by_zone[MONITOR_ZONE]
    assert "global.handler.control" in monitor_records

    written = {
        r.name: r.properties.a_records[0].ipv4_address
        for r in clients.dns.record_sets.list_by_type(env.resource_group, MONITOR_ZONE, "A")
    }
    assert written == monitor_records
    every = [r.name for r in clients.dns.record_sets.list(env.resource_group, MONITOR_ZONE)]
    assert "@" in every  # the zone's SOA record
    record = clients.dns.record_sets.get(env.resource_group, MONITOR_ZONE, "A", "api")
    assert record.properties.ttl == 10
    assert record.properties.fqdn == "api.privatelink.monitor.azure.com."


def test_records_follow_the_scope_when_a_dce_joins_or_leaves(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox)
    create_scope(clients, azure_sandbox, env.configuration_dce_id)
    create_endpoint_and_dns(clients, azure_sandbox)
    resolver = resolver_for(azure_sandbox, env.vnet_id)
    ingestion = azure_sandbox.state.get(env.ingestion_dce_id)
    assert ingestion is not None
    host = ingestion["properties"]["metricsIngestion"]["endpoint"].removeprefix("https://")
    handler_before = a_records(resolver, GLOBAL_HANDLER)

    # With the zone linked but no record for this DCE, Azure DNS answers NXDOMAIN.
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(host, "A")

    scoped_id = f"{env.private_link_scope_id}/scopedResources/{env.workspace}"
    clients.resources.begin_create_or_update_by_id(
        scoped_id,
        api_version=AMPLS_API,
        parameters={"properties": {"linkedResourceId": env.ingestion_dce_id}},
    ).result()
    assert a_records(resolver, host)[0].startswith("10.2.0.")
    assert a_records(resolver, GLOBAL_HANDLER) == handler_before  # existing members keep their IP
    assert azure_sandbox.state.scopes_of(env.ingestion_dce_id) == [env.private_link_scope_id]

    clients.resources.begin_delete_by_id(scoped_id, api_version=AMPLS_API).result()
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(host, "A")
    assert azure_sandbox.state.scopes_of(env.ingestion_dce_id) == []


def test_ampls_scoped_resources_are_listed_and_deleted_as_long_running_operations(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox)
    azure_sandbox.sandbox.request_log.clear()
    create_scope(clients, azure_sandbox, env.configuration_dce_id, env.ingestion_dce_id)
    log = azure_sandbox.sandbox.request_log.since(0)
    puts = [e for e in log if e["method"] == "PUT" and "/scopedResources/" in e["path"]]
    assert [e["status"] for e in puts] == [202, 202]
    assert any("privateLinkScopeOperationStatuses" in e["path"] for e in log)

    token = azure_sandbox.credential().get_token("https://management.azure.com/.default").token
    import json
    import ssl
    import urllib.request

    request = urllib.request.Request(
        f"{azure_sandbox.arm_url}{env.private_link_scope_id}/scopedResources?api-version={AMPLS_API}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(
        request, context=ssl.create_default_context(cafile=azure_sandbox.ca)
    ) as r:
        listed = json.loads(r.read())["value"]
    assert {s["properties"]["linkedResourceId"].lower() for s in listed} == {
        env.configuration_dce_id.lower(),
        env.ingestion_dce_id.lower(),
    }
    resource = clients.resources.get_by_id(
        f"{env.private_link_scope_id}/privateLinkResources/azuremonitor", api_version=AMPLS_API
    )
    assert "dce-global" in resource.properties["requiredMembers"]
    assert MONITOR_ZONE in resource.properties["requiredZoneNames"]

    clients.resources.begin_delete_by_id(env.private_link_scope_id, api_version=AMPLS_API).result()
    with pytest.raises(ResourceNotFoundError):
        clients.resources.get_by_id(env.private_link_scope_id, api_version=AMPLS_API)
    assert azure_sandbox.state.scopes_of(env.configuration_dce_id) == []


def test_ampls_without_access_mode_settings_is_refused_with_400(
    azure_sandbox: RunningAzure,
) -> None:
    clients = Clients(azure_sandbox, retry_total=0)
    with pytest.raises(HttpResponseError) as caught:
        clients.resources.begin_create_or_update_by_id(
            azure_sandbox.environment.private_link_scope_id,
            api_version=AMPLS_API,
            parameters={"location": "global", "properties": {}},
        )
    assert caught.value.status_code == 400


def test_writes_referencing_missing_resources_are_refused_with_400(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox, retry_total=0)
    create_scope(clients, azure_sandbox)
    with pytest.raises(HttpResponseError) as missing_subnet:
        clients.network.private_endpoints.begin_create_or_update(
            env.resource_group,
            "pe-x",
            {
                "location": env.location,
                "properties": {
                    "subnet": {"id": env.vnet_id + "/subnets/nope"},
                    "privateLinkServiceConnections": [
                        {
                            "name": "c",
                            "properties": {
                                "privateLinkServiceId": env.private_link_scope_id,
                                "groupIds": ["azuremonitor"],
                            },
                        }
                    ],
                },
            },
        )
    assert missing_subnet.value.status_code == 400
    with pytest.raises(HttpResponseError) as missing_dce:
        clients.resources.begin_create_or_update_by_id(
            f"{env.private_link_scope_id}/scopedResources/x",
            api_version=AMPLS_API,
            parameters={"properties": {"linkedResourceId": env.configuration_dce_id + "x"}},
        )
    assert missing_dce.value.status_code == 400
    with pytest.raises(HttpResponseError) as missing_vnet:
        clients.dns.private_zones.begin_create_or_update(
            env.resource_group, MONITOR_ZONE, {"location": "global"}
        ).result()
        clients.dns.virtual_network_links.begin_create_or_update(
            env.resource_group,
            MONITOR_ZONE,
            "l",
            {"location": "global", "properties": {"virtualNetwork": {"id": env.vnet_id + "x"}}},
        )
    assert missing_vnet.value.status_code == 400
    with pytest.raises(ResourceNotFoundError) as missing_parent:
        clients.network.private_dns_zone_groups.begin_create_or_update(
            env.resource_group,
            "pe-missing",
            "default",
            {
                "properties": {
                    "privateDnsZoneConfigs": [
                        {"properties": {"privateDnsZoneId": env.zone_id(MONITOR_ZONE)}}
                    ]
                }
            },
        )
    assert missing_parent.value.error.code == "ParentResourceNotFound"


def test_private_dns_zone_link_and_record_lifecycle_with_etags(azure_sandbox: RunningAzure) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox, retry_total=0)
    zone = clients.dns.private_zones.begin_create_or_update(
        env.resource_group, MONITOR_ZONE, {"location": "global", "tags": {"a": "b"}}
    ).result()
    assert zone.location == "global"
    assert zone.properties.number_of_record_sets == 1
    # If-None-Match: * refuses to overwrite an existing zone.
    with pytest.raises(ResourceExistsError):
        clients.dns.private_zones.begin_create_or_update(
            env.resource_group,
            MONITOR_ZONE,
            {"location": "global"},
            match_condition=MatchConditions.IfMissing,
        )

    link = clients.dns.virtual_network_links.begin_create_or_update(
        env.resource_group,
        MONITOR_ZONE,
        "vnet-link",
        {
            "location": "global",
            "properties": {"virtualNetwork": {"id": env.vnet_id}, "registrationEnabled": False},
        },
    ).result()
    assert link.properties.virtual_network_link_state == "Completed"
    assert [
        lk.name for lk in clients.dns.virtual_network_links.list(env.resource_group, MONITOR_ZONE)
    ] == ["vnet-link"]

    record = clients.dns.record_sets.create_or_update(
        env.resource_group,
        MONITOR_ZONE,
        "A",
        "custom",
        {"properties": {"ttl": 300, "aRecords": [{"ipv4Address": "10.2.0.200"}]}},
    )
    updated = clients.dns.record_sets.create_or_update(
        env.resource_group,
        MONITOR_ZONE,
        "A",
        "custom",
        {"properties": {"ttl": 60, "aRecords": [{"ipv4Address": "10.2.0.201"}]}},
        etag=record.etag,
        match_condition=MatchConditions.IfNotModified,
    )
    assert updated.etag != record.etag
    with pytest.raises(ResourceModifiedError):
        clients.dns.record_sets.create_or_update(
            env.resource_group,
            MONITOR_ZONE,
            "A",
            "custom",
            {"properties": {"ttl": 60, "aRecords": [{"ipv4Address": "10.2.0.202"}]}},
            etag=record.etag,
            match_condition=MatchConditions.IfNotModified,
        )
    assert a_records(
        resolver_for(azure_sandbox, env.vnet_id), "custom.privatelink.monitor.azure.com"
    ) == ["10.2.0.201"]

    # A zone with links cannot go; without them it can.
    with pytest.raises(HttpResponseError) as caught:
        clients.dns.private_zones.begin_delete(env.resource_group, MONITOR_ZONE)
    assert caught.value.status_code == 409
    clients.dns.virtual_network_links.begin_delete(
        env.resource_group, MONITOR_ZONE, "vnet-link"
    ).result()
    clients.dns.private_zones.begin_delete(env.resource_group, MONITOR_ZONE).result()
    assert [
        z.name for z in clients.dns.private_zones.list_by_resource_group(env.resource_group)
    ] == []


def test_linking_a_second_zone_of_the_same_name_to_one_vnet_is_a_conflict(
    azure_sandbox: RunningAzure,
) -> None:
    """One AMPLS per DNS: Azure refuses two same-named private zones on one VNet."""
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox, retry_total=0)
    for group in (env.resource_group, env.managed_resource_group):
        clients.dns.private_zones.begin_create_or_update(
            group, MONITOR_ZONE, {"location": "global"}
        ).result()
    link = {"location": "global", "properties": {"virtualNetwork": {"id": env.vnet_id}}}
    clients.dns.virtual_network_links.begin_create_or_update(
        env.resource_group, MONITOR_ZONE, "a", link
    ).result()
    with pytest.raises(ResourceExistsError):
        clients.dns.virtual_network_links.begin_create_or_update(
            env.managed_resource_group, MONITOR_ZONE, "b", link
        )


def test_deleting_the_endpoint_removes_its_zone_group_records_and_frees_dns(
    azure_sandbox: RunningAzure,
) -> None:
    env = azure_sandbox.environment
    clients = Clients(azure_sandbox)
    create_scope(clients, azure_sandbox, env.configuration_dce_id)
    create_endpoint_and_dns(clients, azure_sandbox)
    resolver = resolver_for(azure_sandbox, env.vnet_id)
    assert a_records(resolver, GLOBAL_HANDLER)[0].startswith("10.2.0.")

    clients.network.private_endpoints.begin_delete(
        env.resource_group, env.private_endpoint
    ).result()
    with pytest.raises(ResourceNotFoundError):
        clients.network.private_endpoints.get(env.resource_group, env.private_endpoint)
    assert [
        r.name for r in clients.dns.record_sets.list_by_type(env.resource_group, MONITOR_ZONE, "A")
    ] == []
    # Zone linked, record gone: the name no longer resolves at all (the classic DNS override).
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(GLOBAL_HANDLER, "A")


def test_the_seed_scenarios_build_the_runbooks_azure_states(azure_sandbox_factory: Any) -> None:
    addon = azure_sandbox_factory(scenario="addon-only")
    env = addon.environment
    assert addon.state.get(env.private_link_scope_id) is None
    assert not addon.state.resolve(GLOBAL_HANDLER, env.vnet_id).private

    no_dcra = azure_sandbox_factory(scenario="no-dcra")
    names = {a["name"] for a in no_dcra.state.associations_of(env.cluster_id)}
    assert names == {"ContainerInsightsExtension", "ContainerInsightsMetricsExtension"}
    assert no_dcra.state.resolve(GLOBAL_HANDLER, env.vnet_id).addresses == ["10.2.0.14"]
    scope = no_dcra.state.get(env.private_link_scope_id)
    assert scope is not None and scope["tags"] == {"managed-by": "aks-metrics-pipeline"}

    healthy = azure_sandbox_factory(scenario="healthy")
    resolver = resolver_for(healthy, env.vnet_id)
    assert a_records(
        resolver,
        "msprom-koreacentral-aks-rubicon-koreacentral-ruja.koreacentral-1.metrics.ingest.monitor.azure.com",
    ) == ["10.2.0.6"]
    names = {a["name"] for a in healthy.state.associations_of(env.cluster_id)}
    assert "configurationAccessEndpoint" in names
