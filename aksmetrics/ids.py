"""Azure resource ids, built in one place so that no id is ever typed twice.

Every function returns the id exactly as ARM spells it in responses, so ids built here can be
compared with ids read back from Azure after lower-casing both (ARM ids are case-insensitive).
"""

from __future__ import annotations


def resource_group_id(subscription_id: str, resource_group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


def provider_id(
    subscription_id: str,
    resource_group: str,
    provider_type: str,
    name: str,
) -> str:
    """The id of a top-level resource, e.g. of type ``Microsoft.Insights/dataCollectionRules``."""
    return f"{resource_group_id(subscription_id, resource_group)}/providers/{provider_type}/{name}"


def managed_cluster_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(
        subscription_id, resource_group, "Microsoft.ContainerService/managedClusters", name
    )


def virtual_network_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(subscription_id, resource_group, "Microsoft.Network/virtualNetworks", name)


def subnet_id(vnet_id: str, subnet: str) -> str:
    return f"{vnet_id}/subnets/{subnet}"


def monitor_workspace_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(subscription_id, resource_group, "Microsoft.Monitor/accounts", name)


def grafana_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(subscription_id, resource_group, "Microsoft.Dashboard/grafana", name)


def data_collection_endpoint_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(
        subscription_id, resource_group, "Microsoft.Insights/dataCollectionEndpoints", name
    )


def data_collection_rule_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(
        subscription_id, resource_group, "Microsoft.Insights/dataCollectionRules", name
    )


def data_collection_rule_association_id(resource_id: str, name: str) -> str:
    """Associations are extension resources: they hang below the resource they bind to."""
    return f"{resource_id}/providers/Microsoft.Insights/dataCollectionRuleAssociations/{name}"


def private_link_scope_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(
        subscription_id, resource_group, "Microsoft.Insights/privateLinkScopes", name
    )


def scoped_resource_id(scope_id: str, name: str) -> str:
    return f"{scope_id}/scopedResources/{name}"


def private_endpoint_id(subscription_id: str, resource_group: str, name: str) -> str:
    return provider_id(subscription_id, resource_group, "Microsoft.Network/privateEndpoints", name)


def private_dns_zone_group_id(private_endpoint: str, name: str) -> str:
    return f"{private_endpoint}/privateDnsZoneGroups/{name}"


def private_dns_zone_id(subscription_id: str, resource_group: str, zone: str) -> str:
    return provider_id(subscription_id, resource_group, "Microsoft.Network/privateDnsZones", zone)


def virtual_network_link_id(zone_id: str, name: str) -> str:
    return f"{zone_id}/virtualNetworkLinks/{name}"


def same_id(left: str | None, right: str | None) -> bool:
    """Compare two ARM ids the way ARM does: case-insensitively, ignoring a trailing slash."""
    if left is None or right is None:
        return left is right
    return left.rstrip("/").lower() == right.rstrip("/").lower()


def name_of(resource_id: str) -> str:
    """The last segment of an id: the resource's own name."""
    return resource_id.rstrip("/").rsplit("/", 1)[-1]
