"""Preflight: read-only checks that must hold before provision writes anything.

Each check returns the problems it found as sentences that say what is missing and how to fix it,
so that one preflight run lists everything wrong at once; the flow stops when any check has a
problem. The checks:

- :func:`check_azure_credentials`: a token for ARM can be obtained;
- :func:`check_azure_prerequisites`: the cluster, the VNet and both subnets, the workspace, both
  data collection endpoints and every rule exist; the configuration endpoint is in the cluster's
  region; and the AMPLS limits hold (one AMPLS per VNet, ten private endpoints per AMPLS, five
  AMPLS per resource);
- :func:`check_kubernetes_api`: the Kubernetes API server answers.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from kubernetes import client as kube
from prefect import task

from aksmetrics import ids
from aksmetrics.environment import Environment
from tasks.azure_monitor import absent_as_none, read_endpoint, read_rule
from tasks.clients import (
    azure_credential,
    kubernetes_client,
    network_client,
    raw_json,
    resource_client,
)
from tasks.private_link import read_private_link_scope
from tasks.retries import describe_error, is_transient
from tasks.steps import CHECK, concurrently

# api-versions for reads by id of types no SDK we use covers.
MANAGED_CLUSTER_API_VERSION = "2024-05-01"
MONITOR_WORKSPACE_API_VERSION = "2023-04-03"

# Azure Monitor private link limits (Azure Monitor service limits, private link section).
MAX_PRIVATE_ENDPOINTS_PER_SCOPE = 10
MAX_SCOPES_PER_RESOURCE = 5


@task(name="check-azure-credentials", **CHECK)
def check_azure_credentials(env: Environment) -> list[str]:
    """The credential of ``env.auth`` obtains a token for ARM."""
    scope = env.cloud.resolved_credential_scope()
    try:
        azure_credential(env).get_token(scope)
    except ClientAuthenticationError as error:
        return [
            f"no Azure token for {scope} with auth method {env.auth.method!r}: "
            f"{_first_line(error.message or str(error))} — check auth (tenant, client id, secret) "
            f"and cloud.authority_host in the environment file"
        ]
    except RuntimeError as error:  # a secret reference that cannot be read
        return [str(error)]
    return []


@task(name="check-azure-prerequisites", **CHECK)
def check_azure_prerequisites(env: Environment) -> list[str]:
    """Everything provision builds on exists, the configuration endpoint's region fits the cluster,
    and the AMPLS limits leave room for this environment."""
    # The reads are independent of each other: they go out side by side.
    parts = concurrently(
        lambda check: check(env),
        [_check_cluster, _check_network_exists, _check_workspace, _check_endpoints, _check_rules],
    )
    return [problem for part in parts for problem in part]


def _check_cluster(env: Environment) -> list[str]:
    problems: list[str] = []
    cluster = _read_by_id(
        env, env.cluster_id, MANAGED_CLUSTER_API_VERSION, problems, "the AKS cluster"
    )
    cluster_region = (cluster or {}).get("location") or env.location
    if cluster is not None and cluster_region.lower() != env.location.lower():
        problems.append(
            f"{env.cluster_id}: the cluster is in {cluster_region!r} but the environment says "
            f"location {env.location!r}; fix location"
        )
    return problems


def _check_network_exists(env: Environment) -> list[str]:
    problems: list[str] = []
    _check_network(env, problems)
    return problems


def _check_workspace(env: Environment) -> list[str]:
    problems: list[str] = []
    _read_by_id(
        env,
        env.monitor_workspace_id,
        MONITOR_WORKSPACE_API_VERSION,
        problems,
        "the Azure Monitor workspace",
    )
    return problems


def _check_endpoints(env: Environment) -> list[str]:
    """Both endpoints exist, the configuration endpoint is in the cluster's region (the cluster
    check proves the environment's location is the cluster's), and the AMPLS limits hold."""
    problems: list[str] = []
    endpoints: dict[str, dict[str, Any]] = {}
    for role, _ in env.distinct_endpoints():
        found = _guarded(
            problems, env.endpoint_id(role), lambda role=role: read_endpoint(env, role)
        )
        if found is None:
            if not _failed(problems, env.endpoint_id(role)):
                problems.append(
                    f"{env.endpoint_id(role)}: the {role} data collection endpoint does not "
                    f"exist — create it (az monitor data-collection endpoint create) or fix its "
                    f"name"
                )
            continue
        endpoints[env.endpoint_id(role).lower()] = found
    configuration = endpoints.get(env.endpoint_id("configuration").lower())
    if configuration is not None:
        region = str(configuration.get("location") or "")
        if region.lower().replace(" ", "") != env.location.lower().replace(" ", ""):
            problems.append(
                f"{env.endpoint_id('configuration')}: the configuration endpoint is in "
                f"{region!r}, the cluster in {env.location!r}; the agent fetches its "
                f"configuration only through an endpoint in its own region — create one in "
                f"{env.location!r}"
            )
    problems.extend(_private_link_limits(env, endpoints))
    return problems


def _check_rules(env: Environment) -> list[str]:
    problems: list[str] = []
    for rule in env.data_collection_rules:
        rule_id = env.rule_id(rule)
        if _guarded(
            problems, rule_id, lambda rule=rule: read_rule(env, rule)
        ) is None and not _failed(problems, rule_id):
            problems.append(
                f"{rule_id}: the data collection rule does not exist — enable managed Prometheus "
                f"on the cluster (it creates the rule) or fix its name in data_collection_rules"
            )
    return problems


def _check_network(env: Environment, problems: list[str]) -> None:
    network = env.network
    vnet = _guarded(
        problems,
        env.vnet_id,
        lambda: absent_as_none(
            lambda: network_client(env).virtual_networks.get(network.resource_group, network.vnet)
        ),
    )
    if vnet is None:
        if not _failed(problems, env.vnet_id):
            problems.append(f"{env.vnet_id}: the cluster's VNet does not exist — fix network.vnet")
        return
    subnets = {
        str(subnet.get("name", "")).lower()
        for subnet in (raw_json(vnet).get("properties") or {}).get("subnets") or []
    }
    for key, name, subnet_id in (
        ("network.aks_subnet", network.aks_subnet, env.aks_subnet_id),
        (
            "network.private_endpoint_subnet",
            network.private_endpoint_subnet,
            env.private_endpoint_subnet_id,
        ),
    ):
        if name.lower() not in subnets:
            problems.append(
                f"{subnet_id}: the subnet does not exist in the VNet — create it or fix {key}"
            )


def _private_link_limits(env: Environment, endpoints: dict[str, dict[str, Any]]) -> list[str]:
    """One AMPLS per VNet, ten private endpoints per AMPLS, five AMPLS per endpoint."""
    problems: list[str] = []
    scope_id = env.private_link_scope_id

    # Another AMPLS reached from this VNet would fight ours over the same privatelink DNS names.
    try:
        others = sorted(
            {
                target
                for endpoint in network_client(env).private_endpoints.list_by_subscription()
                for target in _scope_targets(raw_json(endpoint), env.vnet_id)
                if not ids.same_id(target, scope_id)
            }
        )
    except HttpResponseError as error:
        return [_describe(env.vnet_id, "listing private endpoints", error)]
    for other in others:
        problems.append(
            f"{env.vnet_id}: the VNet already reaches the AMPLS {other} through a private "
            f"endpoint; a VNet (and the DNS it uses) can serve only one AMPLS — add this "
            f"environment's endpoints to that AMPLS (set private_link_scope to it) or remove its "
            f"private endpoint"
        )

    scope = _guarded(problems, scope_id, lambda: read_private_link_scope(env))
    if scope is not None:
        connections = (scope.get("properties") or {}).get("privateEndpointConnections") or []
        ours = any(
            ids.same_id(
                ((item.get("properties") or {}).get("privateEndpoint") or {}).get("id"),
                env.private_endpoint_id,
            )
            for item in connections
        )
        if len(connections) >= MAX_PRIVATE_ENDPOINTS_PER_SCOPE and not ours:
            problems.append(
                f"{scope_id}: the AMPLS already has {len(connections)} private endpoints, the most "
                f"it can have; connect this VNet through an existing one or use another AMPLS"
            )

    for endpoint_id, endpoint in endpoints.items():
        scopes = (endpoint.get("properties") or {}).get("privateLinkScopedResources") or []
        # Each entry names a scoped resource (below its AMPLS's id) and the AMPLS.
        in_ours = any(
            ids.same_id(item.get("scopeId"), scope_id)
            or str(item.get("resourceId") or "").lower().startswith(scope_id.lower() + "/")
            for item in scopes
        )
        if len(scopes) >= MAX_SCOPES_PER_RESOURCE and not in_ours:
            problems.append(
                f"{endpoint.get('id') or endpoint_id}: the endpoint is already in {len(scopes)} "
                f"AMPLS, the most a resource can join; remove it from one it no longer needs"
            )
    return problems


def _scope_targets(endpoint: dict[str, Any], vnet_id: str) -> list[str]:
    """The AMPLS ids a private endpoint in ``vnet_id`` connects to."""
    properties = endpoint.get("properties") or {}
    subnet = (properties.get("subnet") or {}).get("id") or ""
    if not subnet.lower().startswith(vnet_id.lower() + "/subnets/"):
        return []
    targets = []
    for connection in [
        *(properties.get("privateLinkServiceConnections") or []),
        *(properties.get("manualPrivateLinkServiceConnections") or []),
    ]:
        target = (connection.get("properties") or {}).get("privateLinkServiceId") or ""
        if "/microsoft.insights/privatelinkscopes/" in target.lower():
            targets.append(target)
    return targets


@task(name="check-kubernetes-api", **CHECK)
def check_kubernetes_api(env: Environment) -> list[str]:
    """The Kubernetes API server answers (a private cluster's only from inside its network)."""
    try:
        kube.VersionApi(kubernetes_client(env)).get_code(_request_timeout=10)
    except Exception as error:
        where = env.kubernetes.kubeconfig or "the in-cluster configuration or ~/.kube/config"
        return [
            f"the Kubernetes API server does not answer ({_first_line(str(error))}) — check "
            f"kubernetes.kubeconfig/context ({where}); a private cluster is reachable only from "
            f"inside its VNet, so run the worker there"
        ]
    return []


# -- helpers ------------------------------------------------------------------------------------


def _read_by_id(
    env: Environment, resource_id: str, api_version: str, problems: list[str], what: str
) -> dict[str, Any] | None:
    found = _guarded(
        problems,
        resource_id,
        lambda: absent_as_none(
            lambda: resource_client(env).resources.get_by_id(resource_id, api_version=api_version)
        ),
    )
    if found is None and not _failed(problems, resource_id):
        problems.append(
            f"{resource_id}: {what} does not exist — create it or fix its name in the "
            f"environment file"
        )
        return None
    return raw_json(found) if found is not None else None


def _guarded(problems: list[str], resource_id: str, read: Any) -> Any:
    """Run a read; a permanent error becomes a problem (and None), a transient one is raised so that
    the check's task retries."""
    try:
        return read()
    except Exception as error:
        cause = error.__cause__ if error.__cause__ is not None else error
        if is_transient(cause):
            raise
        problems.append(_describe(resource_id, "reading", cause))
        return None


def _failed(problems: list[str], resource_id: str) -> bool:
    return any(problem.startswith(f"{resource_id}: reading failed") for problem in problems)


def _describe(resource_id: str, doing: str, error: BaseException) -> str:
    status, code, message = describe_error(error)
    advice = {
        401: "check auth in the environment file",
        403: "grant the identity Reader (or Contributor) on this resource",
    }.get(status or 0, "see the message")
    return f"{resource_id}: {doing} failed: {status} {code}: {_first_line(message)} — {advice}"


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""
