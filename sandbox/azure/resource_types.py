"""What each emulated resource type accepts, refuses, computes and changes elsewhere when written.

A :class:`ResourceKind` is the state-side description of one ARM resource type: its api-versions,
whether it is written synchronously or as a long-running operation, how its etag looks, how a
request body becomes the stored resource (with ARM's validation errors), which fields a GET
computes, and its side effects (a zone group writes DNS records, a scoped resource changes the
private endpoint's members). ``models.AzureState`` drives these hooks; nothing here speaks HTTP.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import string
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.azure import apiversions, privatelink
from sandbox.azure.apiversions import ApiVersions
from sandbox.azure.ids import ArmPath, normalize, parse_path

if TYPE_CHECKING:
    from sandbox.azure.models import AzureState

DCRA_TYPE = "microsoft.insights/datacollectionruleassociations"
CONFIGURATION_ACCESS_ENDPOINT = "configurationaccessendpoint"


def _error(status: int, code: str, message: str) -> Exception:
    # Imported late: models imports this module.
    from sandbox.azure.models import ArmError

    return ArmError(status, code, message)


def bad_request(message: str, code: str = "InvalidRequestContent") -> Exception:
    return _error(400, code, message)


def _region(value: Any) -> str:
    """ARM normalises locations: "Korea Central" and "koreacentral" are one region."""
    return str(value or "").replace(" ", "").lower()


class ResourceKind:
    """The behaviour shared by all types; subclasses override what differs."""

    type_name: str = ""
    api_versions: ApiVersions = apiversions.RESOURCES
    writable: bool = True
    tracked: bool = True  # listed by the generic /resources call
    put_lro: str | None = None  # "network" | "privatedns" | "insights"
    delete_lro: str | None = None
    delete_status: int = 200
    etag_style: str | None = "quoted"  # "weak" W/"guid", "plain" guid, "quoted" "guid"
    system_data: bool = True
    location_required: bool = True
    virtual_parent: bool = False
    list_handler: Callable[[AzureState, ArmPath], list[dict[str, Any]]] | None = None
    get_handler: Callable[[AzureState, ArmPath], dict[str, Any] | None] | None = None

    @property
    def type_key(self) -> str:
        return self.type_name.lower()

    # -- hooks ---------------------------------------------------------------------------------

    def build(
        self,
        state: AzureState,
        path: ArmPath,
        resource_id: str,
        body: dict[str, Any],
        existing: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Validate a PUT body and return the resource to store (ids and etag are added later)."""
        stored: dict[str, Any] = {}
        if self.location_required:
            location = body.get("location")
            if not isinstance(location, str) or not location:
                raise bad_request(
                    "The 'location' property is required for this definition.",
                    code="LocationRequired",
                )
            if existing is not None and _region(existing.get("location")) != _region(location):
                raise bad_request(
                    f"The location of '{existing['id']}' cannot be changed from "
                    f"'{existing.get('location')}' to '{location}'.",
                    code="InvalidResourceLocation",
                )
            stored["location"] = self.normalise_location(location)
        tags = body.get("tags", {})
        if not isinstance(tags, dict):
            raise bad_request("'tags' must be an object of string values.")
        stored["tags"] = tags
        for optional in ("kind", "identity", "sku", "extendedLocation"):
            if optional in body:
                stored[optional] = body[optional]
        properties = body.get("properties", {})
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise bad_request("'properties' must be an object.")
        stored["properties"] = self.build_properties(state, path, resource_id, properties, existing)
        return stored

    def normalise_location(self, location: str) -> str:
        return _region(location)

    def build_properties(
        self,
        state: AzureState,
        path: ArmPath,
        resource_id: str,
        properties: dict[str, Any],
        existing: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return properties

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        return resource

    def on_committed(
        self, state: AzureState, resource_id: str, previous: dict[str, Any] | None
    ) -> None:
        """Side effects once a write has finished (at once, or when its operation completes)."""

    def check_delete(self, state: AzureState, resource_id: str, options: dict[str, str]) -> None:
        """Raise to refuse a DELETE (e.g. a DCE still in a private link scope)."""

    def on_deleted(
        self,
        state: AzureState,
        stored: dict[str, Any],
        options: dict[str, str],
        extra: dict[str, Any],
    ) -> None:
        """Side effects after the resource is gone."""

    # -- small helpers -------------------------------------------------------------------------

    def set_state(self, stored: dict[str, Any], state_name: str) -> None:
        if self.put_lro == "network" and state_name == "Creating":
            state_name = "Updating"  # Microsoft.Network reports "Updating" for creates too.
        stored.setdefault("properties", {})["provisioningState"] = state_name

    def put_accepted_status(self, created: bool) -> int:
        if self.put_lro in ("privatedns", "insights"):
            return 202
        return 201 if created else 200

    def new_etag(self) -> str:
        value = str(uuid.uuid4())
        if self.etag_style == "weak":
            return f'W/"{value}"'
        if self.etag_style == "quoted":
            return f'"{value}"'
        return value

    def not_found(self, path: ArmPath) -> Exception:
        group = path.resource_group or ""
        return _error(
            404,
            "ResourceNotFound",
            f"The Resource '{self.type_name}/{'/'.join(path.names)}' under resource group "
            f"'{group}' was not found. For more details please go to "
            "https://aka.ms/ARMResourceNotFoundFix",
        )


def _require_id(
    state: AzureState,
    value: Any,
    *,
    field: str,
    type_key: str | tuple[str, ...],
    code: str = "InvalidResourceReference",
) -> str:
    """A referenced id must be well formed, of the expected type, and exist."""
    if not isinstance(value, str) or parse_path(value) is None:
        raise bad_request(
            f"Property '{field}' is not a valid resource id: {value!r}.",
            code="LinkedInvalidPropertyId",
        )
    path = parse_path(value)
    assert path is not None
    wanted = (type_key,) if isinstance(type_key, str) else type_key
    if path.type_key not in wanted:
        raise bad_request(
            f"Property '{field}' must reference a resource of type {' or '.join(wanted)}; "
            f"got '{value}'.",
            code="LinkedInvalidPropertyId",
        )
    stored = state.stored(value)
    if stored is None:
        raise bad_request(f"Resource '{value}' referenced by '{field}' was not found.", code=code)
    return stored["id"]


# ========================================================================================= basics


class _Container(ResourceKind):
    writable = False
    tracked = False
    system_data = False
    etag_style = None


class Subscriptions(_Container):
    type_name = "subscriptions"


class ResourceGroups(_Container):
    type_name = "resourceGroups"


class _ReadOnly(ResourceKind):
    """Types that exist in the scenario but that our tool only reads."""

    writable = False


class ManagedClusters(_ReadOnly):
    type_name = "Microsoft.ContainerService/managedClusters"
    api_versions = apiversions.CONTAINER_SERVICE
    etag_style = None


class VirtualNetworks(_ReadOnly):
    type_name = "Microsoft.Network/virtualNetworks"
    api_versions = apiversions.NETWORK
    etag_style = "weak"
    system_data = False

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        subnets = state.children(resource["id"], SUBNETS.type_key)
        resource["properties"]["subnets"] = [SUBNETS.render(state, dict(s)) for s in subnets]
        return resource


class Subnets(_ReadOnly):
    type_name = "Microsoft.Network/virtualNetworks/subnets"
    api_versions = apiversions.NETWORK
    etag_style = "weak"
    system_data = False
    location_required = False
    tracked = False

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        endpoints = [
            {"id": pe["id"]}
            for pe in state.of_type(PRIVATE_ENDPOINTS.type_key)
            if normalize(pe["properties"].get("subnet", {}).get("id", ""))
            == normalize(resource["id"])
        ]
        if endpoints:
            resource["properties"]["privateEndpoints"] = endpoints
        return resource


class NetworkInterfaces(_ReadOnly):
    type_name = "Microsoft.Network/networkInterfaces"
    api_versions = apiversions.NETWORK
    etag_style = "weak"
    system_data = False


class MonitorAccounts(_ReadOnly):
    """The Azure Monitor workspace; its query endpoint is served by the sandbox's ARM server."""

    type_name = "Microsoft.Monitor/accounts"
    api_versions = apiversions.MONITOR_ACCOUNTS

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        metrics = resource["properties"].get("metrics") or {}
        endpoint = metrics.get("prometheusQueryEndpoint")
        if isinstance(endpoint, str):
            # Stored with a placeholder: the server's port is known only once it listens.
            metrics["prometheusQueryEndpoint"] = endpoint.replace("{arm_url}", state.arm_url)
        return resource


class Grafana(_ReadOnly):
    type_name = "Microsoft.Dashboard/grafana"
    api_versions = apiversions.GRAFANA


# ============================================================================ data collection (DCE)


class DataCollectionEndpoints(ResourceKind):
    """``Microsoft.Insights/dataCollectionEndpoints``: synchronous; endpoints follow the name."""

    type_name = "Microsoft.Insights/dataCollectionEndpoints"
    api_versions = apiversions.DATA_COLLECTION

    def build_properties(self, state, path, resource_id, properties, existing):  # type: ignore[no-untyped-def]
        kept = {
            key: value for key, value in properties.items() if key in ("description", "networkAcls")
        }
        acls = kept.setdefault("networkAcls", {"publicNetworkAccess": "Enabled"})
        access = acls.get("publicNetworkAccess", "Enabled")
        if access not in ("Enabled", "Disabled", "SecuredByPerimeter"):
            raise bad_request(
                f"networkAcls.publicNetworkAccess '{access}' is not valid.", code="InvalidPayload"
            )
        if existing is not None:
            kept["immutableId"] = existing["properties"]["immutableId"]
        else:
            kept["immutableId"] = f"dce-{uuid.uuid4().hex}"
        return kept

    def on_committed(self, state, resource_id, previous):  # type: ignore[no-untyped-def]
        meta = state.meta(resource_id)
        if "host_suffix" not in meta:
            meta["host_suffix"] = host_suffix(resource_id)

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        properties = resource["properties"]
        for role, host in dce_hosts(state, resource).items():
            properties[role] = {"endpoint": f"https://{host}"}
        properties["privateLinkScopedResources"] = [
            {"resourceId": scoped["id"], "scopeId": privatelink.scope_immutable_id(state, scope_id)}
            for scope_id, scoped in privatelink.scoped_links(state, resource["id"])
        ]
        properties.setdefault("metadata", {})
        return resource

    def check_delete(self, state, resource_id, options):  # type: ignore[no-untyped-def]
        scopes = state.scopes_of(resource_id)
        if scopes:
            raise _error(
                409,
                "Conflict",
                f"The data collection endpoint '{resource_id}' is linked to the Azure Monitor "
                f"Private Link Scope(s) {', '.join(scopes)}. Remove it from the scope first.",
            )


def host_suffix(resource_id: str) -> str:
    """The four characters ARM appends to a DCE's host names, stable per resource id."""
    digest = hashlib.sha256(normalize(resource_id).encode()).digest()
    alphabet = string.ascii_lowercase + string.digits
    return "".join(alphabet[b % len(alphabet)] for b in digest[:4])


def dce_hosts(state: AzureState, dce: dict[str, Any]) -> dict[str, str]:
    """A DCE's three host names: configuration access, logs ingestion and metrics ingestion."""
    meta = state.meta(dce["id"])
    suffix = meta.get("host_suffix") or host_suffix(dce["id"])
    prefix = f"{dce['name'].lower()}-{suffix}.{_region(dce.get('location'))}-1"
    return {
        "configurationAccess": f"{prefix}.handler.control.monitor.azure.com",
        "logsIngestion": f"{prefix}.ingest.monitor.azure.com",
        "metricsIngestion": f"{prefix}.metrics.ingest.monitor.azure.com",
    }


# ============================================================================ data collection (DCR)


class DataCollectionRules(ResourceKind):
    """``Microsoft.Insights/dataCollectionRules``: a PUT replaces the whole rule."""

    type_name = "Microsoft.Insights/dataCollectionRules"
    api_versions = apiversions.DATA_COLLECTION

    def build_properties(self, state, path, resource_id, properties, existing):  # type: ignore[no-untyped-def]
        kept = dict(properties)
        for read_only in ("provisioningState", "immutableId", "endpoints", "metadata"):
            kept.pop(read_only, None)
        endpoint = kept.get("dataCollectionEndpointId")
        if endpoint is not None:
            kept["dataCollectionEndpointId"] = _require_id(
                state,
                endpoint,
                field="properties.dataCollectionEndpointId",
                type_key=DATA_COLLECTION_ENDPOINTS.type_key,
                code="InvalidPayload",
            )
        destinations = kept.get("destinations") or {}
        for account in destinations.get("monitoringAccounts", []) or []:
            _require_id(
                state,
                account.get("accountResourceId"),
                field="properties.destinations.monitoringAccounts.accountResourceId",
                type_key=MONITOR_ACCOUNTS.type_key,
                code="InvalidPayload",
            )
        kept["immutableId"] = (
            existing["properties"]["immutableId"] if existing else f"dcr-{uuid.uuid4().hex}"
        )
        return kept

    def on_deleted(self, state, stored, options, extra):  # type: ignore[no-untyped-def]
        # ``?deleteAssociations=true`` (2023-03-11 and later) removes the rule's associations too.
        if str(options.get("deleteAssociations", "false")).lower() != "true":
            return
        for association in state.of_type(DCRA_TYPE):
            rule = association["properties"].get("dataCollectionRuleId")
            if rule and normalize(rule) == normalize(stored["id"]):
                state.remove_internal(association["id"])


def _associations_by(field: str) -> Callable[[AzureState, ArmPath], list[dict[str, Any]]]:
    def handler(state: AzureState, path: ArmPath) -> list[dict[str, Any]]:
        target = normalize(path.parent_id() or "")
        return [
            state.get(association["id"]) or association
            for association in state.of_type(DCRA_TYPE)
            if normalize(association["properties"].get(field) or "") == target
        ]

    return handler


class RuleAssociationsList(ResourceKind):
    """``.../dataCollectionRules/{name}/associations``: the rule's associations (list only)."""

    type_name = "Microsoft.Insights/dataCollectionRules/associations"
    api_versions = apiversions.DATA_COLLECTION
    writable = False
    tracked = False
    list_handler = staticmethod(_associations_by("dataCollectionRuleId"))


class EndpointAssociationsList(ResourceKind):
    """``.../dataCollectionEndpoints/{name}/associations``: the endpoint's associations."""

    type_name = "Microsoft.Insights/dataCollectionEndpoints/associations"
    api_versions = apiversions.DATA_COLLECTION
    writable = False
    tracked = False
    list_handler = staticmethod(_associations_by("dataCollectionEndpointId"))


class DataCollectionRuleAssociations(ResourceKind):
    """The extension resource binding a DCR (or, as ``configurationAccessEndpoint``, a DCE)."""

    type_name = "Microsoft.Insights/dataCollectionRuleAssociations"
    api_versions = apiversions.DATA_COLLECTION
    location_required = False
    tracked = False

    def build(self, state, path, resource_id, body, existing):  # type: ignore[no-untyped-def]
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The association must carry 'properties'.", code="InvalidPayload")
        rule = properties.get("dataCollectionRuleId")
        endpoint = properties.get("dataCollectionEndpointId")
        name = resource_id.rsplit("/", 1)[1].lower()
        kept: dict[str, Any] = {}
        if properties.get("description") is not None:
            kept["description"] = properties["description"]
        if name == CONFIGURATION_ACCESS_ENDPOINT:
            # Only the configuration access association names an endpoint, and nothing else.
            if rule:
                raise bad_request(
                    "The association 'configurationAccessEndpoint' must reference a data "
                    "collection "
                    "endpoint only; 'dataCollectionRuleId' is not allowed.",
                    code="InvalidPayload",
                )
            if not endpoint:
                raise bad_request(
                    "The association 'configurationAccessEndpoint' must specify "
                    "'dataCollectionEndpointId'.",
                    code="InvalidPayload",
                )
            kept["dataCollectionEndpointId"] = _require_id(
                state,
                endpoint,
                field="properties.dataCollectionEndpointId",
                type_key=DATA_COLLECTION_ENDPOINTS.type_key,
                code="InvalidPayload",
            )
        else:
            if endpoint:
                raise bad_request(
                    "A data collection endpoint can only be associated through an association "
                    "named "
                    "'configurationAccessEndpoint'.",
                    code="InvalidPayload",
                )
            if not rule:
                raise bad_request(
                    "The association must specify 'dataCollectionRuleId'.", code="InvalidPayload"
                )
            kept["dataCollectionRuleId"] = _require_id(
                state,
                rule,
                field="properties.dataCollectionRuleId",
                type_key=DATA_COLLECTION_RULES.type_key,
                code="InvalidPayload",
            )
        return {"properties": kept}

    def not_found(self, path: ArmPath) -> Exception:
        return _error(
            404,
            "ResourceNotFound",
            f"The data collection rule association '{path.names[-1]}' was not found on "
            f"'{path.scope}'.",
        )


# ========================================================================================== AMPLS


class PrivateLinkScopes(ResourceKind):
    """``Microsoft.Insights/privateLinkScopes`` (AMPLS): synchronous PUT, long-running DELETE."""

    type_name = "Microsoft.Insights/privateLinkScopes"
    api_versions = apiversions.PRIVATE_LINK_SCOPES
    delete_lro = "insights"

    def normalise_location(self, location: str) -> str:
        if location.lower() != "global":
            raise bad_request(
                f"The location '{location}' is not valid for an Azure Monitor Private Link Scope; "
                "use 'global'.",
                code="InvalidLocation",
            )
        return "Global"

    def build_properties(self, state, path, resource_id, properties, existing):  # type: ignore[no-untyped-def]
        settings = properties.get("accessModeSettings")
        if not isinstance(settings, dict):
            raise bad_request(
                "The property 'accessModeSettings' is required.", code="InvalidPayload"
            )
        for mode in ("ingestionAccessMode", "queryAccessMode"):
            if settings.get(mode) not in ("Open", "PrivateOnly"):
                raise bad_request(
                    f"accessModeSettings.{mode} must be 'Open' or 'PrivateOnly'.",
                    code="InvalidPayload",
                )
        return {
            "accessModeSettings": {
                "ingestionAccessMode": settings["ingestionAccessMode"],
                "queryAccessMode": settings["queryAccessMode"],
                "exclusions": settings.get("exclusions") or [],
            }
        }

    def on_committed(self, state, resource_id, previous):  # type: ignore[no-untyped-def]
        state.meta(resource_id).setdefault("immutable_id", str(uuid.uuid4()))
        privatelink.write_private_link_resource(state, resource_id)

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        resource["properties"]["privateEndpointConnections"] = privatelink.endpoint_connections(
            state, resource["id"]
        )
        return resource


class ScopedResources(ResourceKind):
    """``privateLinkScopes/{s}/scopedResources/{name}``: long-running PUT and DELETE."""

    type_name = "Microsoft.Insights/privateLinkScopes/scopedResources"
    api_versions = apiversions.PRIVATE_LINK_SCOPES
    location_required = False
    tracked = False
    put_lro = "insights"
    delete_lro = "insights"

    def build(self, state, path, resource_id, body, existing):  # type: ignore[no-untyped-def]
        properties = body.get("properties")
        if not isinstance(properties, dict) or not properties.get("linkedResourceId"):
            raise bad_request("The property 'linkedResourceId' is required.", code="InvalidPayload")
        linked = _require_id(
            state,
            properties["linkedResourceId"],
            field="properties.linkedResourceId",
            type_key=privatelink.SCOPABLE_TYPES,
            code="InvalidPayload",
        )
        if existing is not None and normalize(
            existing["properties"]["linkedResourceId"]
        ) != normalize(linked):
            raise bad_request(
                "The linked resource of a scoped resource cannot be changed; delete and "
                "recreate it.",
                code="InvalidPayload",
            )
        scope_id = path.parent_id() or ""
        for sibling in state.children(scope_id, self.type_key):
            same_link = normalize(sibling["properties"]["linkedResourceId"]) == normalize(linked)
            if same_link and normalize(sibling["id"]) != normalize(resource_id):
                raise _error(
                    409,
                    "Conflict",
                    f"The resource '{linked}' is already in the scope as '{sibling['name']}'.",
                )
        if existing is None:
            memberships = [
                s for s in state.scopes_of(linked) if normalize(s) != normalize(scope_id)
            ]
            if len(memberships) >= privatelink.MAX_SCOPES_PER_RESOURCE:
                raise bad_request(
                    f"The resource '{linked}' is already linked to "
                    f"{privatelink.MAX_SCOPES_PER_RESOURCE} Azure Monitor Private Link Scopes, "
                    "the most a resource can join.",
                    code="InvalidPayload",
                )
        return {"properties": {"linkedResourceId": linked}}

    def on_committed(self, state, resource_id, previous):  # type: ignore[no-untyped-def]
        meta = state.meta(resource_id)
        meta.setdefault("ordinal", privatelink.next_ordinal())
        privatelink.refresh_scope(state, resource_id.rsplit("/scopedResources/", 1)[0])

    def on_deleted(self, state, stored, options, extra):  # type: ignore[no-untyped-def]
        scope_id = stored["id"].rsplit("/scopedResources/", 1)[0]
        if state.stored(scope_id) is not None:
            privatelink.refresh_scope(state, scope_id)


class PrivateLinkResources(_ReadOnly):
    type_name = "Microsoft.Insights/privateLinkScopes/privateLinkResources"
    api_versions = apiversions.PRIVATE_LINK_SCOPES
    location_required = False
    tracked = False
    system_data = False
    etag_style = None


class ScopeEndpointConnections(_ReadOnly):
    """``privateLinkScopes/{s}/privateEndpointConnections``: computed from the private endpoints."""

    type_name = "Microsoft.Insights/privateLinkScopes/privateEndpointConnections"
    api_versions = apiversions.PRIVATE_LINK_SCOPES
    tracked = False

    @staticmethod
    def _list(state: AzureState, path: ArmPath) -> list[dict[str, Any]]:
        return privatelink.endpoint_connections(state, path.parent_id() or "")

    @staticmethod
    def _get(state: AzureState, path: ArmPath) -> dict[str, Any] | None:
        for connection in privatelink.endpoint_connections(state, path.parent_id() or ""):
            if connection["name"].lower() == (path.name or "").lower():
                return connection
        return None

    list_handler = _list
    get_handler = _get


# ============================================================================ private endpoints


class PrivateEndpoints(ResourceKind):
    """``Microsoft.Network/privateEndpoints``: long-running; IPs allocated from the subnet."""

    type_name = "Microsoft.Network/privateEndpoints"
    api_versions = apiversions.NETWORK
    put_lro = "network"
    delete_lro = "network"
    etag_style = "weak"
    system_data = False

    def build_properties(self, state, path, resource_id, properties, existing):  # type: ignore[no-untyped-def]
        subnet = (properties.get("subnet") or {}).get("id")
        if not subnet:
            raise bad_request(
                "The private endpoint must specify 'properties.subnet.id'.",
                code="InvalidRequestFormat",
            )
        subnet = _require_id(state, subnet, field="properties.subnet.id", type_key=SUBNETS.type_key)
        if existing is not None and normalize(existing["properties"]["subnet"]["id"]) != normalize(
            subnet
        ):
            raise bad_request(
                "The subnet of an existing private endpoint cannot be changed.",
                code="CannotChangePrivateEndpointSubnet",
            )
        automatic = properties.get("privateLinkServiceConnections") or []
        manual = properties.get("manualPrivateLinkServiceConnections") or []
        if len(automatic) + len(manual) != 1:
            raise bad_request(
                "A private endpoint must have exactly one private link service connection.",
                code="InvalidRequestFormat",
            )
        connections = []
        for connection in [*automatic, *manual]:
            connection_properties = connection.get("properties") or {}
            target = _require_id(
                state,
                connection_properties.get("privateLinkServiceId"),
                field="privateLinkServiceConnections.properties.privateLinkServiceId",
                type_key=PRIVATE_LINK_SCOPES.type_key,
                code="PrivateLinkServiceNotFound",
            )
            groups = connection_properties.get("groupIds") or []
            if [g.lower() for g in groups] != ["azuremonitor"]:
                raise bad_request(
                    f"Group ids {groups} are not valid for '{target}'; an Azure Monitor Private "
                    "Link "
                    "Scope offers the single group 'azuremonitor'.",
                    code="PrivateEndpointInvalidGroupId",
                )
            connections.append(
                {
                    "name": connection.get("name") or path.names[-1],
                    "properties": {
                        "privateLinkServiceId": target,
                        "groupIds": ["azuremonitor"],
                        "requestMessage": connection_properties.get("requestMessage"),
                    },
                }
            )
        target = connections[0]["properties"]["privateLinkServiceId"]
        others = [
            pe
            for pe in privatelink.endpoints_of_scope(state, target)
            if normalize(pe["id"]) != normalize(resource_id)
        ]
        if len(others) >= privatelink.MAX_ENDPOINTS_PER_SCOPE:
            raise bad_request(
                f"The Azure Monitor Private Link Scope '{target}' already has "
                f"{privatelink.MAX_ENDPOINTS_PER_SCOPE} private endpoints, the most it can have.",
                code="PrivateLinkScopeEndpointLimitReached",
            )
        vnet_id = subnet.rsplit("/subnets/", 1)[0]
        vnet = state.stored(vnet_id) or {}
        kept = {
            "subnet": {"id": subnet},
            "privateLinkServiceConnections": connections if automatic else [],
            "manualPrivateLinkServiceConnections": connections if manual else [],
            "customDnsConfigs": [],
            "applicationSecurityGroups": properties.get("applicationSecurityGroups") or [],
            "ipConfigurations": properties.get("ipConfigurations") or [],
            "customNetworkInterfaceName": properties.get("customNetworkInterfaceName", ""),
            "_vnetLocation": _region(vnet.get("location")),
        }
        if existing is not None:
            kept["networkInterfaces"] = existing["properties"]["networkInterfaces"]
        else:
            nic_name = kept["customNetworkInterfaceName"] or f"{path.names[-1]}.nic.{uuid.uuid4()}"
            group_id = f"/subscriptions/{path.subscription}/resourceGroups/{path.resource_group}"
            group = state.stored(group_id)
            group_id = group["id"] if group else group_id
            kept["networkInterfaces"] = [
                {"id": f"{group_id}/providers/Microsoft.Network/networkInterfaces/{nic_name}"}
            ]
        return kept

    def build(self, state, path, resource_id, body, existing):  # type: ignore[no-untyped-def]
        stored = super().build(state, path, resource_id, body, existing)
        vnet_location = stored["properties"].pop("_vnetLocation", "")
        if vnet_location and vnet_location != stored["location"]:
            raise bad_request(
                f"The private endpoint's location '{stored['location']}' must match its virtual "
                f"network's location '{vnet_location}'.",
                code="InvalidResourceLocation",
            )
        return stored

    def on_committed(self, state, resource_id, previous):  # type: ignore[no-untyped-def]
        privatelink.refresh_endpoint(state, resource_id)

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        return privatelink.render_endpoint(state, resource)

    def on_deleted(self, state, stored, options, extra):  # type: ignore[no-untyped-def]
        for nic in stored["properties"].get("networkInterfaces", []):
            state.remove_internal(nic["id"])
        privatelink.release_endpoint(state, stored)


class PrivateDnsZoneGroups(ResourceKind):
    """``privateEndpoints/{pe}/privateDnsZoneGroups/{name}``: writes the endpoint's A records."""

    type_name = "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
    api_versions = apiversions.NETWORK
    put_lro = "network"
    delete_lro = "network"
    etag_style = "weak"
    system_data = False
    location_required = False
    tracked = False

    def build(self, state, path, resource_id, body, existing):  # type: ignore[no-untyped-def]
        properties = body.get("properties") or {}
        configs = properties.get("privateDnsZoneConfigs")
        if not isinstance(configs, list) or not configs:
            raise bad_request(
                "'privateDnsZoneConfigs' must list at least one zone.", code="InvalidRequestFormat"
            )
        if len(configs) > privatelink.MAX_ZONES_PER_GROUP:
            raise bad_request(
                f"A DNS zone group holds at most {privatelink.MAX_ZONES_PER_GROUP} zones.",
                code="PrivateDnsZoneGroupTooManyZones",
            )
        endpoint_id = path.parent_id() or ""
        for sibling in state.children(endpoint_id, self.type_key):
            if normalize(sibling["id"]) != normalize(resource_id):
                raise bad_request(
                    f"The private endpoint already has the DNS zone group '{sibling['name']}'; a "
                    "private endpoint holds one zone group.",
                    code="OnlyOnePrivateDnsZoneGroupPerPrivateEndpointAllowed",
                )
        kept = []
        seen: set[str] = set()
        for config in configs:
            zone_id = _require_id(
                state,
                (config.get("properties") or {}).get("privateDnsZoneId"),
                field="privateDnsZoneConfigs.properties.privateDnsZoneId",
                type_key=PRIVATE_DNS_ZONES.type_key,
            )
            zone_name = zone_id.rsplit("/", 1)[1].lower()
            if zone_name in seen:
                raise bad_request(
                    f"The zone '{zone_name}' appears twice.", code="DuplicatePrivateDnsZoneName"
                )
            seen.add(zone_name)
            kept.append(
                {
                    "name": config.get("name") or zone_name.replace(".", "-"),
                    "properties": {"privateDnsZoneId": zone_id},
                }
            )
        return {"properties": {"privateDnsZoneConfigs": kept}}

    def on_committed(self, state, resource_id, previous):  # type: ignore[no-untyped-def]
        privatelink.write_zone_group_records(state, resource_id)

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        return privatelink.render_zone_group(state, resource)

    def on_deleted(self, state, stored, options, extra):  # type: ignore[no-untyped-def]
        privatelink.delete_zone_group_records(state, extra)


# ============================================================================ private DNS


_ZONE_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class _PrivateDns(ResourceKind):
    api_versions = apiversions.PRIVATE_DNS
    put_lro = "privatedns"
    delete_lro = "privatedns"
    etag_style = "plain"
    system_data = False

    def normalise_location(self, location: str) -> str:
        if location.lower() != "global":
            raise bad_request(
                f"The location '{location}' is not valid; private DNS resources live in 'global'.",
                code="InvalidLocation",
            )
        return "global"


class PrivateDnsZones(_PrivateDns):
    """``Microsoft.Network/privateDnsZones``: 202 + Azure-AsyncOperation; an SOA record at ``@``."""

    type_name = "Microsoft.Network/privateDnsZones"

    def build_properties(self, state, path, resource_id, properties, existing):  # type: ignore[no-untyped-def]
        if not _ZONE_NAME.match(path.names[-1].lower()):
            raise bad_request(
                f"'{path.names[-1]}' is not a valid DNS zone name.", code="BadRequest"
            )
        internal = (existing or {}).get("properties", {}).get("internalId") or (
            f"ImZvbmUi{secrets.token_hex(8)}"
        )
        return {"internalId": internal}

    def on_committed(self, state, resource_id, previous):  # type: ignore[no-untyped-def]
        soa_id = f"{resource_id}/SOA/@"
        if state.stored(soa_id) is None:
            zone = resource_id.rsplit("/", 1)[1].lower()
            state.put_internal(
                soa_id,
                {
                    "id": soa_id,
                    "name": "@",
                    "type": "Microsoft.Network/privateDnsZones/SOA",
                    "properties": {
                        "metadata": {},
                        "ttl": 3600,
                        "fqdn": f"{zone}.",
                        "isAutoRegistered": False,
                        "soaRecord": {
                            "host": "azureprivatedns.net",
                            "email": "azureprivatedns-host.microsoft.com",
                            "serialNumber": 1,
                            "refreshTime": 3600,
                            "retryTime": 300,
                            "expireTime": 2419200,
                            "minimumTtl": 10,
                        },
                    },
                },
                SOA_RECORDS.type_key,
                normalize(resource_id),
            )

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        records = len(state.children(resource["id"], A_RECORDS.type_key)) + len(
            state.children(resource["id"], SOA_RECORDS.type_key)
        )
        links = state.children(resource["id"], VIRTUAL_NETWORK_LINKS.type_key)
        registering = [link for link in links if link["properties"].get("registrationEnabled")]
        resource["properties"].update(
            {
                "maxNumberOfRecordSets": 25000,
                "numberOfRecordSets": records,
                "maxNumberOfVirtualNetworkLinks": 1000,
                "numberOfVirtualNetworkLinks": len(links),
                "maxNumberOfVirtualNetworkLinksWithRegistration": 100,
                "numberOfVirtualNetworkLinksWithRegistration": len(registering),
            }
        )
        return resource

    def check_delete(self, state, resource_id, options):  # type: ignore[no-untyped-def]
        links = state.children(resource_id, VIRTUAL_NETWORK_LINKS.type_key)
        if links:
            raise _error(
                409,
                "Conflict",
                f"The private DNS zone '{resource_id.rsplit('/', 1)[1]}' still has virtual network "
                f"links ({', '.join(link['name'] for link in links)}); delete them first.",
            )


class VirtualNetworkLinks(_PrivateDns):
    """``privateDnsZones/{zone}/virtualNetworkLinks/{name}``: makes the zone answer for a VNet."""

    type_name = "Microsoft.Network/privateDnsZones/virtualNetworkLinks"
    tracked = False

    def build_properties(self, state, path, resource_id, properties, existing):  # type: ignore[no-untyped-def]
        vnet = _require_id(
            state,
            (properties.get("virtualNetwork") or {}).get("id"),
            field="properties.virtualNetwork.id",
            type_key=VIRTUAL_NETWORKS.type_key,
        )
        if existing is not None and normalize(
            existing["properties"]["virtualNetwork"]["id"]
        ) != normalize(vnet):
            raise bad_request("The virtual network of a link cannot be changed.", code="BadRequest")
        zone_id = path.parent_id() or ""
        zone_name = zone_id.rsplit("/", 1)[1].lower()
        for link in state.of_type(self.type_key):
            if normalize(link["id"]) == normalize(resource_id):
                continue
            if normalize(link["properties"]["virtualNetwork"]["id"]) != normalize(vnet):
                continue
            other_zone = link["id"].rsplit("/virtualNetworkLinks/", 1)[0]
            if other_zone.rsplit("/", 1)[1].lower() == zone_name:
                raise _error(
                    409,
                    "Conflict",
                    f"The virtual network '{vnet}' is already linked to a private DNS zone named "
                    f"'{zone_name}' ({other_zone}); a virtual network cannot be linked to two "
                    "zones "
                    "with the same name.",
                )
        registration = bool(properties.get("registrationEnabled", False))
        kept: dict[str, Any] = {
            "virtualNetwork": {"id": vnet},
            "registrationEnabled": registration,
        }
        policy = properties.get("resolutionPolicy")
        if policy is not None:
            if policy not in ("Default", "NxDomainRedirect"):
                raise bad_request(f"resolutionPolicy '{policy}' is not valid.", code="BadRequest")
            kept["resolutionPolicy"] = policy
        return kept

    def set_state(self, stored: dict[str, Any], state_name: str) -> None:
        super().set_state(stored, state_name)
        stored["properties"]["virtualNetworkLinkState"] = (
            "Completed" if state_name == "Succeeded" else "InProgress"
        )


class ARecords(ResourceKind):
    """``privateDnsZones/{zone}/A/{name}``: synchronous record sets with etags."""

    type_name = "Microsoft.Network/privateDnsZones/A"
    api_versions = apiversions.PRIVATE_DNS
    etag_style = "plain"
    system_data = False
    location_required = False
    tracked = False

    def build(self, state, path, resource_id, body, existing):  # type: ignore[no-untyped-def]
        properties = body.get("properties") or {}
        ttl = properties.get("ttl", 3600)
        if not isinstance(ttl, int) or not 0 <= ttl <= 2147483647:
            raise bad_request(f"TTL {ttl!r} is not valid.", code="BadRequest")
        records = properties.get("aRecords") or []
        kept_records = []
        for record in records:
            address = (record or {}).get("ipv4Address")
            try:
                ipaddress.IPv4Address(address)
            except (ipaddress.AddressValueError, ValueError):
                raise bad_request(
                    f"'{address}' is not a valid IPv4 address.", code="BadRequest"
                ) from None
            kept_records.append({"ipv4Address": address})
        kept = {
            "metadata": properties.get("metadata") or {},
            "ttl": ttl,
            "aRecords": kept_records,
        }
        return {"properties": kept}

    def render(self, state: AzureState, resource: dict[str, Any]) -> dict[str, Any]:
        zone = resource["id"].split("/privateDnsZones/", 1)[1].split("/", 1)[0].lower()
        name = resource["name"]
        resource["properties"]["fqdn"] = f"{zone}." if name == "@" else f"{name}.{zone}."
        resource["properties"].setdefault("isAutoRegistered", False)
        return resource

    def set_state(self, stored: dict[str, Any], state_name: str) -> None:
        # Record sets carry no provisioning state.
        stored.setdefault("properties", {})


class SoaRecords(ARecords):
    type_name = "Microsoft.Network/privateDnsZones/SOA"
    writable = False


class AllRecords(ResourceKind):
    """``privateDnsZones/{zone}/ALL``: every record set of a zone (list only)."""

    type_name = "Microsoft.Network/privateDnsZones/ALL"
    api_versions = apiversions.PRIVATE_DNS
    writable = False
    tracked = False

    @staticmethod
    def _list(state: AzureState, path: ArmPath) -> list[dict[str, Any]]:
        zone_id = path.parent_id() or ""
        records = state.children(zone_id, SOA_RECORDS.type_key) + state.children(
            zone_id, A_RECORDS.type_key
        )
        return [state.get(record["id"]) or record for record in records]

    list_handler = _list


# ============================================================================ registry

SUBSCRIPTIONS = Subscriptions()
RESOURCE_GROUPS = ResourceGroups()
MANAGED_CLUSTERS = ManagedClusters()
VIRTUAL_NETWORKS = VirtualNetworks()
SUBNETS = Subnets()
NETWORK_INTERFACES = NetworkInterfaces()
MONITOR_ACCOUNTS = MonitorAccounts()
GRAFANA = Grafana()
DATA_COLLECTION_ENDPOINTS = DataCollectionEndpoints()
DATA_COLLECTION_RULES = DataCollectionRules()
DATA_COLLECTION_RULE_ASSOCIATIONS = DataCollectionRuleAssociations()
PRIVATE_LINK_SCOPES = PrivateLinkScopes()
SCOPED_RESOURCES = ScopedResources()
PRIVATE_ENDPOINTS = PrivateEndpoints()
PRIVATE_DNS_ZONE_GROUPS = PrivateDnsZoneGroups()
PRIVATE_DNS_ZONES = PrivateDnsZones()
VIRTUAL_NETWORK_LINKS = VirtualNetworkLinks()
A_RECORDS = ARecords()
SOA_RECORDS = SoaRecords()

KINDS: dict[str, ResourceKind] = {
    kind.type_key: kind
    for kind in (
        SUBSCRIPTIONS,
        RESOURCE_GROUPS,
        MANAGED_CLUSTERS,
        VIRTUAL_NETWORKS,
        SUBNETS,
        NETWORK_INTERFACES,
        MONITOR_ACCOUNTS,
        GRAFANA,
        DATA_COLLECTION_ENDPOINTS,
        DATA_COLLECTION_RULES,
        RuleAssociationsList(),
        EndpointAssociationsList(),
        DATA_COLLECTION_RULE_ASSOCIATIONS,
        PRIVATE_LINK_SCOPES,
        SCOPED_RESOURCES,
        PrivateLinkResources(),
        ScopeEndpointConnections(),
        PRIVATE_ENDPOINTS,
        PRIVATE_DNS_ZONE_GROUPS,
        PRIVATE_DNS_ZONES,
        VIRTUAL_NETWORK_LINKS,
        A_RECORDS,
        SOA_RECORDS,
        AllRecords(),
    )
}


def kind_for(type_key: str, *, extension: bool) -> ResourceKind | None:
    """The kind answering a path; associations exist only as extension resources."""
    if extension:
        return KINDS.get(type_key) if type_key == DCRA_TYPE else None
    if type_key == DCRA_TYPE:
        return None
    return KINDS.get(type_key)
