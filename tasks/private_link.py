"""The Azure Monitor Private Link Scope (AMPLS) and the data collection endpoints scoped into it.

azure-mgmt-monitor 7 has no operations for private link scopes, so both are read and written by id
through ``ResourceManagementClient`` with the api-version in
:data:`aksmetrics.desired.PRIVATE_LINK_SCOPE_API_VERSION`; scoped resources are long-running
operations, which the SDK's poller follows.

A data collection endpoint counts as scoped when any scoped resource of the AMPLS links it, whatever
that scoped resource is called, so that endpoints added in the portal are not added a second time.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from aksmetrics import ids
from aksmetrics.changes import Change, outcome
from aksmetrics.desired import (
    PRIVATE_LINK_SCOPE_API_VERSION,
    diff,
    is_project_tagged,
    private_link_scope,
    scoped_endpoints,
    scoped_resource,
)
from aksmetrics.environment import Environment
from tasks.azure_monitor import absent_as_none
from tasks.clients import arm_get, raw_json, resource_client
from tasks.retries import service_errors
from tasks.steps import STEP, report

SCOPE_KIND = "private link scope"
SCOPED_RESOURCE_KIND = "private link scoped resource"


def read_private_link_scope(env: Environment) -> dict[str, Any] | None:
    """The AMPLS as ARM returns it, or None when it does not exist."""
    scope_id = env.private_link_scope_id
    with service_errors(scope_id, doing="reading the AMPLS"):
        found = absent_as_none(
            lambda: resource_client(env).resources.get_by_id(
                scope_id, api_version=PRIVATE_LINK_SCOPE_API_VERSION
            )
        )
    return raw_json(found) if found is not None else None


def read_scoped_resources(env: Environment) -> list[dict[str, Any]]:
    """The AMPLS's scoped resources (empty when the AMPLS does not exist)."""
    path = f"{env.private_link_scope_id}/scopedResources"
    with service_errors(env.private_link_scope_id, doing="listing the AMPLS's scoped resources"):
        found = arm_get(env, path, api_version=PRIVATE_LINK_SCOPE_API_VERSION)
    return list((found or {}).get("value") or [])


@task(name="ensure-private-link-scope", **STEP)
def ensure_private_link_scope(env: Environment, *, plan: bool, allow_adopt: bool) -> list[Change]:
    """Ensure the AMPLS exists with the environment's ingestion and query access modes."""
    scope_id = env.private_link_scope_id
    desired = private_link_scope(env)
    actual = read_private_link_scope(env)

    if actual is None:
        _write_scope(env, desired, plan=plan)
        return report(
            Change(
                action=outcome("create", plan=plan),
                plane="azure",
                kind=SCOPE_KIND,
                resource_id=scope_id,
            )
        )

    fields = tuple(diff(actual, desired, ignore=("tags",)))
    if not fields:
        return report(
            Change(action="unchanged", plane="azure", kind=SCOPE_KIND, resource_id=scope_id)
        )
    owned = is_project_tagged(actual)
    if not owned and not allow_adopt:
        return report(
            Change(
                action="refused",
                plane="azure",
                kind=SCOPE_KIND,
                resource_id=scope_id,
                fields=fields,
                note="the AMPLS exists without the tag managed-by: aks-metrics-pipeline; rerun "
                "with allow_adopt to change its access modes",
            )
        )
    # A PUT replaces the tags too: keep everyone's, add ours.
    body = {**desired, "tags": {**(actual.get("tags") or {}), **desired["tags"]}}
    _write_scope(env, body, plan=plan)
    return report(
        Change(
            action=outcome("update", plan=plan),
            plane="azure",
            kind=SCOPE_KIND,
            resource_id=scope_id,
            fields=fields,
            note="" if owned else "adopted: it was not created by this project",
        )
    )


def _write_scope(env: Environment, body: dict[str, Any], *, plan: bool) -> None:
    if plan:
        return
    with service_errors(env.private_link_scope_id, doing="writing the AMPLS"):
        resource_client(env).resources.begin_create_or_update_by_id(
            env.private_link_scope_id, body, api_version=PRIVATE_LINK_SCOPE_API_VERSION
        ).result()


@task(name="ensure-scoped-resources", **STEP)
def ensure_scoped_resources(env: Environment, *, plan: bool) -> list[Change]:
    """Ensure both data collection endpoints (configuration and ingestion) are scoped resources of
    the AMPLS; each missing one is added under the endpoint's name."""
    existing = read_scoped_resources(env)
    changes = []
    for scoped_id, endpoint_id in scoped_endpoints(env):
        holder = next(
            (
                item
                for item in existing
                if ids.same_id((item.get("properties") or {}).get("linkedResourceId"), endpoint_id)
            ),
            None,
        )
        if holder is not None:
            changes.append(
                Change(
                    action="unchanged",
                    plane="azure",
                    kind=SCOPED_RESOURCE_KIND,
                    resource_id=holder.get("id") or scoped_id,
                )
            )
            continue
        if not plan:
            with service_errors(
                scoped_id, doing=f"scoping {ids.name_of(endpoint_id)} into the AMPLS"
            ):
                resource_client(env).resources.begin_create_or_update_by_id(
                    scoped_id,
                    scoped_resource(endpoint_id),
                    api_version=PRIVATE_LINK_SCOPE_API_VERSION,
                ).result()
        changes.append(
            Change(
                action=outcome("create", plan=plan),
                plane="azure",
                kind=SCOPED_RESOURCE_KIND,
                resource_id=scoped_id,
                note=f"links {endpoint_id}",
            )
        )
    return report(*changes)
