"""Azure Monitor: data collection endpoints (DCE), rules (DCR), associations (DCRA), the workspace.

Two *ensures* from the runbook live here:

- :func:`ensure_rule_endpoint` makes a rule name its endpoint (``dataCollectionEndpointId``). We do
  not own the rules (the add-on and the workspace made them), so the rule is read whole, that one
  property changed, and the whole rule written back: a rule has no PATCH for its properties.
- :func:`ensure_configuration_association` puts the ``configurationAccessEndpoint`` association on
  the managed cluster, naming the configuration endpoint: without it the agent, reaching Azure
  Monitor over private link, is refused with 403 "Data collection endpoint must be used to access
  configuration over private link".

The reads (:func:`read_endpoint`, :func:`read_rule`, :func:`read_associations`) are shared with the
preflight and verify checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from azure.core.exceptions import ResourceNotFoundError
from prefect import task

from aksmetrics import ids
from aksmetrics.changes import Change, FieldDiff, outcome
from aksmetrics.desired import (
    CONFIGURATION_ASSOCIATION,
    configuration_association,
    is_project_association,
    rule_with_endpoint,
)
from aksmetrics.environment import DataCollectionRule, Environment
from tasks.clients import monitor_client, raw_json
from tasks.retries import StepFailed, service_errors
from tasks.steps import CHECK, STEP, report

T = TypeVar("T")


def absent_as_none(call: Callable[[], T]) -> T | None:
    """The call's result, or None when ARM answers 404."""
    try:
        return call()
    except ResourceNotFoundError:
        return None


def _raw_response(pipeline_response: Any, deserialized: Any, headers: Any) -> dict[str, Any]:
    """A ``cls`` hook that keeps the response's own JSON instead of the SDK model: a rule written
    back must keep every property, including ones this SDK version does not model."""
    return pipeline_response.http_response.json()  # type: ignore[no-any-return]


def read_endpoint(env: Environment, role: str) -> dict[str, Any] | None:
    """The data collection endpoint playing ``role`` (ARM JSON), or None when it does not exist."""
    endpoint = env.endpoint(role)
    with service_errors(env.endpoint_id(role), doing=f"reading the {role} endpoint"):
        found = absent_as_none(
            lambda: monitor_client(env).data_collection_endpoints.get(
                endpoint.resource_group, endpoint.name
            )
        )
    return raw_json(found) if found is not None else None


def read_rule(env: Environment, rule: DataCollectionRule) -> dict[str, Any] | None:
    """The data collection rule as ARM returns it (every property), or None when there is none."""
    with service_errors(env.rule_id(rule), doing="reading the data collection rule"):
        return absent_as_none(
            lambda: monitor_client(env).data_collection_rules.get(
                rule.resource_group, rule.name, cls=_raw_response
            )
        )


def read_associations(env: Environment) -> list[dict[str, Any]]:
    """Every data collection rule association on the managed cluster (ARM JSON)."""
    with service_errors(env.cluster_id, doing="listing the cluster's associations"):
        found = monitor_client(env).data_collection_rule_associations.list_by_resource(
            env.cluster_id
        )
        return [raw_json(item) for item in found]


def endpoint_host(endpoint: dict[str, Any] | None, access: str) -> str | None:
    """The host name of one of a DCE's endpoints: ``configurationAccess``, ``logsIngestion`` or
    ``metricsIngestion``."""
    url = (((endpoint or {}).get("properties") or {}).get(access) or {}).get("endpoint")
    return urlparse(url).hostname if url else None


@task(name="read-agent-endpoints", **CHECK)
def read_agent_endpoints(env: Environment) -> dict[str, str]:
    """The names the agent must resolve privately: the configuration endpoint's and the ingestion
    endpoint's hosts, and the global configuration handler."""
    names = {"global configuration handler": "global.handler.control.monitor.azure.com"}
    for role, access in (
        ("configuration", "configurationAccess"),
        ("ingestion", "metricsIngestion"),
    ):
        host = endpoint_host(read_endpoint(env, role), access)
        if host is None:
            raise StepFailed(
                env.endpoint_id(role),
                f"the {role} endpoint has no {access} endpoint (or does not exist)",
                hint="check the data collection endpoint in the portal",
            )
        names[f"{role} endpoint"] = host
    return names


