"""Azure Monitor private link: AMPLS members, private endpoint IPs, DNS zone group records.

What the real service does, reduced to what the pipeline depends on:

* An AMPLS's private link resource (group ``azuremonitor``) has *members*: the global Azure
  Monitor endpoints (``api``, ``global.in.ai``, ``profiler``, ``live``, ``snapshot``,
  ``diagservices-query``, ``global.handler.control`` known as ``dce-global``), the solution pack
  store (``scadvisorcontentpl`` in blob storage), and three per DCE in the scope: its
  ``handler.control``, ``ingest`` and ``metrics.ingest`` hosts.
* A private endpoint on the AMPLS gets one private IP per member from its subnet (the first
  four addresses of a subnet are Azure's, so allocation starts at ``.4``) and lists them in
  ``customDnsConfigs``. When the scope's resources change, the endpoint's connection is refreshed:
  new members get new IPs, gone members release theirs, the others keep theirs.
* A DNS zone group on the endpoint writes an A record (TTL 10) for every member whose public
  name falls under one of its zones (``api.monitor.azure.com`` → ``api`` in
  ``privatelink.monitor.azure.com``), and removes the records it wrote when members go away or the
  group is deleted.

Log Analytics workspaces (the ``ods``/``oms``/``agentsvc`` records) and Application Insights
components are not emulated as scoped resources: our scenarios have none, so those three zones
stay empty apart from their SOA record, as they do for a real AMPLS that holds only DCEs.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from typing import TYPE_CHECKING, Any

from sandbox.azure.ids import normalize

if TYPE_CHECKING:
    from sandbox.azure.models import AzureState

SCOPABLE_TYPES = (
    "microsoft.insights/datacollectionendpoints",
    "microsoft.operationalinsights/workspaces",
    "microsoft.insights/components",
)
MAX_SCOPES_PER_RESOURCE = 5
MAX_ENDPOINTS_PER_SCOPE = 10
MAX_ZONES_PER_GROUP = 5
RECORD_TTL = 10

# The order decides which IP each member gets on a fresh endpoint: per-DCE members first, then
# these, which reproduces the addresses of the original runbook (metrics.ingest at 10.2.0.6,
# global.handler.control at 10.2.0.14).
GLOBAL_MEMBERS: tuple[tuple[str, str], ...] = (
    ("api", "api.monitor.azure.com"),
    ("global.in.ai", "global.in.ai.monitor.azure.com"),
    ("profiler", "profiler.monitor.azure.com"),
    ("live", "live.monitor.azure.com"),
    ("dce-global", "global.handler.control.monitor.azure.com"),
    ("snapshot", "snapshot.monitor.azure.com"),
    ("diagservices-query", "diagservices-query.monitor.azure.com"),
    ("agentsolutionpackstore", "scadvisorcontentpl.blob.core.windows.net"),
)
ZONE_NAMES = (
    "privatelink.monitor.azure.com",
    "privatelink.oms.opinsights.azure.com",
    "privatelink.ods.opinsights.azure.com",
    "privatelink.agentsvc.azure-automation.net",
    "privatelink.blob.core.windows.net",
)

_SCOPED = "microsoft.insights/privatelinkscopes/scopedresources"
_ENDPOINTS = "microsoft.network/privateendpoints"
_ZONE_GROUPS = "microsoft.network/privateendpoints/privatednszonegroups"
_A_RECORDS = "microsoft.network/privatednszones/a"
_NICS = "microsoft.network/networkinterfaces"


def _error(status: int, code: str, message: str) -> Exception:
    from sandbox.azure.models import ArmError

    return ArmError(status, code, message)


def next_ordinal() -> int:
    """An increasing number that orders scoped resources by when they joined their scope."""
    return time.time_ns()


def scope_immutable_id(state: AzureState, scope_id: str) -> str:
    return str(state.meta(scope_id).get("immutable_id", ""))


def scoped_links(state: AzureState, linked_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(scope id, scoped resource) for every finished scoped resource that links ``linked_id``."""
    links = []
    for scoped in state.of_type(_SCOPED):
        properties = scoped["properties"]
        if properties.get("provisioningState") != "Succeeded":
            continue
        if normalize(properties["linkedResourceId"]) == normalize(linked_id):
            links.append((scoped["id"].rsplit("/scopedResources/", 1)[0], scoped))
    return links


