"""Clients for Azure and Kubernetes, built from an environment and cached per process; tunables.

Every task gets its clients here, never builds its own, so that the cloud's endpoints, the CA
bundle, the credential and the retry and polling settings are decided in one place:

- :func:`azure_credential` — the credential of ``env.auth`` for ``env.cloud``. A client secret is
  read from its environment variable or file when the credential is built, held only by the
  credential, and never logged.
- :func:`monitor_client`, :func:`network_client`, :func:`private_dns_client`,
  :func:`resource_client` — the ARM clients (``MonitorManagementClient`` for DCE/DCR/DCRA and
  workspaces, ``NetworkManagementClient`` for private endpoints and zone groups,
  ``PrivateDnsManagementClient`` for zones and links, ``ResourceManagementClient`` for the AMPLS
  and its scoped resources by id), pointed at the cloud's ARM endpoint with its token scope, the CA
  bundle, our LRO polling interval and retry count.
- :func:`kubernetes_client` and :func:`dynamic_client` — the ``kubernetes`` ``ApiClient`` from
  ``env.kubernetes.kubeconfig`` (and context), or the in-cluster service account when the worker
  runs as a pod, and a ``DynamicClient`` over it with its own discovery cache file.

Clients are cached per process and environment: a flow's tasks share one token and one connection
pool per service. :func:`clear_clients` drops them (tests; a rotated secret).

:class:`Settings` holds the tunables (environment variables ``AKS_METRICS_*``) with production
defaults; tests make them small. Task retry counts are read when the task modules are imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aksmetrics.environment import Environment

T = TypeVar("T")


class Settings(BaseSettings):
    """Tunables of the tasks; each is set by an environment variable ``AKS_METRICS_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="AKS_METRICS_", frozen=True)

    polling_interval: float = Field(
        5.0,
        gt=0,
        description="seconds between polls of an ARM long-running operation that sends no "
        "Retry-After (azure-core's default is 30)",
    )
    arm_retry_total: int = Field(
        3,
        ge=0,
        description="retries azure-core makes inside one ARM call (429/5xx/connection errors, "
        "honouring Retry-After) before the task's own retries take over",
    )
    arm_timeout: float = Field(60.0, gt=0, description="connection and read timeout of ARM calls")
    task_retries: int = Field(
        4, ge=0, description="times a step is rerun after a transient error (read at import)"
    )
    task_retry_delay: float = Field(
        2.0,
        ge=0,
        description="first delay before rerunning a step; doubles each time (read at import)",
    )
    kube_request_timeout: float = Field(
        30.0, gt=0, description="timeout of one Kubernetes API request"
    )
    crd_timeout: float = Field(
        120.0, gt=0, description="seconds to wait for CRDs to be Established"
    )
    operator_timeout: float = Field(
        300.0, gt=0, description="seconds to wait for the OpenTelemetry operator to be ready"
    )
    rollout_timeout: float = Field(
        300.0, gt=0, description="seconds to wait for a restarted workload's rollout"
    )
    healthy_timeout: float = Field(
        600.0,
        gt=0,
        description="seconds to wait for ama-metrics to resolve privately, write TokenConfig.json "
        "and run MetricsExtension",
    )
    wait_initial_delay: float = Field(1.0, gt=0, description="first delay between polls of a wait")
    wait_max_delay: float = Field(30.0, gt=0, description="longest delay between polls of a wait")


def get_settings() -> Settings:
    """The current settings, read from the environment variables each time (cheap)."""
    return Settings()


# -- caching ------------------------------------------------------------------------------------

_lock = threading.RLock()  # re-entrant: building one client may build another (dynamic → api)
_cache: dict[tuple[str, str], Any] = {}


def _connection_key(env: Environment) -> str:
    """What decides how we connect: the cloud, auth, subscription and Kubernetes sections."""
    return env.model_dump_json(include={"name", "subscription_id", "cloud", "auth", "kubernetes"})


