"""The private endpoint to the AMPLS, its DNS zone group, the private DNS zones and VNet links.

With these in place the agent's names (``global.handler.control.monitor.azure.com``, each endpoint's
``…handler.control``, ``…ingest`` and ``…metrics.ingest``) resolve inside the VNet to the private
endpoint's addresses, so the agent's traffic never reaches the TLS-inspecting firewall.

- :func:`ensure_private_dns_zone` creates a zone that is missing and links it to the cluster's VNet
  unless some link already does (a VNet can be linked to a zone only once).
- :func:`ensure_private_endpoint` creates the endpoint in the private-endpoint subnet with a
  connection to the AMPLS (group ``azuremonitor``), and reports a connection awaiting approval.
- :func:`ensure_zone_group` gives the endpoint a DNS zone group naming every zone; the group writes
  the A records. An endpoint holds one zone group: one that exists under another name (for example
  ``deployedByPolicy``, made by the built-in Azure Policy) is adopted and completed, not fought.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from aksmetrics import ids
from aksmetrics.changes import Change, FieldDiff, outcome
from aksmetrics.desired import (
    connection_status,
    is_project_tagged,
    links_vnet,
    private_dns_zone,
    private_endpoint,
    private_endpoint_differences,
    virtual_network_link,
    zone_group,
    zone_group_missing_zones,
)
from aksmetrics.environment import Environment
from tasks.azure_monitor import absent_as_none
from tasks.clients import network_client, private_dns_client, raw_json
from tasks.retries import StepFailed, service_errors
from tasks.steps import STEP, report

ZONE_KIND = "private DNS zone"
LINK_KIND = "virtual network link"
ENDPOINT_KIND = "private endpoint"
ZONE_GROUP_KIND = "DNS zone group"


# -- private DNS zones and links ----------------------------------------------------------------


def read_private_dns_zone(env: Environment, zone: str) -> dict[str, Any] | None:
    with service_errors(env.zone_id(zone), doing=f"reading the private DNS zone {zone}"):
        found = absent_as_none(
            lambda: private_dns_client(env).private_zones.get(env.private_dns.resource_group, zone)
        )
    return raw_json(found) if found is not None else None


def read_virtual_network_links(env: Environment, zone: str) -> list[dict[str, Any]]:
    """The zone's virtual network links (empty when the zone does not exist)."""
    with service_errors(env.zone_id(zone), doing=f"listing the VNet links of {zone}"):
        found = absent_as_none(
            lambda: list(
                private_dns_client(env).virtual_network_links.list(
                    env.private_dns.resource_group, zone
                )
            )
        )
    return [raw_json(item) for item in found or []]


