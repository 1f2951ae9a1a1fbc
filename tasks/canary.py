"""The end-to-end canary: a uniquely labelled metric sent to the collector must reach the workspace.

The other checks look at each link of the pipeline; the canary tests the chain as an application
uses it. It sends one gauge, ``aks_metrics_canary{canary_id="<random>"}``, over OTLP/HTTP
(protobuf) to the collector's ``otlp-http`` port, through the Kubernetes API server's service proxy
(``/api/v1/namespaces/<ns>/services/<collector>-collector:<port>/proxy/v1/metrics``), so the worker
needs no network path into the cluster beyond the API server it already uses. Then it queries the
Azure Monitor workspace's Prometheus endpoint (``properties.metrics.prometheusQueryEndpoint`` +
``/api/v1/query``, with a bearer token for ``cloud.prometheus_query_scope``) with backoff until the
sample appears or the deadline passes.

The query needs read access to the workspace (Monitoring Data Reader), which is why the canary is
optional per environment. The only request it sends that is not a read is the OTLP POST to the
collector, which changes no object.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from prefect import task

from aksmetrics.checks import CheckResult, conclude
from aksmetrics.diagnosis import Evidence, Symptom
from aksmetrics.environment import Environment
from tasks.clients import (
    arm_get,
    azure_credential,
    get_settings,
    kube_request_options,
    kubernetes_client,
)
from tasks.retries import Observation, WaitTimedOut, describe_error, poll
from tasks.steps import CHECK

METRIC_NAME = "aks_metrics_canary"
CANARY_LABEL = "canary_id"
SERVICE_NAME = "aks-metrics-canary"
MONITOR_ACCOUNTS_API = "2023-04-03"


def otlp_payload(canary_id: str, *, now_ns: int | None = None) -> bytes:
    """An OTLP ``ExportMetricsServiceRequest``: one gauge point labelled with ``canary_id``."""
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.metrics.v1.metrics_pb2 import (
        Gauge,
        Metric,
        NumberDataPoint,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    def attribute(key: str, value: str) -> KeyValue:
        return KeyValue(key=key, value=AnyValue(string_value=value))

    timestamp = now_ns if now_ns is not None else time.time_ns()
    point = NumberDataPoint(
        attributes=[attribute(CANARY_LABEL, canary_id)], time_unix_nano=timestamp, as_double=1.0
    )
    metric = Metric(
        name=METRIC_NAME,
        description="Canary sample sent by aks-metrics verify; safe to ignore.",
        gauge=Gauge(data_points=[point]),
    )
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=[attribute("service.name", SERVICE_NAME)]),
                scope_metrics=[
                    ScopeMetrics(
                        scope=InstrumentationScope(name="aks-metrics-pipeline"), metrics=[metric]
                    )
                ],
            )
        ]
    )
    return bytes(request.SerializeToString())


def collector_proxy_path(env: Environment) -> str:
    """The service-proxy path of the collector's OTLP/HTTP metrics receiver."""
    collector = env.collector
    return (
        f"/api/v1/namespaces/{collector.namespace}/services/{collector.name}-collector:"
        f"{collector.otlp_http_port}/proxy/v1/metrics"
    )


def send_canary(env: Environment, canary_id: str) -> Evidence:
    """POST the canary to the collector through the API server; the evidence says how it went."""
    api = kubernetes_client(env)
    path = collector_proxy_path(env)
    subject = f"collector {env.collector.namespace}/{env.collector.name} via {path}"
    # The kubernetes client signs the request as it signs its own (token, client certificate) and
    # verifies the API server against the kubeconfig's CA.
    method, url, headers, body, _ = api.param_serialize(
        method="POST",
        resource_path=path,
        header_params={
            "Content-Type": "application/x-protobuf",
            "Accept": "application/x-protobuf",
        },
        body=otlp_payload(canary_id),
        auth_settings=["BearerToken"],
    )
    response = api.call_api(
        method, url, header_params=headers, body=body, **_timeout(kube_request_options())
    )
    response.read()
    if response.status >= 300:
        return Evidence(
            subject=subject,
            observed=f"HTTP {response.status}: {_message(response.data)}",
            symptom=Symptom.CANARY_REFUSED,
        )
    rejected = _rejected_points(response.data)
    if rejected:
        return Evidence(
            subject=subject,
            observed=f"HTTP {response.status}, but {rejected} data point(s) rejected",
            symptom=Symptom.CANARY_REFUSED,
        )
    return Evidence(
        subject=subject,
        observed=f'accepted {METRIC_NAME}{{{CANARY_LABEL}="{canary_id}"}} (HTTP {response.status})',
    )


def _timeout(options: dict[str, Any]) -> dict[str, Any]:
    return {"_request_timeout": options.get("_request_timeout")}


def _message(data: bytes | None) -> str:
    """The API server's Status message, or the start of the body."""
    import json

    text = (data or b"").decode("utf-8", "replace")
    try:
        return str(json.loads(text).get("message") or text)[:200]
    except (ValueError, AttributeError):
        return text.strip()[:200] or "(empty body)"