def members(state: AzureState, scope_id: str) -> list[tuple[str, str]]:
    """(member name, public fqdn) of the scope's ``azuremonitor`` private link resource."""
    from sandbox.azure.resource_types import dce_hosts

    scoped = [
        s
        for s in state.children(scope_id, _SCOPED)
        if s["properties"].get("provisioningState") == "Succeeded"
    ]
    scoped.sort(key=lambda s: state.meta(s["id"]).get("ordinal", 0))
    result: list[tuple[str, str]] = []
    for item in scoped:
        linked = state.stored(item["properties"]["linkedResourceId"])
        if linked is None or linked["type"].lower() != SCOPABLE_TYPES[0]:
            continue
        immutable = linked["properties"]["immutableId"]
        hosts = dce_hosts(state, linked)
        result += [
            (f"{immutable}-config", hosts["configurationAccess"]),
            (f"{immutable}-logs", hosts["logsIngestion"]),
            (f"{immutable}-metrics", hosts["metricsIngestion"]),
        ]
    return result + list(GLOBAL_MEMBERS)


def endpoints_of_scope(state: AzureState, scope_id: str) -> list[dict[str, Any]]:
    """Private endpoints whose connection targets the scope."""
    found = []
    for endpoint in state.of_type(_ENDPOINTS):
        properties = endpoint["properties"]
        connections = properties.get("privateLinkServiceConnections", []) + properties.get(
            "manualPrivateLinkServiceConnections", []
        )
        if any(
            normalize(c["properties"]["privateLinkServiceId"]) == normalize(scope_id)
            for c in connections
        ):
            found.append(endpoint)
    return found


def write_private_link_resource(state: AzureState, scope_id: str) -> None:
    """Keep ``{scope}/privateLinkResources/azuremonitor`` in step with the scope's members."""
    resource_id = f"{scope_id}/privateLinkResources/azuremonitor"
    state.put_internal(
        resource_id,
        {
            "id": resource_id,
            "name": "azuremonitor",
            "type": "Microsoft.Insights/privateLinkScopes/privateLinkResources",
            "properties": {
                "groupId": "azuremonitor",
                "requiredMembers": [member for member, _ in members(state, scope_id)],
                "requiredZoneNames": list(ZONE_NAMES),
            },
        },
        "microsoft.insights/privatelinkscopes/privatelinkresources",
        normalize(scope_id),
    )


def refresh_scope(state: AzureState, scope_id: str) -> None:
    """The scope's members changed: refresh its private link resource and every endpoint on it."""
    write_private_link_resource(state, scope_id)
    for endpoint in endpoints_of_scope(state, scope_id):
        if endpoint["properties"].get("provisioningState") == "Succeeded":
            refresh_endpoint(state, endpoint["id"])


