"""Deleting what the project created, in reverse dependency order, and only what it owns.

Each task here undoes one *ensure* of the provision steps and returns one change record per object
it looked at: ``deleted`` (``would delete`` in a plan), ``unchanged`` when the object is not there,
or ``refused`` with the reason when the object is not the project's or something else still needs
it. Ownership is what provision wrote: the tag ``managed-by: aks-metrics-pipeline`` on Azure
resources, the association's description, and on Kubernetes objects the environment label or our
field manager.

The guards go further than ownership where a delete would reach beyond the project:

- a private DNS zone is deleted only when nothing but our records and our VNet link were in it;
  a zone that holds other records keeps our link too, since other private endpoints in the VNet
  resolve through it (``privatelink.blob.core.windows.net`` often serves other teams' storage);
- the AMPLS is deleted only when no other scoped resource or private endpoint uses it;
- a CRD is deleted only when no custom resource that is not ours still exists (deleting a CRD
  deletes every object of its kind in the cluster);
- the operator's namespace only when no workload that is not ours runs in it.

The rules' ``dataCollectionEndpointId`` is left as it is: the rules are not the project's, and the
value provision set is the runbook's, not an addition of ours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from kubernetes.dynamic.exceptions import NotFoundError
from prefect import task

from aksmetrics import ids
from aksmetrics.changes import Change, kubernetes_id, outcome
from aksmetrics.desired import (
    COLLECTOR_API_VERSION,
    COLLECTOR_KIND,
    CONFIGURATION_ASSOCIATION,
    POD_MONITOR_API_VERSION,
    POD_MONITOR_KIND,
    PRIVATE_LINK_SCOPE_API_VERSION,
    is_cert_manager_object,
    is_project_association,
    is_project_tagged,
    links_vnet,
    scoped_endpoints,
    webhook_certificate_target,
)
from aksmetrics.environment import ENVIRONMENT_LABEL, Environment
from tasks.azure_monitor import absent_as_none
from tasks.clients import (
    dynamic_client,
    get_settings,
    kube_request_options,
    monitor_client,
    network_client,
    private_dns_client,
    raw_json,
    resource_client,
)
from tasks.kubernetes_objects import api_resource, is_owned, list_objects, read_object
from tasks.network_dns import (
    ENDPOINT_KIND,
    LINK_KIND,
    ZONE_GROUP_KIND,
    ZONE_KIND,
    read_private_dns_zone,
    read_private_endpoint,
    read_virtual_network_links,
    read_zone_groups,
)
from tasks.private_link import (
    SCOPE_KIND,
    SCOPED_RESOURCE_KIND,
    read_private_link_scope,
    read_scoped_resources,
)
from tasks.retries import Observation, poll, service_errors
from tasks.steps import STEP, report

ASSOCIATION_KIND = "data collection rule association"
RULE_KIND = "data collection rule"

# What still needs an object before it may go: names of its users, empty when none.
InUse = Callable[[Environment, dict[str, Any]], list[str]]

# Record types every private DNS zone holds by itself.
_ZONE_OWN_RECORDS = frozenset({"SOA", "NS"})

# Kinds deleted last, in this order: the namespace takes whatever is left in it along.
_LAST_KINDS = ("CustomResourceDefinition", "Namespace")


def _not_ours_note(what: str) -> str:
    return f"{what} was not created by this project (no tag managed-by: aks-metrics-pipeline); kept"


# -- Azure --------------------------------------------------------------------------------------


@task(name="delete-configuration-association", **STEP)
def delete_configuration_association(env: Environment, *, plan: bool) -> list[Change]:
    """Delete the cluster's ``configurationAccessEndpoint`` association if this project wrote it."""
    association_id = env.configuration_association_id
    with service_errors(
        association_id, doing="reading the configurationAccessEndpoint association"
    ):
        found = absent_as_none(
            lambda: monitor_client(env).data_collection_rule_associations.get(
                env.cluster_id, CONFIGURATION_ASSOCIATION
            )
        )
    if found is None:
        return report(_absent("azure", ASSOCIATION_KIND, association_id))
    if not is_project_association(raw_json(found)):
        return report(
            Change(
                action="refused",
                plane="azure",
                kind=ASSOCIATION_KIND,
                resource_id=association_id,
                note="the association's description does not name this project; kept",
            )
        )
    if not plan:
        with service_errors(association_id, doing="deleting the association"):
            monitor_client(env).data_collection_rule_associations.delete(
                env.cluster_id, CONFIGURATION_ASSOCIATION
            )
    return report(_deleted("azure", ASSOCIATION_KIND, association_id, plan=plan))


def kept_rules(env: Environment) -> list[Change]:
    """The rules stay as they are; one record each says so, so that a teardown's table is whole."""
    return [
        Change(
            action="unchanged",
            plane="azure",
            kind=RULE_KIND,
            resource_id=env.rule_id(rule),
            note="not the project's: its dataCollectionEndpointId stays as provision set it",
        )
        for rule in env.data_collection_rules
    ]


