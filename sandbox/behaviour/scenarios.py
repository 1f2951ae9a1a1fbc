"""The Kubernetes half of the sandbox's scenarios (the Azure half is built by `sandbox.azure`).

Every scenario starts with what AKS itself puts in a cluster with the managed Prometheus add-on
(the ama-metrics workloads and the azmonitoring CRDs, written as the add-on manager would).
Scenarios past `addon-only` also hold what the project would have applied, written through the
API server with server-side apply as field manager `aks-metrics-pipeline` and labelled
`aks-metrics-pipeline/environment: rubicon-krc-01`, so drift checks and teardown recognise them:

- the OpenTelemetry operator from `sandbox/data/opentelemetry-operator.yaml`, installed the way
  the project installs it on a closed network: cert-manager's Issuer and Certificate dropped,
  `cert-manager.io/inject-ca-from` removed, a generated serving certificate in the Secret
  `opentelemetry-operator-controller-manager-service-cert`, and its CA injected as `caBundle` into
  both webhook configurations and the collector CRD's conversion webhook;
- the collector `otel-collector` and the PodMonitor `otel-collector-metrics` from the seed's
  `otel-collector.yaml` (with `port: prometheus-dev` in `port-mismatch`).
"""

from __future__ import annotations

import base64
import copy
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.behaviour.ama_metrics import addon_objects

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
OPERATOR_MANIFEST = DATA_DIR / "opentelemetry-operator.yaml"
ENVIRONMENT_NAME = "rubicon-krc-01"
FIELD_MANAGER = "aks-metrics-pipeline"
ENVIRONMENT_LABEL = "aks-metrics-pipeline/environment"
OPERATOR_NAMESPACE = "opentelemetry-operator-system"
CERT_SECRET = "opentelemetry-operator-controller-manager-service-cert"
WEBHOOK_SERVICE = "opentelemetry-operator-webhook-service"
CERT_MANAGER_ANNOTATION = "cert-manager.io/inject-ca-from"
# The node pool's taints (the seed's), which the project's workloads must tolerate.
TOLERATIONS = [
    {"key": "workload", "operator": "Equal", "value": "general", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
]


@dataclass(frozen=True)
class Scenario:
    """A named start state: what exists on both planes when the sandbox comes up."""

    name: str
    description: str
    operator: bool
    podmonitor_port: str | None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "addon-only",
            "the seed's start: managed Prometheus add-on only, no private link, no operator; "
            "the agent fails with SSL handshake errors through the TLS-inspecting firewall",
            operator=False,
            podmonitor_port=None,
        ),
        Scenario(
            "no-dcra",
            "private link, DNS, operator, collector and PodMonitor in place, but no "
            "configurationAccessEndpoint DCRA: the agent gets the private-link 403",
            operator=True,
            podmonitor_port="prometheus",
        ),
        Scenario(
            "port-mismatch",
            "everything healthy except the PodMonitor's `port: prometheus-dev`: the collector's "
            "exporter is silently never scraped",
            operator=True,
            podmonitor_port="prometheus-dev",
        ),
        Scenario(
            "healthy",
            "everything in the runbook done: samples sent to the collector reach the workspace",
            operator=True,
            podmonitor_port="prometheus",
        ),
    )
}