def _connection(endpoint: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """The endpoint's connection and whether it is automatic (auto-approved)."""
    properties = endpoint["properties"]
    if properties.get("privateLinkServiceConnections"):
        return properties["privateLinkServiceConnections"][0], True
    if properties.get("manualPrivateLinkServiceConnections"):
        return properties["manualPrivateLinkServiceConnections"][0], False
    return None, False


def connection_status(state: AzureState, endpoint: dict[str, Any]) -> str:
    connection, automatic = _connection(endpoint)
    if connection is None or state.stored(connection["properties"]["privateLinkServiceId"]) is None:
        return "Disconnected"
    return "Approved" if automatic else "Pending"


def refresh_endpoint(state: AzureState, endpoint_id: str) -> None:
    """Allocate IPs for the scope's members, update the NIC, and rewrite the zone group records."""
    endpoint = state.stored(endpoint_id)
    if endpoint is None:
        return
    meta = state.meta(endpoint_id)
    allocations: list[dict[str, str]] = meta.get("allocations", [])
    connection, _ = _connection(endpoint)
    if connection is None:
        return
    scope_id = connection["properties"]["privateLinkServiceId"]
    if state.stored(scope_id) is None:
        return
    desired = members(state, scope_id) if connection_status(state, endpoint) == "Approved" else []

    # Members that stay keep their address; new ones take the lowest free address of the subnet.
    by_fqdn = {a["fqdn"]: a for a in allocations}
    subnet_id = endpoint["properties"]["subnet"]["id"]
    used = _used_addresses(state, subnet_id, exclude=endpoint_id)
    used |= {by_fqdn[fqdn]["ip"] for _, fqdn in desired if fqdn in by_fqdn}
    updated = []
    for member, fqdn in desired:
        if fqdn in by_fqdn:
            updated.append(by_fqdn[fqdn])
            continue
        address = _next_free(state, subnet_id, used)
        used.add(address)
        updated.append({"member": member, "fqdn": fqdn, "ip": address})
    meta["allocations"] = updated
    state.touch()

    _write_nic(state, endpoint, updated)
    for group in state.children(endpoint_id, _ZONE_GROUPS):
        write_zone_group_records(state, group["id"])


def release_endpoint(state: AzureState, stored: dict[str, Any]) -> None:
    """An endpoint is gone: its addresses go back to the subnet with its bookkeeping."""
    state.touch()


def _used_addresses(state: AzureState, subnet_id: str, *, exclude: str) -> set[str]:
    used: set[str] = set()
    for endpoint in state.of_type(_ENDPOINTS):
        if normalize(endpoint["properties"]["subnet"]["id"]) != normalize(subnet_id):
            continue
        for config in endpoint["properties"].get("ipConfigurations", []):
            static = (config.get("properties") or {}).get("privateIPAddress")
            if static:
                used.add(static)
        if normalize(endpoint["id"]) == normalize(exclude):
            continue
        used |= {a["ip"] for a in state.meta(endpoint["id"]).get("allocations", [])}
    return used


def _next_free(state: AzureState, subnet_id: str, used: set[str]) -> str:
    subnet = state.stored(subnet_id) or {}
    properties = subnet.get("properties", {})
    prefix = properties.get("addressPrefix") or (properties.get("addressPrefixes") or [None])[0]
    network = ipaddress.ip_network(prefix)
    # Azure keeps the first four addresses and the last one of every subnet.
    first = int(network.network_address) + 4
    last = int(network.broadcast_address) - 1
    for value in range(first, last + 1):
        candidate = str(ipaddress.ip_address(value))
        if candidate not in used:
            return candidate
    raise _error(
        400,
        "PrivateIPAddressNotAvailable",
        f"The subnet '{subnet_id}' has no free private IP address left for the private endpoint.",
    )


def _write_nic(
    state: AzureState, endpoint: dict[str, Any], allocations: list[dict[str, str]]
) -> None:
    interfaces = endpoint["properties"].get("networkInterfaces") or []
    if not interfaces:
        return
    nic_id = interfaces[0]["id"]
    group_id = nic_id.split("/providers/", 1)[0]
    state.put_internal(
        nic_id,
        {
            "id": nic_id,
            "name": nic_id.rsplit("/", 1)[1],
            "type": "Microsoft.Network/networkInterfaces",
            "location": endpoint.get("location"),
            "properties": {
                "provisioningState": "Succeeded",
                "privateEndpoint": {"id": endpoint["id"]},
                "ipConfigurations": [
                    {
                        "id": f"{nic_id}/ipConfigurations/{a['member']}",
                        "name": a["member"],
                        "properties": {
                            "privateIPAddress": a["ip"],
                            "privateIPAllocationMethod": "Dynamic",
                            "privateIPAddressVersion": "IPv4",
                            "primary": index == 0,
                            "subnet": {"id": endpoint["properties"]["subnet"]["id"]},
                            "privateLinkConnectionProperties": {
                                "groupId": "azuremonitor",
                                "requiredMemberName": a["member"],
                                "fqdns": [a["fqdn"]],
                            },
                        },
                    }
                    for index, a in enumerate(allocations)
                ],
            },
        },
        _NICS,
        normalize(group_id),
    )


def render_endpoint(state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
    """Add what a GET computes: connection ids and states, ``customDnsConfigs``."""
    properties = resource["properties"]
    status = connection_status(state, resource)
    for key in ("privateLinkServiceConnections", "manualPrivateLinkServiceConnections"):
        for connection in properties.get(key, []):
            connection["id"] = f"{resource['id']}/{key}/{connection['name']}"
            connection["type"] = f"Microsoft.Network/privateEndpoints/{key}"
            connection["properties"]["provisioningState"] = "Succeeded"
            connection["properties"]["privateLinkServiceConnectionState"] = {
                "status": status,
                "description": {
                    "Approved": "Auto-Approved",
                    "Pending": "Awaiting approval",
                    "Disconnected": "The private link scope was deleted.",
                }[status],
                "actionsRequired": "None",
            }
            if connection["properties"].get("requestMessage") is None:
                connection["properties"].pop("requestMessage", None)
    allocations = state.meta(resource["id"]).get("allocations", [])
    properties["customDnsConfigs"] = [
        {"fqdn": a["fqdn"], "ipAddresses": [a["ip"]]} for a in allocations
    ]
    return resource


def endpoint_connections(state: AzureState, scope_id: str) -> list[dict[str, Any]]:
    """The scope's ``privateEndpointConnections``, one per private endpoint that targets it."""
    connections = []
    for endpoint in endpoints_of_scope(state, scope_id):
        name = f"{endpoint['name']}.{uuid.uuid5(uuid.NAMESPACE_URL, normalize(endpoint['id']))}"
        status = connection_status(state, endpoint)
        connections.append(
            {
                "id": f"{scope_id}/privateEndpointConnections/{name}",
                "name": name,
                "type": "Microsoft.Insights/privateLinkScopes/privateEndpointConnections",
                "properties": {
                    "privateEndpoint": {"id": endpoint["id"]},
                    "groupIds": ["azuremonitor"],
                    "privateLinkServiceConnectionState": {
                        "status": status,
                        "description": "Auto-Approved" if status == "Approved" else status,
                        "actionsRequired": "None",
                    },
                    "provisioningState": "Succeeded",
                },
            }
        )
    return connections


def zone_records(state: AzureState, group: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    """For each zone of a zone group: (relative record name, ip, public fqdn) it should hold."""
    endpoint_id = group["id"].rsplit("/privateDnsZoneGroups/", 1)[0]
    if state.stored(endpoint_id) is None:
        return {}
    allocations = state.meta(endpoint_id).get("allocations", [])
    records: dict[str, list[tuple[str, str, str]]] = {}
    for config in group["properties"]["privateDnsZoneConfigs"]:
        zone_id = config["properties"]["privateDnsZoneId"]
        zone = zone_id.rsplit("/", 1)[1].lower()
        suffix = zone.removeprefix("privatelink.")
        records[zone_id] = [
            (a["fqdn"][: -len(suffix) - 1], a["ip"], a["fqdn"])
            for a in allocations
            if a["fqdn"].endswith("." + suffix)
        ]
    return records


def write_zone_group_records(state: AzureState, group_id: str) -> None:
    """Write the A records a zone group owns and remove the ones it no longer should own."""
    group = state.stored(group_id)
    if group is None or group["properties"].get("provisioningState") not in ("Succeeded", None):
        return
    meta = state.meta(group_id)
    owned: list[str] = meta.get("records", [])
    written: list[str] = []
    for zone_id, records in zone_records(state, group).items():
        if state.stored(zone_id) is None:
            continue
        for relative, address, _ in records:
            record_id = f"{zone_id}/A/{relative}"
            existing = state.stored(record_id)
            properties = {
                "metadata": {},
                "ttl": RECORD_TTL,
                "aRecords": [{"ipv4Address": address}],
            }
            written.append(record_id)
            if existing is not None and existing.get("properties") == properties:
                continue
            state.put_internal(
                record_id,
                {
                    "id": record_id,
                    "name": relative,
                    "type": "Microsoft.Network/privateDnsZones/A",
                    "properties": properties,
                },
                _A_RECORDS,
                normalize(zone_id),
            )
    for record_id in owned:
        if normalize(record_id) not in {normalize(w) for w in written}:
            state.remove_internal(record_id)
    meta["records"] = written
    state.touch()


def delete_zone_group_records(state: AzureState, extra: dict[str, Any]) -> None:
    for record_id in extra.get("records", []):
        state.remove_internal(record_id)


def render_zone_group(state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
    """Add ``recordSets`` to each zone config, as the real zone group reports them."""
    records = zone_records(state, resource)
    for config in resource["properties"]["privateDnsZoneConfigs"]:
        zone_id = config["properties"]["privateDnsZoneId"]
        zone = zone_id.rsplit("/", 1)[1].lower()
        config["id"] = f"{resource['id']}/privateDnsZoneConfigs/{config['name']}"
        config["properties"]["recordSets"] = [
            {
                "recordType": "A",
                "recordSetName": relative,
                "fqdn": f"{relative}.{zone}",
                "ttl": RECORD_TTL,
                "ipAddresses": [address],
                "provisioningState": "Succeeded",
            }
            for relative, address, _ in records.get(zone_id, [])
        ]
    return resource