@task(name="ensure-rule-endpoint", task_run_name="ensure-rule-endpoint-{rule.name}", **STEP)
def ensure_rule_endpoint(env: Environment, rule: DataCollectionRule, *, plan: bool) -> list[Change]:
    """Make the rule name the endpoint of its role in ``dataCollectionEndpointId``.

    Only that property is changed; the rule is written back whole. This is the one write to an
    object the project does not own that needs no permission: it is the runbook's fix.
    """
    rule_id = env.rule_id(rule)
    wanted = env.endpoint_id(rule.endpoint)
    actual = read_rule(env, rule)
    if actual is None:
        raise StepFailed(
            rule_id,
            "the data collection rule does not exist",
            hint="enable managed Prometheus on the cluster (it creates the rule) or fix the rule's "
            "name in data_collection_rules",
        )
    current = (actual.get("properties") or {}).get("dataCollectionEndpointId")
    if ids.same_id(current, wanted):
        return report(
            Change(
                action="unchanged", plane="azure", kind="data collection rule", resource_id=rule_id
            )
        )

    if not plan:
        body = json.dumps(rule_with_endpoint(actual, wanted)).encode()
        with service_errors(rule_id, doing="writing the rule back with its endpoint"):
            monitor_client(env).data_collection_rules.create(
                rule.resource_group, rule.name, body=body, content_type="application/json"
            )
    return report(
        Change(
            action=outcome("update", plan=plan),
            plane="azure",
            kind="data collection rule",
            resource_id=rule_id,
            fields=(
                FieldDiff(
                    path="properties.dataCollectionEndpointId", actual=current, desired=wanted
                ),
            ),
        )
    )


@task(name="ensure-configuration-association", **STEP)
def ensure_configuration_association(
    env: Environment, *, plan: bool, allow_adopt: bool
) -> list[Change]:
    """Ensure the cluster's ``configurationAccessEndpoint`` association names the config DCE."""
    association_id = env.configuration_association_id
    kind = "data collection rule association"
    wanted = configuration_association(env)
    with service_errors(
        association_id, doing="reading the configurationAccessEndpoint association"
    ):
        found = absent_as_none(
            lambda: monitor_client(env).data_collection_rule_associations.get(
                env.cluster_id, CONFIGURATION_ASSOCIATION
            )
        )
    actual = raw_json(found) if found is not None else None

    if actual is None:
        _write_association(env, wanted, plan=plan)
        return report(
            Change(
                action=outcome("create", plan=plan),
                plane="azure",
                kind=kind,
                resource_id=association_id,
            )
        )

    current = (actual.get("properties") or {}).get("dataCollectionEndpointId")
    desired_endpoint = wanted["properties"]["dataCollectionEndpointId"]
    if ids.same_id(current, desired_endpoint):
        return report(
            Change(action="unchanged", plane="azure", kind=kind, resource_id=association_id)
        )

    fields = (
        FieldDiff(
            path="properties.dataCollectionEndpointId", actual=current, desired=desired_endpoint
        ),
    )
    owned = is_project_association(actual)
    if not owned and not allow_adopt:
        return report(
            Change(
                action="refused",
                plane="azure",
                kind=kind,
                resource_id=association_id,
                fields=fields,
                note="the association names another endpoint and was not written by this project; "
                "rerun with allow_adopt to replace it",
            )
        )
    _write_association(env, wanted, plan=plan)
    return report(
        Change(
            action=outcome("update", plan=plan),
            plane="azure",
            kind=kind,
            resource_id=association_id,
            fields=fields,
            note="" if owned else "adopted: it was not created by this project",
        )
    )


def _write_association(env: Environment, body: dict[str, Any], *, plan: bool) -> None:
    if plan:
        return
    with service_errors(
        env.configuration_association_id,
        doing="writing the configurationAccessEndpoint association",
    ):
        monitor_client(env).data_collection_rule_associations.create(
            env.cluster_id,
            CONFIGURATION_ASSOCIATION,
            body=json.dumps(body).encode(),
            content_type="application/json",
        )