@task(name="delete-private-endpoint", **STEP)
def delete_private_endpoint(env: Environment, *, plan: bool) -> list[Change]:
    """Delete the private endpoint's DNS zone groups (their A records go with them), then the
    endpoint itself."""
    endpoint = env.private_endpoint
    actual = read_private_endpoint(env)
    if actual is None:
        return report(_absent("azure", ENDPOINT_KIND, env.private_endpoint_id))
    if not is_project_tagged(actual):
        return report(
            Change(
                action="refused",
                plane="azure",
                kind=ENDPOINT_KIND,
                resource_id=env.private_endpoint_id,
                note=_not_ours_note("the private endpoint"),
            )
        )

    changes = []
    for group in read_zone_groups(env):
        name = group.get("name") or endpoint.zone_group
        group_id = group.get("id") or ids.private_dns_zone_group_id(env.private_endpoint_id, name)
        if not plan:
            with service_errors(group_id, doing="deleting the DNS zone group"):
                network_client(env).private_dns_zone_groups.begin_delete(
                    endpoint.resource_group, endpoint.name, name
                ).result()
        changes.append(_deleted("azure", ZONE_GROUP_KIND, group_id, plan=plan))

    if not plan:
        with service_errors(env.private_endpoint_id, doing="deleting the private endpoint"):
            network_client(env).private_endpoints.begin_delete(
                endpoint.resource_group, endpoint.name
            ).result()
    changes.append(_deleted("azure", ENDPOINT_KIND, env.private_endpoint_id, plan=plan))
    return report(*changes)


@task(name="delete-private-dns-zone", task_run_name="delete-private-dns-zone-{zone}", **STEP)
def delete_private_dns_zone(env: Environment, zone: str, *, plan: bool) -> list[Change]:
    """Delete our VNet link of the zone, then the zone itself if it is ours and nobody else uses it.

    Runs after the private endpoint is gone, so our A records have left the zone already; any record
    still there belongs to someone else's private endpoint, which this VNet reaches through the
    same link, so then the link and the zone both stay.
    """
    resource_group = env.private_dns.resource_group
    zone_id = env.zone_id(zone)
    actual = read_private_dns_zone(env, zone)
    if actual is None:
        return report(_absent("azure", ZONE_KIND, zone_id))

    others = _foreign_records(env, zone)
    if others:
        note = (
            f"holds records of other private endpoints ({', '.join(others[:5])}), which this VNet "
            f"resolves through the zone's link; zone and link kept"
        )
        return report(_refused("azure", ZONE_KIND, zone_id, note))

    changes = []
    remaining_links = []
    for link in read_virtual_network_links(env, zone):
        link_id = link.get("id") or ""
        if not (links_vnet(link, env.vnet_id) and is_project_tagged(link)):
            remaining_links.append(link)
            continue
        if not plan:
            with service_errors(link_id, doing=f"deleting the VNet link of {zone}"):
                private_dns_client(env).virtual_network_links.begin_delete(
                    resource_group, zone, ids.name_of(link_id)
                ).result()
        changes.append(_deleted("azure", LINK_KIND, link_id, plan=plan))

    if not is_project_tagged(actual):
        changes.append(_refused("azure", ZONE_KIND, zone_id, _not_ours_note("the zone")))
    elif remaining_links:
        names = ", ".join(ids.name_of(link.get("id") or "?") for link in remaining_links)
        changes.append(
            _refused("azure", ZONE_KIND, zone_id, f"still linked to other networks ({names}); kept")
        )
    else:
        if not plan:
            with service_errors(zone_id, doing=f"deleting the private DNS zone {zone}"):
                private_dns_client(env).private_zones.begin_delete(resource_group, zone).result()
        changes.append(_deleted("azure", ZONE_KIND, zone_id, plan=plan))
    return report(*changes)


def _foreign_records(env: Environment, zone: str) -> list[str]:
    """Record sets of ``zone`` that neither the zone itself nor our private endpoint wrote.

    In a plan the endpoint still exists, so the records its zone group wrote are left out by name:
    they are the ones that would go with it.
    """
    resource_group = env.private_dns.resource_group
    with service_errors(env.zone_id(zone), doing=f"listing the records of {zone}"):
        found = absent_as_none(
            lambda: list(private_dns_client(env).record_sets.list(resource_group, zone))
        )
    ours = _zone_group_record_names(env, zone)
    names = []
    for item in found or []:
        record = raw_json(item)
        record_type = str(record.get("type") or "").rsplit("/", 1)[-1].upper()
        name = str(record.get("name") or "")
        if record_type in _ZONE_OWN_RECORDS or name.lower() in ours:
            continue
        names.append(f"{name} ({record_type})")
    return names


