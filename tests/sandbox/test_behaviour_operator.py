"""The OpenTelemetry operator as the official `kubernetes` client sees it: installing it the way
the project does on a closed network, its fail-closed webhooks before it is ready, and the
collector it then makes from the seed's manifest."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from behaviour_support import RunningSandbox, eventually, running_sandbox
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from sandbox.tls import make_tls_bundle

NAMESPACE = "opentelemetry-operator-system"
MANAGER = "aks-metrics-pipeline"
MANIFEST = Path(__file__).resolve().parents[2] / "sandbox" / "data" / "opentelemetry-operator.yaml"
TOLERATIONS = [
    {"key": "workload", "operator": "Equal", "value": "general", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
]

COLLECTOR: dict[str, Any] = {
    "apiVersion": "opentelemetry.io/v1beta1",
    "kind": "OpenTelemetryCollector",
    "metadata": {"name": "otel-collector", "namespace": NAMESPACE},
    "spec": {
        "mode": "deployment",
        "replicas": 1,
        "tolerations": TOLERATIONS,
        "config": {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": "0.0.0.0:4317"},
                        "http": {"endpoint": "0.0.0.0:4318"},
                    }
                }
            },
            "processors": {"batch": {"send_batch_size": 1024, "timeout": "5s"}},
            "exporters": {
                "prometheus": {
                    "endpoint": "0.0.0.0:8889",
                    "resource_to_telemetry_conversion": {"enabled": True},
                }
            },
            "service": {
                "pipelines": {
                    "metrics": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["prometheus"],
                    }
                }
            },
        },
    },
}
PODMONITOR: dict[str, Any] = {
    "apiVersion": "azmonitoring.coreos.com/v1",
    "kind": "PodMonitor",
    "metadata": {"name": "otel-collector-metrics", "namespace": NAMESPACE},
    "spec": {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/component": "opentelemetry-collector",
                "app.kubernetes.io/instance": f"{NAMESPACE}.otel-collector",
                "app.kubernetes.io/managed-by": "opentelemetry-operator",
            }
        },
        "podMetricsEndpoints": [
            {"port": "prometheus", "path": "/metrics", "interval": "30s"},
            {
                "port": "metrics",
                "path": "/metrics",
                "interval": "30s",
                "metricRelabelings": [
                    {"targetLabel": "source", "replacement": "otel-collector", "action": "replace"},
                ],
            },
        ],
    },
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("operator"), "addon-only") as running:
        yield running


@pytest.fixture(scope="module")
def dynamic(sandbox: RunningSandbox, tmp_path_factory: pytest.TempPathFactory) -> DynamicClient:
    cache = tmp_path_factory.mktemp("discovery") / "cache.json"
    return DynamicClient(sandbox.api_client(), cache_file=str(cache))


def apply(dynamic: DynamicClient, obj: dict[str, Any]) -> Any:
    """Server-side apply as the project's field manager."""
    resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    return resource.server_side_apply(
        body=obj,
        name=obj["metadata"]["name"],
        namespace=obj["metadata"].get("namespace"),
        field_manager=MANAGER,
        force_conflicts=True,
    )


