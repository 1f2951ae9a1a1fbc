"""Discovery documents: what `/version`, `/api`, `/apis` and `/apis/{group}/{version}` answer.

Both forms are served: the legacy one (APIVersions, APIGroupList, APIResourceList), which the Python
client reads, and the aggregated one (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList), which kubectl
asks for first and which saves it one request per group version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sandbox.kube.resources import ResourceRegistry, ResourceType

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def wants_aggregated(accept: str) -> bool:
    """Whether a discovery request accepts the aggregated v2 document."""
    return any(
        "as=APIGroupDiscoveryList" in part and "v=v2" in part and "v=v2beta1" not in part
        for part in accept.split(",")
    )


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    groups = []
    for group, versions in registry.groups().items():
        if not group:
            continue
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        groups.append({"name": group, "versions": entries, "preferredVersion": entries[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(
    registry: ResourceRegistry, group: str, version: str
) -> dict[str, Any] | None:
    """The APIResourceList of one group version, or None when nothing is served there."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for resource_type in types:
        entry: dict[str, Any] = {
            "name": resource_type.plural,
            "singularName": resource_type.singular,
            "namespaced": resource_type.namespaced,
            "kind": resource_type.kind,
            "verbs": resource_type.verbs,
        }
        if resource_type.short_names:
            entry["shortNames"] = resource_type.short_names
        if resource_type.categories:
            entry["categories"] = resource_type.categories
        resources.append(entry)
        for sub in resource_type.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{resource_type.plural}/{sub.name}",
                "singularName": "",
                "namespaced": resource_type.namespaced,
                "kind": sub.kind or resource_type.kind,
                "verbs": sub.verbs,
            }
            if sub.group is not None:
                sub_entry["group"], sub_entry["version"] = sub.group, sub.version
            resources.append(sub_entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _aggregated_resource(resource_type: ResourceType, version: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource_type.plural,
        "responseKind": {
            "group": resource_type.group,
            "version": version,
            "kind": resource_type.kind,
        },
        "scope": "Namespaced" if resource_type.namespaced else "Cluster",
        "singularResource": resource_type.singular,
        "verbs": resource_type.verbs,
    }
    if resource_type.short_names:
        entry["shortNames"] = resource_type.short_names
    if resource_type.categories:
        entry["categories"] = resource_type.categories
    if resource_type.subresources:
        entry["subresources"] = [
            {
                "subresource": sub.name,
                "responseKind": {
                    "group": sub.group if sub.group is not None else resource_type.group,
                    "version": sub.version if sub.version is not None else version,
                    "kind": sub.kind or resource_type.kind,
                },
                "verbs": sub.verbs,
            }
            for sub in resource_type.subresources
        ]
    return entry


def aggregated(registry: ResourceRegistry, *, core: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList of `/api` (core=True) or `/apis`."""
    items = []
    for group, versions in registry.groups().items():
        if (group == "") != core:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": version,
                        "resources": [
                            _aggregated_resource(t, version)
                            for t in registry.in_group_version(group, version)
                        ],
                        "freshness": "Current",
                    }
                    for version in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


# -- OpenAPI v3 ---------------------------------------------------------------------------------
#
# kubectl (apply, create, replace, patch) validates manifests on the server with
# `fieldValidation=Strict` when the group version's OpenAPI v3 document shows a PATCH operation with
# that parameter for the kind; otherwise it falls back to client-side validation, which needs full
# schemas. The sandbox publishes just those PATCH operations, so kubectl validates on the server.


def _group_version_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_index(registry: ResourceRegistry) -> dict[str, Any]:
    """`/openapi/v3`: where each group version's document is."""
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            document = openapi_v3_document(registry, group, version)
            digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()
            path = _group_version_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest[:64].upper()}"}
    return {"paths": paths}


def openapi_v3_document(
    registry: ResourceRegistry, group: str, version: str
) -> dict[str, Any] | None:
    """A group version's OpenAPI v3 document, reduced to its resources' PATCH operations."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = "/" + _group_version_path(group, version)
    paths: dict[str, Any] = {}
    for resource_type in types:
        scope = "/namespaces/{namespace}" if resource_type.namespaced else ""
        paths[f"{prefix}{scope}/{resource_type.plural}/{{name}}"] = {
            "patch": {
                "operationId": f"patch{resource_type.kind}",
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {
                    "group": group,
                    "version": version,
                    "kind": resource_type.kind,
                },
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string"}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
        "paths": paths,
    }