def _zone_group_record_names(env: Environment, zone: str) -> set[str]:
    """The record names our endpoint's zone groups hold in ``zone`` (empty once it is deleted)."""
    names: set[str] = set()
    for group in read_zone_groups(env):
        for config in (group.get("properties") or {}).get("privateDnsZoneConfigs") or []:
            properties = config.get("properties") or {}
            if not ids.same_id(properties.get("privateDnsZoneId"), env.zone_id(zone)):
                continue
            for record in properties.get("recordSets") or []:
                name = str(record.get("recordSetName") or record.get("fqdn") or "")
                names.add(name.removesuffix(".").removesuffix(f".{zone}").lower())
    return names


@task(name="delete-private-link-scope", **STEP)
def delete_private_link_scope(env: Environment, *, plan: bool) -> list[Change]:
    """Take our endpoints out of the AMPLS, then delete the AMPLS if it is ours and now unused."""
    scope_id = env.private_link_scope_id
    scope = read_private_link_scope(env)
    if scope is None:
        return report(_absent("azure", SCOPE_KIND, scope_id))
    if not is_project_tagged(scope):
        return report(_refused("azure", SCOPE_KIND, scope_id, _not_ours_note("the AMPLS")))

    changes = []
    ours = {endpoint_id.lower() for _, endpoint_id in scoped_endpoints(env)}
    others = []
    for item in read_scoped_resources(env):
        linked = str((item.get("properties") or {}).get("linkedResourceId") or "")
        if linked.lower() not in ours:
            others.append(linked or item.get("id") or "?")
            continue
        scoped_id = item.get("id") or ""
        if not plan:
            with service_errors(scoped_id, doing=f"taking {ids.name_of(linked)} out of the AMPLS"):
                resource_client(env).resources.begin_delete_by_id(
                    scoped_id, api_version=PRIVATE_LINK_SCOPE_API_VERSION
                ).result()
        changes.append(
            _deleted("azure", SCOPED_RESOURCE_KIND, scoped_id, plan=plan, note=f"links {linked}")
        )

    connections = [
        connection
        for connection in (scope.get("properties") or {}).get("privateEndpointConnections") or []
        if not ids.same_id(
            ((connection.get("properties") or {}).get("privateEndpoint") or {}).get("id"),
            env.private_endpoint_id,
        )
    ]
    if others or connections:
        users = [ids.name_of(other) for other in others]
        users += [ids.name_of(str(connection.get("id") or "?")) for connection in connections]
        changes.append(
            _refused("azure", SCOPE_KIND, scope_id, f"still used by {', '.join(users)}; kept")
        )
        return report(*changes)

    if not plan:
        with service_errors(scope_id, doing="deleting the AMPLS"):
            resource_client(env).resources.begin_delete_by_id(
                scope_id, api_version=PRIVATE_LINK_SCOPE_API_VERSION
            ).result()
    changes.append(_deleted("azure", SCOPE_KIND, scope_id, plan=plan))
    return report(*changes)


# -- Kubernetes ---------------------------------------------------------------------------------


@task(name="delete-pod-monitor", **STEP)
def delete_pod_monitor(env: Environment, *, plan: bool) -> list[Change]:
    """Delete the PodMonitor through which ama-metrics scrapes the collector."""
    monitor = env.pod_monitor
    return report(
        delete_object(
            env,
            POD_MONITOR_API_VERSION,
            POD_MONITOR_KIND,
            monitor.namespace,
            monitor.name,
            plan=plan,
        )
    )


@task(name="delete-collector", **STEP)
def delete_collector(env: Environment, *, plan: bool) -> list[Change]:
    """Delete the collector and wait until it is gone; the objects the operator made for it
    (Deployment, Services) go with it through their owner references.

    The operator must still be running while its collector goes away (it may hold a finalizer), so
    the operator is only deleted after this wait.
    """
    collector = env.collector
    change = delete_object(
        env, COLLECTOR_API_VERSION, COLLECTOR_KIND, collector.namespace, collector.name, plan=plan
    )
    if change.action == "deleted":
        settings = get_settings()
        poll(
            lambda: _gone(
                read_object(
                    env, COLLECTOR_API_VERSION, COLLECTOR_KIND, collector.namespace, collector.name
                )
            ),
            what=f"collector {collector.namespace}/{collector.name} to be deleted",
            timeout=settings.operator_timeout,
            initial_delay=min(0.2, settings.wait_initial_delay),
            max_delay=settings.wait_max_delay,
        )
    return report(change)


def _gone(actual: dict[str, Any] | None) -> Observation[None]:
    if actual is None:
        return Observation(True, "gone")
    finalizers = (actual.get("metadata") or {}).get("finalizers") or []
    return Observation(False, f"still there (finalizers: {', '.join(finalizers) or 'none'})")