@task(name="ensure-private-dns-zone", task_run_name="ensure-private-dns-zone-{zone}", **STEP)
def ensure_private_dns_zone(
    env: Environment, zone: str, *, plan: bool, allow_adopt: bool
) -> list[Change]:
    """Ensure the private DNS zone exists and is linked to the cluster's VNet."""
    resource_group = env.private_dns.resource_group
    zone_id = env.zone_id(zone)
    changes = []

    if read_private_dns_zone(env, zone) is None:
        if not plan:
            with service_errors(zone_id, doing=f"creating the private DNS zone {zone}"):
                private_dns_client(env).private_zones.begin_create_or_update(
                    resource_group, zone, private_dns_zone()
                ).result()
        changes.append(
            Change(
                action=outcome("create", plan=plan),
                plane="azure",
                kind=ZONE_KIND,
                resource_id=zone_id,
            )
        )
        links: list[dict[str, Any]] = []
    else:
        changes.append(
            Change(action="unchanged", plane="azure", kind=ZONE_KIND, resource_id=zone_id)
        )
        links = read_virtual_network_links(env, zone)

    link_id = env.vnet_link_id(zone)
    linked = next((link for link in links if links_vnet(link, env.vnet_id)), None)
    if linked is not None:
        changes.append(
            Change(
                action="unchanged",
                plane="azure",
                kind=LINK_KIND,
                resource_id=linked.get("id") or link_id,
            )
        )
        return report(*changes)

    ours = next((link for link in links if ids.same_id(link.get("id"), link_id)), None)
    if ours is not None and not is_project_tagged(ours) and not allow_adopt:
        changes.append(
            Change(
                action="refused",
                plane="azure",
                kind=LINK_KIND,
                resource_id=link_id,
                fields=(
                    FieldDiff(
                        path="properties.virtualNetwork.id",
                        actual=((ours.get("properties") or {}).get("virtualNetwork") or {}).get(
                            "id"
                        ),
                        desired=env.vnet_id,
                    ),
                ),
                note="a link of this name links another VNet and was not created by this project; "
                "name ours with private_dns.link_name or rerun with allow_adopt",
            )
        )
        return report(*changes)

    if not plan:
        with service_errors(link_id, doing=f"linking {zone} to the cluster's VNet"):
            private_dns_client(env).virtual_network_links.begin_create_or_update(
                resource_group, zone, env.vnet_link_name, virtual_network_link(env)
            ).result()
    changes.append(
        Change(
            action=outcome("update" if ours is not None else "create", plan=plan),
            plane="azure",
            kind=LINK_KIND,
            resource_id=link_id,
        )
    )
    return report(*changes)


# -- the private endpoint -----------------------------------------------------------------------


def read_private_endpoint(env: Environment) -> dict[str, Any] | None:
    endpoint = env.private_endpoint
    with service_errors(env.private_endpoint_id, doing="reading the private endpoint"):
        found = absent_as_none(
            lambda: network_client(env).private_endpoints.get(
                endpoint.resource_group, endpoint.name
            )
        )
    return raw_json(found) if found is not None else None


@task(name="ensure-private-endpoint", **STEP)
def ensure_private_endpoint(env: Environment, *, plan: bool, allow_adopt: bool) -> list[Change]:
    """Ensure the private endpoint to the AMPLS (group ``azuremonitor``) in its subnet."""
    endpoint_id = env.private_endpoint_id
    desired = private_endpoint(env)
    actual = read_private_endpoint(env)

    if actual is None:
        written = _write_endpoint(env, desired, plan=plan)
        return report(
            Change(
                action=outcome("create", plan=plan),
                plane="azure",
                kind=ENDPOINT_KIND,
                resource_id=endpoint_id,
                note=_approval_note(written, env),
            )
        )

    fields = tuple(private_endpoint_differences(actual, env))
    if not fields:
        return report(
            Change(
                action="unchanged",
                plane="azure",
                kind=ENDPOINT_KIND,
                resource_id=endpoint_id,
                note=_approval_note(actual, env),
            )
        )
    owned = is_project_tagged(actual)
    if not owned and not allow_adopt:
        return report(
            Change(
                action="refused",
                plane="azure",
                kind=ENDPOINT_KIND,
                resource_id=endpoint_id,
                fields=fields,
                note="the private endpoint exists without the tag managed-by: "
                "aks-metrics-pipeline; rerun with allow_adopt to change it",
            )
        )
    body = {**desired, "tags": {**(actual.get("tags") or {}), **desired["tags"]}}
    written = _write_endpoint(env, body, plan=plan)
    return report(
        Change(
            action=outcome("update", plan=plan),
            plane="azure",
            kind=ENDPOINT_KIND,
            resource_id=endpoint_id,
            fields=fields,
            note=_approval_note(written, env) or ("" if owned else "adopted"),
        )
    )


def _write_endpoint(env: Environment, body: dict[str, Any], *, plan: bool) -> dict[str, Any] | None:
    if plan:
        return None
    endpoint = env.private_endpoint
    with service_errors(env.private_endpoint_id, doing="writing the private endpoint"):
        result = (
            network_client(env)
            .private_endpoints.begin_create_or_update(endpoint.resource_group, endpoint.name, body)
            .result()
        )
    return raw_json(result)