def _rejected_points(data: bytes | None) -> int:
    """Data points the collector's OTLP receiver reports as rejected (a partial success)."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceResponse,
    )

    if not data:
        return 0
    try:
        response = ExportMetricsServiceResponse.FromString(data)
    except DecodeError:
        return 0  # a JSON or empty answer to a 2xx: nothing says anything was rejected
    return int(response.partial_success.rejected_data_points)


def query_endpoint(env: Environment) -> str | None:
    """The workspace's Prometheus query endpoint, or None when the workspace has none."""
    workspace = arm_get(env, env.monitor_workspace_id, api_version=MONITOR_ACCOUNTS_API)
    if workspace is None:
        return None
    metrics = (workspace.get("properties") or {}).get("metrics") or {}
    endpoint = metrics.get("prometheusQueryEndpoint")
    return str(endpoint).rstrip("/") if endpoint else None


def _query_client(env: Environment, endpoint: str) -> Any:
    """An azure-core pipeline for the query endpoint: bearer token for the Prometheus scope,
    azure-core's retries (honouring Retry-After), and the environment's CA bundle."""
    from azure.core import PipelineClient
    from azure.core.configuration import Configuration
    from azure.core.pipeline.policies import (
        BearerTokenCredentialPolicy,
        HeadersPolicy,
        NetworkTraceLoggingPolicy,
        ProxyPolicy,
        RetryPolicy,
        UserAgentPolicy,
    )

    config: Configuration[Any, Any] = Configuration()
    config.headers_policy = HeadersPolicy()
    config.user_agent_policy = UserAgentPolicy(sdk_moniker="aks-metrics-pipeline")
    config.proxy_policy = ProxyPolicy()
    config.retry_policy = RetryPolicy(retry_total=get_settings().arm_retry_total)
    config.authentication_policy = BearerTokenCredentialPolicy(
        azure_credential(env), env.cloud.prometheus_query_scope
    )
    config.logging_policy = NetworkTraceLoggingPolicy()
    transport: dict[str, Any] = {}
    if env.cloud.ca_bundle:
        transport["connection_verify"] = str(env.cloud.ca_bundle)
    return PipelineClient(base_url=endpoint, config=config, **transport)


def query_canary(client: Any, endpoint: str, canary_id: str) -> list[dict[str, Any]]:
    """The series the workspace returns for the canary (an instant query); raises on HTTP errors."""
    from azure.core.rest import HttpRequest

    request = HttpRequest(
        "GET",
        f"{endpoint}/api/v1/query",
        params={"query": f'{METRIC_NAME}{{{CANARY_LABEL}="{canary_id}"}}'},
    )
    response = client.send_request(request)
    response.raise_for_status()
    body = response.json()
    return list((body.get("data") or {}).get("result") or [])


def run_canary(env: Environment, *, timeout: float | None = None) -> CheckResult:
    """Send the canary and wait until the workspace returns it (see the module's description)."""
    deadline = env.canary.timeout_seconds if timeout is None else timeout
    canary_id = uuid.uuid4().hex
    endpoint = query_endpoint(env)
    if endpoint is None:
        return conclude(
            "canary",
            [
                Evidence(
                    subject=env.monitor_workspace_id,
                    observed="the workspace does not exist or has no prometheusQueryEndpoint",
                    symptom=Symptom.CANARY_QUERY_FAILED,
                )
            ],
            passed="",
        )

    sent = send_canary(env, canary_id)
    if sent.symptom is not None:
        return conclude("canary", [sent], passed="")

    client = _query_client(env, endpoint)
    started = time.monotonic()
    settings = get_settings()

    def look() -> Observation[list[dict[str, Any]]]:
        series = query_canary(client, endpoint, canary_id)
        return Observation(bool(series), f"{len(series)} series", series)

    subject = f"{env.monitor_workspace_id} {endpoint}/api/v1/query"
    try:
        found = poll(
            look,
            what=f"the canary {canary_id} to appear in the workspace",
            timeout=deadline,
            initial_delay=min(settings.wait_initial_delay, 1.0),
            max_delay=min(settings.wait_max_delay, 10.0),
        )
    except WaitTimedOut as timed_out:
        seen = Evidence(
            subject=subject,
            observed=f"not returned within {deadline:g} s (last answer: {timed_out.last})",
            symptom=Symptom.CANARY_NOT_INGESTED,
        )
    except Exception as error:  # a permanent query error (401/403/404) is the finding itself
        status, code, message = describe_error(error)
        seen = Evidence(
            subject=subject,
            observed=" ".join(str(part) for part in (status, code, message) if part),
            symptom=Symptom.CANARY_QUERY_FAILED,
        )
    else:
        value = (found.value or [{}])[0].get("value", [None, "?"])[1]
        seen = Evidence(
            subject=subject,
            observed=f'{METRIC_NAME}{{{CANARY_LABEL}="{canary_id}"}} = {value} after '
            f"{time.monotonic() - started:.1f} s",
        )
    return conclude("canary", [sent, seen], passed="the canary metric reached the workspace")


@task(name="check_canary", **CHECK)
def check_canary(env: Environment, timeout: float | None = None) -> CheckResult:
    """A uniquely labelled metric sent to the collector over OTLP reaches the workspace."""
    return run_canary(env, timeout=timeout)