@task(name="delete-operator", **STEP)
def delete_operator(
    env: Environment, manifests: list[dict[str, Any]], *, plan: bool
) -> list[Change]:
    """Delete the operator's objects in the reverse of the manifest's order, CRDs and the namespace
    last, and the webhook certificate Secret we generated in place of cert-manager."""
    objects = [item for item in manifests if item and not is_cert_manager_object(item)]
    namespace, secret_name, _ = webhook_certificate_target(manifests)
    first = [item for item in reversed(objects) if item.get("kind") not in _LAST_KINDS]
    last = [item for kind in _LAST_KINDS for item in objects if item.get("kind") == kind]

    changes = []
    for item in first:
        changes.append(_delete_manifest(env, item, plan=plan))
    changes.append(delete_object(env, "v1", "Secret", namespace, secret_name, plan=plan))
    for item in last:
        changes.append(_delete_manifest(env, item, plan=plan))
    return report(*changes)


def _delete_manifest(env: Environment, manifest: dict[str, Any], *, plan: bool) -> Change:
    metadata = manifest.get("metadata") or {}
    kind = manifest["kind"]
    guards: dict[str, InUse] = {
        "CustomResourceDefinition": _crd_in_use,
        "Namespace": _namespace_in_use,
    }
    guard = guards.get(kind)
    return delete_object(
        env,
        manifest["apiVersion"],
        kind,
        metadata.get("namespace"),
        metadata["name"],
        plan=plan,
        in_use=guard,
    )


def delete_object(
    env: Environment,
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str,
    *,
    plan: bool,
    in_use: InUse | None = None,
) -> Change:
    """Delete one Kubernetes object if it is ours; ``in_use(env, actual)`` may name what still needs
    it, which keeps it."""
    identity = kubernetes_id(api_version, kind, namespace, name)
    actual = read_object(env, api_version, kind, namespace, name)
    if actual is None:
        return _absent("kubernetes", kind, identity)
    if not is_owned(actual, env):
        return _refused(
            "kubernetes",
            kind,
            identity,
            f"not created by this project (no label {ENVIRONMENT_LABEL}={env.name}); kept",
        )
    users = in_use(env, actual) if in_use else []
    if users:
        return _refused("kubernetes", kind, identity, f"still used by {', '.join(users[:5])}; kept")

    if not plan:
        resource = api_resource(env, api_version, kind)
        # An object gone meanwhile is what we wanted.
        with (
            service_errors(identity, doing=f"deleting {kind} {name}"),
            contextlib.suppress(NotFoundError),
        ):
            dynamic_client(env).delete(
                resource,
                name=name,
                namespace=namespace if resource.namespaced else None,
                body={"propagationPolicy": "Background"},
                **kube_request_options(),
            )
    note = "it finishes terminating in the background" if kind == "Namespace" and not plan else ""
    return _deleted("kubernetes", kind, identity, plan=plan, note=note)


def _crd_in_use(env: Environment, crd: dict[str, Any]) -> list[str]:
    """Objects of the CRD's kind that are not ours: deleting the CRD would delete them too."""
    spec = crd.get("spec") or {}
    group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
    versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served")]
    if not (group and kind and versions):
        return []
    found = list_objects(env, f"{group}/{versions[0]}", kind)
    return [_object_name(item) for item in found if not is_owned(item, env)]


def _namespace_in_use(env: Environment, namespace: dict[str, Any]) -> list[str]:
    """Workloads in the namespace that are neither ours nor made by the operator for a collector."""
    name = namespace["metadata"]["name"]
    users = []
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        for item in list_objects(env, "apps/v1", kind, namespace=name):
            owners = (item.get("metadata") or {}).get("ownerReferences") or []
            made_for_collector = any(owner.get("kind") == COLLECTOR_KIND for owner in owners)
            if not is_owned(item, env) and not made_for_collector:
                users.append(f"{kind} {_object_name(item)}")
    return users


def _object_name(item: dict[str, Any]) -> str:
    metadata = item.get("metadata") or {}
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata.get('name')}" if namespace else str(metadata.get("name"))


# -- records ------------------------------------------------------------------------------------


def _deleted(plane: Any, kind: str, resource_id: str, *, plan: bool, note: str = "") -> Change:
    return Change(
        action=outcome("delete", plan=plan),
        plane=plane,
        kind=kind,
        resource_id=resource_id,
        note=note,
    )


def _absent(plane: Any, kind: str, resource_id: str) -> Change:
    return Change(
        action="unchanged", plane=plane, kind=kind, resource_id=resource_id, note="not there"
    )


def _refused(plane: Any, kind: str, resource_id: str, note: str) -> Change:
    return Change(action="refused", plane=plane, kind=kind, resource_id=resource_id, note=note)