def manifest_documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def operator_pod(core: k8s.CoreV1Api) -> Any:
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector="app.kubernetes.io/name=opentelemetry-operator"
    ).items
    return pods[0] if pods else None


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_the_operator_refuses_collectors_until_it_is_ready_then_makes_them(
    sandbox: RunningSandbox, dynamic: DynamicClient, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(sandbox.api_client())
    custom = k8s.CustomObjectsApi(sandbox.api_client())

    # cert-manager is not installed: its kinds do not exist on the API server.
    issuer = next(d for d in manifest_documents() if d["kind"] == "Issuer")
    with pytest.raises(ApiException) as no_kind:
        custom.patch_namespaced_custom_object(
            "cert-manager.io", "v1", NAMESPACE, "issuers", issuer["metadata"]["name"], issuer
        )
    assert no_kind.value.status == 404

    # The manifest without cert-manager: no certificate Secret, no caBundle yet.
    installable = [
        d for d in manifest_documents() if not d["apiVersion"].startswith("cert-manager")
    ]
    for document in installable:
        document = copy.deepcopy(document)
        if document["kind"] == "Deployment":
            document["spec"]["template"]["spec"]["tolerations"] = TOLERATIONS
        apply(dynamic, document)
    dynamic.resources.invalidate_cache()

    pod = eventually(lambda: operator_pod(core), what="the operator pod")
    assert not is_ready(core.read_namespaced_pod(pod.metadata.name, NAMESPACE))
    with pytest.raises(ApiException) as refused:
        apply(dynamic, COLLECTOR)
    assert refused.value.status == 500
    message = json.loads(refused.value.body)["message"]
    assert message.startswith(
        'Internal error occurred: failed calling webhook "mopentelemetrycollectorbeta.kb.io": '
        'failed to call webhook: Post "https://opentelemetry-operator-webhook-service.'
    )
    assert message.endswith(
        'no endpoints available for service "opentelemetry-operator-webhook-service"'
    )

    # The project's closed-network install: its own serving certificate and the CA injected.
    service = f"opentelemetry-operator-webhook-service.{NAMESPACE}.svc"
    tls = make_tls_bundle(
        tmp_path, hostnames=("opentelemetry-operator-webhook-service", service), ips=()
    )
    core.create_namespaced_secret(
        NAMESPACE,
        {
            "metadata": {"name": "opentelemetry-operator-controller-manager-service-cert"},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": base64.b64encode(tls.cert_pem.read_bytes()).decode(),
                "tls.key": base64.b64encode(tls.key_pem.read_bytes()).decode(),
            },
        },
    )
    eventually(lambda: is_ready(operator_pod(core)), what="the operator pod Ready")
    with pytest.raises(ApiException) as untrusted:
        apply(dynamic, COLLECTOR)
    assert json.loads(untrusted.value.body)["message"].endswith(
        "x509: certificate signed by unknown authority"
    )

    ca_bundle = base64.b64encode(tls.ca_pem.read_bytes()).decode()
    for document in installable:
        if document["kind"].endswith("WebhookConfiguration"):
            patched = copy.deepcopy(document)
            for webhook in patched["webhooks"]:
                webhook["clientConfig"]["caBundle"] = ca_bundle
            apply(dynamic, patched)

    created = apply(dynamic, COLLECTOR)
    assert created.metadata.name == "otel-collector"
    apply(dynamic, PODMONITOR)

    # What the operator makes, with its names, labels and port names.
    apps = k8s.AppsV1Api(sandbox.api_client())
    deployment = eventually(
        lambda: _read_or_none(apps.read_namespaced_deployment, "otel-collector-collector"),
        what="the collector Deployment",
    )
    container = deployment.spec.template.spec.containers[0]
    assert container.name == "otc-container"
    assert {p.name: p.container_port for p in container.ports} == {
        "otlp-grpc": 4317,
        "otlp-http": 4318,
        "prometheus": 8889,
        "metrics": 8888,
    }
    assert deployment.metadata.owner_references[0].kind == "OpenTelemetryCollector"
    pods = eventually(
        lambda: [
            p
            for p in core.list_namespaced_pod(
                NAMESPACE,
                label_selector="app.kubernetes.io/component=opentelemetry-collector,"
                f"app.kubernetes.io/instance={NAMESPACE}.otel-collector",
            ).items
            if p.status.phase == "Running"
        ],
        what="a Running collector pod",
    )
    assert pods[0].metadata.labels["app.kubernetes.io/managed-by"] == "opentelemetry-operator"
    services = {s.metadata.name for s in core.list_namespaced_service(NAMESPACE).items}
    assert {
        "otel-collector-collector",
        "otel-collector-collector-headless",
        "otel-collector-collector-monitoring",
    } <= services
    config_maps = [c.metadata.name for c in core.list_namespaced_config_map(NAMESPACE).items]
    assert any(name.startswith("otel-collector-collector-") for name in config_maps)

    # Updating the collector reconciles; deleting it removes what the operator made.
    scaled = copy.deepcopy(COLLECTOR)
    scaled["spec"]["replicas"] = 2
    apply(dynamic, scaled)
    eventually(
        lambda: (
            apps.read_namespaced_deployment("otel-collector-collector", NAMESPACE).spec.replicas
            == 2
        ),
        what="the Deployment scaled to 2",
    )
    custom.delete_namespaced_custom_object(
        "opentelemetry.io", "v1beta1", NAMESPACE, "opentelemetrycollectors", "otel-collector"
    )
    eventually(
        lambda: (
            _read_or_none(apps.read_namespaced_deployment, "otel-collector-collector") is None
            and not any(
                s.metadata.name.startswith("otel-collector-collector")
                for s in core.list_namespaced_service(NAMESPACE).items
            )
        ),
        what="the collector's objects deleted",
    )


def _read_or_none(read: Any, name: str) -> Any:
    try:
        return read(name, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
