"""The data path end to end, judged by real clients: the OpenTelemetry OTLP/HTTP exporter sends
through the Kubernetes API server's service proxy to the collector, ama-metrics scrapes the
collector through the PodMonitor, and the workspace's Prometheus query API (HTTPS, bearer token
from azure-identity) shows what arrived."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from behaviour_support import RunningSandbox, eventually, running_sandbox
from kubernetes import client as k8s
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource

WORKSPACE = "azuremonitor-workspace-rubicon-krc-01"
OTLP_PATH = (
    "/api/v1/namespaces/opentelemetry-operator-system/services/"
    "otel-collector-collector:4318/proxy/v1/metrics"
)


@pytest.fixture(autouse=True)
def _no_ambient_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify`, which is
    # where the OTLP exporter puts its certificate_file; an ambient bundle would hide our CA.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("healthy"), "healthy") as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def port_mismatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("port-mismatch"), "port-mismatch") as sandbox:
        yield sandbox


def send_canary(sandbox: RunningSandbox, run_id: str) -> MetricExportResult:
    """Record one counter with a unique label and export it with the real OTLP exporter."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "canary", "service.instance.id": run_id}),
    )
    provider.get_meter("canary").create_counter("sandbox.canary").add(1, {"run_id": run_id})
    exporter = OTLPMetricExporter(
        endpoint=sandbox.kube_url + OTLP_PATH,
        certificate_file=sandbox.ca,
        headers={"Authorization": "Bearer sandbox-static-token"},
        timeout=5,
    )
    try:
        return exporter.export(reader.get_metrics_data())
    finally:
        exporter.shutdown()
        provider.shutdown()


def query(sandbox: RunningSandbox, promql: str) -> list[dict[str, Any]]:
    """An instant query on the workspace's Prometheus API, with a token from azure-identity."""
    scope = "https://prometheus.monitor.azure.com/.default"
    token = sandbox.credential().get_token(scope).token
    response = requests.get(
        f"{sandbox.arm_url}/prometheus/{WORKSPACE}/api/v1/query",
        params={"query": promql},
        headers={"Authorization": f"Bearer {token}"},
        verify=sandbox.ca,
        timeout=10,
    )
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    return body["data"]["result"]


def test_a_metric_sent_over_otlp_reaches_the_workspace_in_healthy(healthy: RunningSandbox) -> None:
    run_id = uuid.uuid4().hex

    assert send_canary(healthy, run_id) is MetricExportResult.SUCCESS

    result = eventually(
        lambda: query(healthy, f'sandbox_canary_total{{run_id="{run_id}"}}'),
        timeout=10,
        what="the canary sample in the workspace",
    )
    labels = result[0]["metric"]
    assert result[0]["value"][1] == "1"
    # ama-metrics' target labels win; the collector's own job moves to exported_job.
    assert labels["job"] == "opentelemetry-operator-system/otel-collector-metrics"
    assert labels["exported_job"] == "canary"
    assert labels["namespace"] == "opentelemetry-operator-system"
    assert labels["pod"].startswith("otel-collector-collector-")
    assert labels["cluster"] == "aks-rubicon-koreacentral-01"


def test_the_query_api_refuses_a_bad_query_and_a_missing_token(healthy: RunningSandbox) -> None:
    url = f"{healthy.arm_url}/prometheus/{WORKSPACE}/api/v1/query"
    token = healthy.credential().get_token("https://prometheus.monitor.azure.com/.default").token

    bad = requests.get(
        url,
        params={"query": "up{"},
        verify=healthy.ca,
        timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )
    anonymous = requests.get(url, params={"query": "up"}, verify=healthy.ca, timeout=10)

    assert bad.status_code == 400
    assert bad.json()["errorType"] == "bad_data"
    assert anonymous.status_code == 401


def test_the_collector_exporter_shows_the_sample_before_any_scrape(healthy: RunningSandbox) -> None:
    run_id = uuid.uuid4().hex
    send_canary(healthy, run_id)
    core = k8s.CoreV1Api(healthy.api_client())

    text = core.connect_get_namespaced_service_proxy_with_path(
        "otel-collector-collector:prometheus", "opentelemetry-operator-system", "metrics"
    )

    assert f'run_id="{run_id}"' in text
    assert "# TYPE sandbox_canary_total counter" in text


def test_port_mismatch_never_ships_the_exporter_but_ships_the_collector_telemetry(
    port_mismatch: RunningSandbox,
) -> None:
    run_id = uuid.uuid4().hex

    assert send_canary(port_mismatch, run_id) is MetricExportResult.SUCCESS

    # The collector's own metrics endpoint (port `metrics`) is scraped and relabelled...
    telemetry = eventually(
        lambda: query(
            port_mismatch, 'otelcol_receiver_accepted_metric_points_total{source="otel-collector"}'
        ),
        timeout=10,
        what="the collector's own telemetry in the workspace",
    )
    assert telemetry[0]["metric"]["endpoint"] == "metrics"
    # ...and it has counted the canary, so the sample did reach the collector, but the PodMonitor's
    # `prometheus-dev` endpoint matches no container port: nothing from the exporter is scraped.
    eventually(
        lambda: (
            float(
                query(
                    port_mismatch,
                    'otelcol_receiver_accepted_metric_points_total{source="otel-collector"}',
                )[0]["value"][1]
            )
            >= 1
        ),
        timeout=10,
        what="the canary counted by the collector",
    )
    assert query(port_mismatch, f'sandbox_canary_total{{run_id="{run_id}"}}') == []
    assert query(port_mismatch, 'up{endpoint="prometheus-dev"}') == []


def test_sandbox_files_point_at_the_running_servers(healthy: RunningSandbox) -> None:
    assert Path(healthy.ca).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert healthy.environment["network"]["dns_resolver"].startswith("127.0.0.1:")