def project_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` labelled as the project labels what it applies."""
    result = copy.deepcopy(obj)
    labels = result.setdefault("metadata", {}).setdefault("labels", {}) or {}
    labels[ENVIRONMENT_LABEL] = ENVIRONMENT_NAME
    result["metadata"]["labels"] = labels
    return result


def operator_objects(*, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> list[dict[str, Any]]:
    """The operator manifest as the project applies it on a closed network (no cert-manager)."""
    documents = [d for d in yaml.safe_load_all(OPERATOR_MANIFEST.read_text()) if d]
    ca_bundle = base64.b64encode(ca_pem).decode()
    objects: list[dict[str, Any]] = []
    for document in documents:
        if document.get("apiVersion", "").startswith("cert-manager.io/"):
            continue
        obj = copy.deepcopy(document)
        annotations = obj.get("metadata", {}).get("annotations") or {}
        annotations.pop(CERT_MANAGER_ANNOTATION, None)
        if "annotations" in obj.get("metadata", {}):
            if annotations:
                obj["metadata"]["annotations"] = annotations
            else:
                del obj["metadata"]["annotations"]
        if obj["kind"] in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for webhook in obj.get("webhooks") or []:
                webhook.setdefault("clientConfig", {})["caBundle"] = ca_bundle
        if obj["kind"] == "Deployment":
            # Every node of the cluster is tainted; the project adds the environment's
            # tolerations to the operator's pod so that it can be scheduled at all.
            obj["spec"]["template"]["spec"]["tolerations"] = copy.deepcopy(TOLERATIONS)
        if obj["kind"] == "CustomResourceDefinition":
            conversion = (obj.get("spec") or {}).get("conversion") or {}
            if conversion.get("strategy") == "Webhook":
                conversion.setdefault("webhook", {}).setdefault("clientConfig", {})["caBundle"] = (
                    ca_bundle
                )
        objects.append(project_labels(obj))

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": CERT_SECRET, "namespace": OPERATOR_NAMESPACE},
        "data": {
            "tls.crt": base64.b64encode(cert_pem).decode(),
            "tls.key": base64.b64encode(key_pem).decode(),
            "ca.crt": ca_bundle,
        },
    }
    # The Secret must exist before the Deployment's pod can mount it.
    deployment_index = next(i for i, o in enumerate(objects) if o["kind"] == "Deployment")
    objects.insert(deployment_index, project_labels(secret))
    return objects


def collector_object(*, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The seed's OpenTelemetryCollector `otel-collector`, as the project applies it."""
    return project_labels(
        {
            "apiVersion": "opentelemetry.io/v1beta1",
            "kind": "OpenTelemetryCollector",
            "metadata": {"name": "otel-collector", "namespace": OPERATOR_NAMESPACE},
            "spec": {
                "mode": "deployment",
                "replicas": 1,
                "tolerations": copy.deepcopy(TOLERATIONS if tolerations is None else tolerations),
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
    )


def podmonitor_object(port: str = "prometheus") -> dict[str, Any]:
    """The seed's PodMonitor `otel-collector-metrics` (group azmonitoring.coreos.com)."""
    return project_labels(
        {
            "apiVersion": "azmonitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "otel-collector-metrics", "namespace": OPERATOR_NAMESPACE},
            "spec": {
                "selector": {
                    "matchLabels": {
                        "app.kubernetes.io/component": "opentelemetry-collector",
                        "app.kubernetes.io/instance": f"{OPERATOR_NAMESPACE}.otel-collector",
                        "app.kubernetes.io/managed-by": "opentelemetry-operator",
                    }
                },
                "podMetricsEndpoints": [
                    {"port": port, "path": "/metrics", "interval": "30s"},
                    {
                        "port": "metrics",
                        "path": "/metrics",
                        "interval": "30s",
                        "metricRelabelings": [
                            {
                                "targetLabel": "source",
                                "replacement": "otel-collector",
                                "action": "replace",
                            },
                        ],
                    },
                ],
            },
        }
    )


def apply_as(store: Any, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
    """Server-side apply one object through the API machinery, as `manager` would."""
    from sandbox.kube.models import WriteOptions
    from sandbox.kube.patches import APPLY_PATCH

    api_version = obj["apiVersion"]
    resource_type = store.registry.by_api_version(api_version, obj["kind"])
    if resource_type is None:
        raise KeyError(f"no kind {obj['kind']!r} is served in {api_version!r}")
    namespace = obj["metadata"].get("namespace") if resource_type.namespaced else None
    return store.api_patch(
        resource_type,
        api_version.rpartition("/")[2],
        namespace,
        obj["metadata"]["name"],
        APPLY_PATCH,
        json.dumps(obj).encode(),
        WriteOptions(manager=manager, force=True),
    )


def build_kubernetes(store: Any, scenario: Scenario, *, webhook_tls_dir: Path) -> None:
    """Write the Kubernetes objects of `scenario` into a fresh store."""
    for obj in addon_objects():
        apply_as(store, obj, manager="addon-manager")
    if not scenario.operator:
        return

    from sandbox.tls import make_tls_bundle

    service_host = f"{WEBHOOK_SERVICE}.{OPERATOR_NAMESPACE}.svc"
    # The short name comes first: it becomes the certificate's common name (64 characters at most).
    bundle = make_tls_bundle(
        webhook_tls_dir,
        hostnames=(WEBHOOK_SERVICE, service_host, f"{service_host}.cluster.local"),
        ips=(),
    )
    for obj in operator_objects(
        ca_pem=bundle.ca_pem.read_bytes(),
        cert_pem=bundle.cert_pem.read_bytes(),
        key_pem=bundle.key_pem.read_bytes(),
    ):
        apply_as(store, obj, manager=FIELD_MANAGER)
    apply_as(store, collector_object(), manager=FIELD_MANAGER)
    apply_as(
        store, podmonitor_object(scenario.podmonitor_port or "prometheus"), manager=FIELD_MANAGER
    )
    logger.info("kubernetes scenario %s built", scenario.name)