def _cached(kind: str, env: Environment, build: Callable[[], T]) -> T:
    key = (kind, _connection_key(env))
    with _lock:
        if key not in _cache:
            _cache[key] = build()
        return _cache[key]  # type: ignore[no-any-return]


def clear_clients() -> None:
    """Forget every cached client and credential (the next call builds new ones)."""
    with _lock:
        for value in _cache.values():
            close = getattr(value, "close", None)
            if callable(close):
                # A client that fails to close is dropped all the same.
                with contextlib.suppress(Exception):
                    close()
        _cache.clear()


# -- Azure --------------------------------------------------------------------------------------


def _transport_options(env: Environment) -> dict[str, Any]:
    """Keyword arguments azure-core transports take: the CA bundle, when the cloud names one."""
    if env.cloud.ca_bundle:
        return {"connection_verify": str(env.cloud.ca_bundle)}
    return {}


def read_client_secret(env: Environment) -> str:
    """The client secret named by ``env.auth`` (an environment variable or a file), read now.

    The value is returned to the credential only: never log it, never put it in a result.
    """
    auth = env.auth
    if auth.client_secret_env:
        value = os.environ.get(auth.client_secret_env)
        if not value:
            raise RuntimeError(
                f"auth.client_secret_env names {auth.client_secret_env!r}, but that environment "
                f"variable is not set in the worker"
            )
        return value
    if auth.client_secret_file:
        try:
            value = Path(auth.client_secret_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise RuntimeError(
                f"auth.client_secret_file {str(auth.client_secret_file)!r} cannot be read: "
                f"{error.strerror}"
            ) from None
        if not value:
            raise RuntimeError(f"auth.client_secret_file {str(auth.client_secret_file)!r} is empty")
        return value
    raise RuntimeError("auth.method is 'client_secret' but no secret reference is given")


def _build_credential(env: Environment) -> Any:
    from azure import identity

    cloud, auth = env.cloud, env.auth
    options: dict[str, Any] = {
        "authority": cloud.resolved_authority_host(),
        "disable_instance_discovery": cloud.disable_instance_discovery,
        **_transport_options(env),
    }
    if auth.method == "client_secret":
        return identity.ClientSecretCredential(
            auth.tenant_id, auth.client_id, read_client_secret(env), **options
        )
    if auth.method == "workload_identity":
        # Tenant, client id and the token file come from the AZURE_* variables the AKS workload
        # identity webhook injects, unless the environment names them.
        identity_options = {
            key: value
            for key, value in (("tenant_id", auth.tenant_id), ("client_id", auth.client_id))
            if value
        }
        return identity.WorkloadIdentityCredential(**identity_options, **options)
    if auth.method == "managed_identity":
        return identity.ManagedIdentityCredential(
            client_id=auth.client_id, **_transport_options(env)
        )
    default_options = dict(options)
    if auth.client_id:
        default_options["managed_identity_client_id"] = auth.client_id
        default_options["workload_identity_client_id"] = auth.client_id
    if auth.tenant_id:
        default_options["workload_identity_tenant_id"] = auth.tenant_id
    return identity.DefaultAzureCredential(**default_options)


def azure_credential(env: Environment) -> Any:
    """The Azure credential for ``env`` (cached per process)."""
    return _cached("credential", env, lambda: _build_credential(env))


def arm_options(env: Environment) -> dict[str, Any]:
    """Constructor keyword arguments shared by every ARM client for ``env``."""
    settings = get_settings()
    return {
        "base_url": env.cloud.resolved_arm_endpoint(),
        "credential_scopes": [env.cloud.resolved_credential_scope()],
        "polling_interval": settings.polling_interval,
        "retry_total": settings.arm_retry_total,
        "connection_timeout": settings.arm_timeout,
        "read_timeout": settings.arm_timeout,
        **_transport_options(env),
    }


def _arm_client(kind: str, env: Environment, client_class: Callable[..., T]) -> T:
    """One cached management client of ``client_class`` per connection, built with the
    environment's credential, subscription and ARM options."""
    return _cached(
        kind,
        env,
        lambda: client_class(azure_credential(env), env.subscription_id, **arm_options(env)),
    )


def monitor_client(env: Environment) -> Any:
    """``MonitorManagementClient``: data collection endpoints, rules and associations."""
    from azure.mgmt.monitor import MonitorManagementClient

    return _arm_client("monitor", env, MonitorManagementClient)


def network_client(env: Environment) -> Any:
    """``NetworkManagementClient``: virtual networks, private endpoints, DNS zone groups."""
    from azure.mgmt.network import NetworkManagementClient

    return _arm_client("network", env, NetworkManagementClient)


def private_dns_client(env: Environment) -> Any:
    """``PrivateDnsManagementClient``: private DNS zones and their virtual network links."""
    from azure.mgmt.privatedns import PrivateDnsManagementClient

    return _arm_client("privatedns", env, PrivateDnsManagementClient)


def resource_client(env: Environment) -> Any:
    """``ResourceManagementClient``: any resource by id (the AMPLS and its scoped resources, the
    managed cluster, the workspace), and raw ARM requests through :func:`arm_get`."""
    from azure.mgmt.resource.resources import ResourceManagementClient

    return _arm_client("resource", env, ResourceManagementClient)


def arm_get(env: Environment, path: str, *, api_version: str) -> dict[str, Any] | None:
    """GET an ARM path through the resource client's pipeline (auth, retries, CA); the JSON body,
    or None on 404. For reads the SDKs do not cover, such as a scope's list of scoped resources."""
    from azure.core.exceptions import HttpResponseError, map_error
    from azure.core.rest import HttpRequest

    request = HttpRequest("GET", path, params={"api-version": api_version})
    response = resource_client(env).send_request(request)
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        map_error(response.status_code, response, {})
        raise HttpResponseError(response=response)
    return response.json()  # type: ignore[no-any-return]


def raw_json(value: Any) -> dict[str, Any]:
    """ARM wire JSON (camelCase, nested ``properties``) of a model returned by any of our SDKs."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    serialize = getattr(value, "serialize", None)
    if callable(serialize):  # msrest models (azure-mgmt-monitor 7)
        return serialize(keep_readonly=True)  # type: ignore[no-any-return]
    return value.as_dict()  # type: ignore[no-any-return]  # TypeSpec models (network, privatedns)


# -- Kubernetes ---------------------------------------------------------------------------------


def _in_cluster() -> bool:
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
    )


def _build_kubernetes_client(env: Environment) -> Any:
    from kubernetes import client, config

    kube = env.kubernetes
    if kube.kubeconfig is None and kube.context is None and _in_cluster():
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config(
        config_file=str(kube.kubeconfig) if kube.kubeconfig else None,
        context=kube.context,
        persist_config=False,
    )


def kubernetes_client(env: Environment) -> Any:
    """The ``kubernetes`` ``ApiClient`` for the environment's cluster (cached per process)."""
    return _cached("kubernetes", env, lambda: _build_kubernetes_client(env))


# Discovery is shared and re-read after CRDs are installed; one lock keeps threads from racing it.
discovery_lock = threading.RLock()


def _discovery_cache_file(env: Environment) -> str:
    digest = hashlib.sha256(_connection_key(env).encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / f"aks-metrics-discovery-{os.getpid()}-{digest}.json")


def dynamic_client(env: Environment) -> Any:
    """A ``DynamicClient`` over :func:`kubernetes_client`, with a discovery cache file of its own
    (per process and environment, so that runs and tests never read each other's discovery)."""
    from kubernetes.dynamic import DynamicClient

    def build() -> Any:
        cache_file = _discovery_cache_file(env)
        # A file left by an earlier process with the same pid would describe another server.
        Path(cache_file).unlink(missing_ok=True)
        return DynamicClient(kubernetes_client(env), cache_file=cache_file)

    with discovery_lock:
        return _cached("dynamic", env, build)


def kube_request_options() -> dict[str, Any]:
    """Per-request keyword arguments for the ``kubernetes`` client: the request timeout."""
    return {"_request_timeout": get_settings().kube_request_timeout}