def _approval_note(endpoint: dict[str, Any] | None, env: Environment) -> str:
    """A note when the endpoint's connection to the AMPLS is not (yet) approved."""
    if endpoint is None:
        return ""
    status = connection_status(endpoint, env)
    if status in (None, "Approved"):
        return ""
    return (
        f"the connection to the AMPLS is {status}: an owner of the AMPLS must approve it under its "
        f"private endpoint connections"
    )


# -- the DNS zone group -------------------------------------------------------------------------


def read_zone_groups(env: Environment) -> list[dict[str, Any]]:
    """The private endpoint's DNS zone groups (empty when the endpoint does not exist)."""
    endpoint = env.private_endpoint
    with service_errors(env.private_endpoint_id, doing="listing the endpoint's DNS zone groups"):
        found = absent_as_none(
            lambda: list(
                network_client(env).private_dns_zone_groups.list(
                    endpoint.name, endpoint.resource_group
                )
            )
        )
    return [raw_json(item) for item in found or []]


@task(name="ensure-zone-group", **STEP)
def ensure_zone_group(env: Environment, *, plan: bool) -> list[Change]:
    """Ensure the private endpoint has a DNS zone group naming every private DNS zone.

    An existing group under another name is adopted: zones it lacks are added to it, its other
    zones stay. This is allowed without ``allow_adopt`` because an endpoint can hold only one zone
    group, so the alternative is to fight whoever made it (usually Azure Policy).
    """
    groups = read_zone_groups(env)
    ours = next(
        (group for group in groups if group.get("name") == env.private_endpoint.zone_group), None
    )
    group = ours or (groups[0] if groups else None)
    if group is None:
        _write_zone_group(env, env.private_endpoint.zone_group, zone_group(env), plan=plan)
        return report(
            Change(
                action=outcome("create", plan=plan),
                plane="azure",
                kind=ZONE_GROUP_KIND,
                resource_id=env.zone_group_id,
            )
        )

    name = group.get("name") or env.private_endpoint.zone_group
    group_id = group.get("id") or ids.private_dns_zone_group_id(env.private_endpoint_id, name)
    adopted = group is not ours
    note = f"adopted the endpoint's existing zone group {name!r}" if adopted else ""
    missing = zone_group_missing_zones(group, env)
    if not missing:
        return report(
            Change(
                action="adopted" if adopted else "unchanged",
                plane="azure",
                kind=ZONE_GROUP_KIND,
                resource_id=group_id,
                note=note,
            )
        )

    keep = list((group.get("properties") or {}).get("privateDnsZoneConfigs") or [])
    keep = [
        {
            "name": config.get("name"),
            "properties": {
                "privateDnsZoneId": (config.get("properties") or {}).get("privateDnsZoneId")
            },
        }
        for config in keep
    ]
    _write_zone_group(env, name, zone_group(env, keep=keep), plan=plan)
    return report(
        Change(
            action=outcome("update", plan=plan),
            plane="azure",
            kind=ZONE_GROUP_KIND,
            resource_id=group_id,
            fields=(
                FieldDiff(path="properties.privateDnsZoneConfigs", actual=None, desired=missing),
            ),
            note=note,
        )
    )


def _write_zone_group(env: Environment, name: str, body: dict[str, Any], *, plan: bool) -> None:
    if plan:
        return
    endpoint = env.private_endpoint
    if read_private_endpoint(env) is None:
        raise StepFailed(
            env.private_endpoint_id,
            "the private endpoint does not exist, so it cannot hold a DNS zone group",
            hint="run the private-endpoint step first",
        )
    group_id = ids.private_dns_zone_group_id(env.private_endpoint_id, name)
    with service_errors(group_id, doing="writing the DNS zone group"):
        network_client(env).private_dns_zone_groups.begin_create_or_update(
            endpoint.resource_group, endpoint.name, name, body
        ).result()
