"""The OpenTelemetry operator: its readiness, its admission webhooks and its collector controller.

What the real operator needs before it serves, the sandbox checks on every change:

1. the controller-manager Deployment has a Ready pod - and the pod cannot be Ready while the
   serving-certificate Secret it mounts is missing (a real pod would sit in ContainerCreating
   with `MountVolume.SetUp failed ... secret "..." not found`);
2. the Secret `opentelemetry-operator-controller-manager-service-cert` holds `tls.crt` and
   `tls.key`;
3. the webhook configurations carry a non-empty `caBundle` (cert-manager's CA injector, or the
   project, put it there).

Until then, creating or updating an `OpenTelemetryCollector` fails the way the API server
reports a `failurePolicy: Fail` webhook it cannot call. Once ready, each collector (mode
`deployment` or `daemonset`) is reconciled into the objects the real operator makes, with its
names, labels and port names (see `desired_objects`); deleting the collector deletes them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from typing import Any

import yaml

from sandbox.behaviour.collector import COLLECTOR_VERSION, CONFIG_KEY, CollectorConfig
from sandbox.behaviour.network import is_ready, matches_selector
from sandbox.kube import errors

logger = logging.getLogger(__name__)

NAMESPACE = "opentelemetry-operator-system"
DEPLOYMENT = "opentelemetry-operator-controller-manager"
CERT_SECRET = "opentelemetry-operator-controller-manager-service-cert"
WEBHOOK_SERVICE = "opentelemetry-operator-webhook-service"
MUTATING_WEBHOOK = "mopentelemetrycollectorbeta.kb.io"
MUTATE_PATH = "/mutate-opentelemetry-io-v1beta1-opentelemetrycollector"
READY_ANNOTATION = "sandbox.aks-metrics/ready"
COLLECTOR_API = "opentelemetry.io/v1beta1"
COLLECTOR_KIND = "OpenTelemetryCollector"
DEFAULT_COLLECTOR_IMAGE = (
    "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector:"
    + COLLECTOR_VERSION
)
CONFIG_HASH_ANNOTATION = "opentelemetry-operator-config/sha256"
SERVICE_TYPE_LABEL = "operator.opentelemetry.io/collector-service-type"


def selector_labels(namespace: str, name: str) -> dict[str, str]:
    """The labels the operator selects a collector's pods by."""
    return {
        "app.kubernetes.io/component": "opentelemetry-collector",
        "app.kubernetes.io/instance": f"{namespace}.{name}",
        "app.kubernetes.io/managed-by": "opentelemetry-operator",
        "app.kubernetes.io/part-of": "opentelemetry",
    }


def image_version(image: str) -> str:
    """The tag of an image reference (`latest` when there is none)."""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


def collector_ports(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Container ports the operator derives from a collector config (without `metrics`)."""
    parsed = CollectorConfig.from_config(config)
    ports: list[dict[str, Any]] = []
    if parsed.otlp_grpc_port is not None:
        ports.append(
            {
                "name": "otlp-grpc",
                "containerPort": parsed.otlp_grpc_port,
                "protocol": "TCP",
                "appProtocol": "grpc",
            }
        )
    if parsed.otlp_http_port is not None:
        ports.append(
            {
                "name": "otlp-http",
                "containerPort": parsed.otlp_http_port,
                "protocol": "TCP",
                "appProtocol": "http",
            }
        )
    exporters = config.get("exporters") or {}
    for exporter_name in exporters:
        kind, _, suffix = exporter_name.partition("/")
        if kind != "prometheus":
            continue
        port = CollectorConfig.from_config(
            {**config, "service": {"pipelines": {"metrics": {"exporters": [exporter_name]}}}}
        ).exporter_port
        if port is None:
            port = 8888
        name = f"prometheus-{suffix}" if suffix else "prometheus"
        ports.append(
            {
                "name": name if len(name) <= 15 else f"port-{port}",
                "containerPort": port,
                "protocol": "TCP",
            }
        )
    return ports


class OperatorController:
    """Admission and reconciliation of OpenTelemetryCollectors, as the operator pod does them."""

    def __init__(self, store: Any, *, namespace: str = NAMESPACE) -> None:
        self._store = store
        self.namespace = namespace
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- wiring --------------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Subscribe to the store and take part in admission; reconcile once at start."""
        self._loop = loop
        self._store.subscribe(self.on_event)
        self._store.register_admission(self.admit)
        self.schedule()

    def on_event(self, event: str, obj: dict[str, Any]) -> None:
        """Any committed change may change readiness or a collector: reconcile soon."""
        kind = obj.get("kind")
        if kind in ("Event", "Lease", "Endpoints", "EndpointSlice"):
            return
        self.schedule()

    def schedule(self) -> None:
        """Coalesce bursts of changes into one reconcile on the next loop turn."""
        if self._scheduled or self._loop is None:
            return
        self._scheduled = True
        # Store events may come from a client thread in tests; hop onto the sandbox's loop.
        self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        self._scheduled = False
        try:
            self.reconcile()
        except Exception:  # a bug here must not stop the event loop that serves the API
            logger.exception("operator reconcile failed")

    # -- readiness -----------------------------------------------------------------------------

    def _deployment(self) -> dict[str, Any] | None:
        return self._store.get("apps/v1", "Deployment", self.namespace, DEPLOYMENT)

    def _pods(self) -> list[dict[str, Any]]:
        deployment = self._deployment()
        if deployment is None:
            return []
        selector = (deployment.get("spec") or {}).get("selector") or {}
        pods = self._store.list("v1", "Pod", self.namespace)
        return [
            p for p in pods if matches_selector(p.get("metadata", {}).get("labels") or {}, selector)
        ]

    def cert_present(self) -> bool:
        """True when the serving-certificate Secret holds a certificate and a key."""
        secret = self._store.get("v1", "Secret", self.namespace, CERT_SECRET)
        data = (secret or {}).get("data") or {}
        string_data = (secret or {}).get("stringData") or {}
        return all(data.get(k) or string_data.get(k) for k in ("tls.crt", "tls.key"))

    def _webhook_configurations(self) -> list[dict[str, Any]]:
        found = []
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for item in _safe_list(self._store, "admissionregistration.k8s.io/v1", kind):
                if any(
                    w.get("name", "").endswith("opentelemetrycollectorbeta.kb.io")
                    or "opentelemetrycollector" in w.get("name", "")
                    for w in item.get("webhooks") or []
                ):
                    found.append(item)
        return found

    def ca_injected(self) -> bool:
        """True when every collector webhook in both configurations carries a caBundle."""
        configurations = self._webhook_configurations()
        kinds = {c.get("kind") for c in configurations}
        if kinds != {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}:
            return False
        return all(
            (w.get("clientConfig") or {}).get("caBundle")
            for c in configurations
            for w in c.get("webhooks") or []
            if "opentelemetrycollector" in w.get("name", "")
        )

    def ready(self) -> bool:
        """True when the operator can answer webhooks and reconcile collectors."""
        return any(is_ready(p) for p in self._pods()) and self.cert_present() and self.ca_injected()

    # -- admission -----------------------------------------------------------------------------

    def admit(self, operation: str, new: dict[str, Any], old: dict[str, Any] | None) -> str | None:
        """The collector webhooks' verdict on an API write: None, or an internal error raised."""
        if new.get("kind") != COLLECTOR_KIND or operation not in ("CREATE", "UPDATE"):
            return None
        mutating = [
            c
            for c in self._webhook_configurations()
            if c.get("kind") == "MutatingWebhookConfiguration"
        ]
        if not mutating:
            # No webhook registered: the API server has nothing to call.
            return None
        problem = self._webhook_problem()
        if problem is None:
            return None
        url = f"https://{WEBHOOK_SERVICE}.{self.namespace}.svc:443{MUTATE_PATH}?timeout=10s"
        # A failurePolicy: Fail webhook that cannot be called is an internal error (500), not a
        # refusal (400): the API server itself could not decide.
        raise errors.internal(
            f'failed calling webhook "{MUTATING_WEBHOOK}": failed to call webhook: '
            f'Post "{url}": {problem}'
        )

    def _webhook_problem(self) -> str | None:
        """Why the API server cannot call the webhook right now, in its own words."""
        if self._store.get("v1", "Service", self.namespace, WEBHOOK_SERVICE) is None:
            return f'service "{WEBHOOK_SERVICE}" not found'
        # Without its certificate Secret the pod cannot start, so the Service has no endpoints.
        if not self.cert_present() or not any(is_ready(p) for p in self._pods()):
            return f'no endpoints available for service "{WEBHOOK_SERVICE}"'
        if not self.ca_injected():
            return (
                "tls: failed to verify certificate: x509: certificate signed by unknown authority"
            )
        return None

    # -- reconcile -----------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring the operator pod's readiness and every collector's objects up to date."""
        self._hold_pods_without_cert()
        if not self.ready():
            return
        collectors = _safe_list(self._store, COLLECTOR_API, COLLECTOR_KIND)
        live_uids = set()
        for collector in collectors:
            if collector.get("metadata", {}).get("deletionTimestamp"):
                continue
            live_uids.add(collector["metadata"].get("uid"))
            if (collector.get("spec") or {}).get("managementState") == "unmanaged":
                continue
            self._reconcile_collector(collector)
        self._collect_orphans(live_uids)

    def _hold_pods_without_cert(self) -> None:
        """Keep the operator pod not Ready while its certificate Secret cannot be mounted."""
        hold = not self.cert_present()
        for pod in self._pods():
            annotations = pod["metadata"].get("annotations") or {}
            held = annotations.get(READY_ANNOTATION) == "false"
            if held == hold:
                continue
            updated = copy.deepcopy(pod)
            annotations = updated["metadata"].setdefault("annotations", {}) or {}
            updated["metadata"]["annotations"] = annotations
            if hold:
                annotations[READY_ANNOTATION] = "false"
                logger.info(
                    "operator pod %s waits for secret %s", pod["metadata"]["name"], CERT_SECRET
                )
            else:
                annotations.pop(READY_ANNOTATION, None)
                logger.info(
                    "operator pod %s mounted secret %s", pod["metadata"]["name"], CERT_SECRET
                )
            self._store.put(updated)

    def _reconcile_collector(self, collector: dict[str, Any]) -> None:
        desired = desired_objects(collector)
        for obj in desired:
            self._ensure(obj)

        # Older configuration versions are replaced, not kept: one ConfigMap per collector.
        meta = collector["metadata"]
        current_cm = next(o for o in desired if o["kind"] == "ConfigMap")["metadata"]["name"]
        for cm in self._store.list("v1", "ConfigMap", meta["namespace"]):
            if _owned_by(cm, meta.get("uid")) and cm["metadata"]["name"] != current_cm:
                self._store.delete("v1", "ConfigMap", meta["namespace"], cm["metadata"]["name"])
        self._update_status(collector)

    def _ensure(self, desired: dict[str, Any]) -> None:
        meta = desired["metadata"]
        actual = self._store.get(
            desired["apiVersion"], desired["kind"], meta["namespace"], meta["name"]
        )
        if actual is not None and _contains(actual, desired):
            return
        obj = copy.deepcopy(desired)
        if actual is not None:
            # Keep what others own (status, server-set metadata) and replace our parts.
            merged = copy.deepcopy(actual)
            merged["metadata"].update(obj["metadata"])
            for key, value in obj.items():
                if key not in ("metadata", "apiVersion", "kind"):
                    merged[key] = value
            obj = merged
        self._store.put(obj)
        logger.info(
            "operator %s %s %s/%s",
            "updated" if actual else "created",
            desired["kind"],
            meta["namespace"],
            meta["name"],
        )

    def _update_status(self, collector: dict[str, Any]) -> None:
        meta = collector["metadata"]
        spec = collector.get("spec") or {}
        mode = spec.get("mode") or "deployment"
        workload_kind = "DaemonSet" if mode == "daemonset" else "Deployment"
        workload = self._store.get(
            "apps/v1", workload_kind, meta["namespace"], f"{meta['name']}-collector"
        )
        status_of = (workload or {}).get("status") or {}
        if workload_kind == "Deployment":
            wanted = int(spec.get("replicas") or 1)
            ready = int(status_of.get("readyReplicas") or 0)
        else:
            wanted = int(status_of.get("desiredNumberScheduled") or 0)
            ready = int(status_of.get("numberReady") or 0)
        image = spec.get("image") or DEFAULT_COLLECTOR_IMAGE
        selector = ",".join(
            f"{k}={v}" for k, v in selector_labels(meta["namespace"], meta["name"]).items()
        )
        status = {
            "image": image,
            "version": COLLECTOR_VERSION,
            "scale": {
                "replicas": ready,
                "selector": selector,
                "statusReplicas": f"{ready}/{wanted}",
            },
        }
        if collector.get("status") == status:
            return
        updated = copy.deepcopy(collector)
        updated["status"] = status
        self._store.put(updated)

    def _collect_orphans(self, live_uids: set[str]) -> None:
        """Delete what the operator made for collectors that no longer exist."""
        for api_version, kind in (
            ("apps/v1", "Deployment"),
            ("apps/v1", "DaemonSet"),
            ("v1", "Service"),
            ("v1", "ConfigMap"),
            ("v1", "ServiceAccount"),
        ):
            for obj in self._store.list(api_version, kind):
                owners = obj.get("metadata", {}).get("ownerReferences") or []
                collector_owners = [o for o in owners if o.get("kind") == COLLECTOR_KIND]
                if collector_owners and not any(
                    o.get("uid") in live_uids for o in collector_owners
                ):
                    meta = obj["metadata"]
                    self._store.delete(api_version, kind, meta.get("namespace"), meta["name"])
                    logger.info(
                        "operator deleted %s %s/%s", kind, meta.get("namespace"), meta["name"]
                    )


def _safe_list(
    store: Any, api_version: str, kind: str, namespace: str | None = None
) -> list[dict[str, Any]]:
    """`store.list`, but empty when the kind is not served (e.g. its CRD is not installed)."""
    try:
        return store.list(api_version, kind, namespace)
    except KeyError:
        return []


def _owned_by(obj: dict[str, Any], uid: str | None) -> bool:
    return any(o.get("uid") == uid for o in obj.get("metadata", {}).get("ownerReferences") or [])


def _contains(actual: Any, desired: Any) -> bool:
    """True when every field of `desired` is present in `actual` with the same value.

    Fields the API server or other controllers add (defaults, status, server metadata) do not
    count as differences; only what the operator itself sets does.
    """
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return False
        return all(k in actual and _contains(actual[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return False
        return all(_contains(a, d) for a, d in zip(actual, desired, strict=True))
    return actual == desired


def desired_config(config: dict[str, Any]) -> dict[str, Any]:
    """The collector config as the operator writes it into the ConfigMap (defaults applied)."""
    result = copy.deepcopy(config)
    service = result.setdefault("service", {})
    telemetry = service.setdefault("telemetry", {}) or {}
    service["telemetry"] = telemetry
    metrics = telemetry.setdefault("metrics", {}) or {}
    telemetry["metrics"] = metrics
    if not metrics.get("readers") and not metrics.get("address"):
        # The defaulting webhook makes the internal telemetry reachable on the pod IP.
        metrics["readers"] = [
            {"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": 8888}}}}
        ]
    return result


def desired_objects(collector: dict[str, Any]) -> list[dict[str, Any]]:
    """The ServiceAccount, ConfigMap, workload and Services the operator makes for a collector."""
    meta = collector["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    spec = collector.get("spec") or {}
    mode = spec.get("mode") or "deployment"
    base_name = f"{name}-collector"
    image = spec.get("image") or DEFAULT_COLLECTOR_IMAGE

    config = desired_config(spec.get("config") or {})
    config_text = yaml.safe_dump(config, sort_keys=True)
    config_hash = hashlib.sha256(config_text.encode()).hexdigest()
    config_map_name = f"{base_name}-{config_hash[:8]}"
    telemetry_port = CollectorConfig.from_config(config).telemetry_port

    selector = selector_labels(namespace, name)
    labels = {
        **(meta.get("labels") or {}),
        **selector,
        "app.kubernetes.io/name": base_name,
        "app.kubernetes.io/version": image_version(image),
    }
    owner = [
        {
            "apiVersion": collector.get("apiVersion", COLLECTOR_API),
            "kind": COLLECTOR_KIND,
            "name": name,
            "uid": meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]

    def metadata(object_name: str, extra_labels: dict[str, str] | None = None) -> dict[str, Any]:
        return {
            "name": object_name,
            "namespace": namespace,
            "labels": {**labels, "app.kubernetes.io/name": object_name, **(extra_labels or {})},
            "ownerReferences": copy.deepcopy(owner),
        }

    ports = collector_ports(spec.get("config") or {})
    container_ports = [
        *ports,
        {"name": "metrics", "containerPort": telemetry_port, "protocol": "TCP"},
    ]
    service_ports = [
        {
            k: v
            for k, v in {
                "name": p["name"],
                "port": p["containerPort"],
                "targetPort": p["containerPort"],
                "protocol": "TCP",
                "appProtocol": p.get("appProtocol"),
            }.items()
            if v is not None
        }
        for p in ports
    ]

    pod_spec: dict[str, Any] = {
        "serviceAccountName": spec.get("serviceAccount") or base_name,
        "containers": [
            {
                "name": "otc-container",
                "image": image,
                "imagePullPolicy": spec.get("imagePullPolicy") or "IfNotPresent",
                "args": ["--config=/conf/collector.yaml"],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    *(spec.get("env") or []),
                ],
                "ports": container_ports,
                "volumeMounts": [{"name": "otc-internal", "mountPath": "/conf"}],
            }
        ],
        "volumes": [
            {
                "name": "otc-internal",
                "configMap": {
                    "name": config_map_name,
                    "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
                },
            }
        ],
        "shareProcessNamespace": False,
    }
    if spec.get("tolerations"):
        pod_spec["tolerations"] = copy.deepcopy(spec["tolerations"])
    if spec.get("nodeSelector"):
        pod_spec["nodeSelector"] = dict(spec["nodeSelector"])
    if spec.get("resources"):
        pod_spec["containers"][0]["resources"] = copy.deepcopy(spec["resources"])

    template = {
        "metadata": {
            "labels": dict(labels),
            "annotations": {
                **(spec.get("podAnnotations") or {}),
                CONFIG_HASH_ANNOTATION: config_hash,
                "prometheus.io/path": "/metrics",
                "prometheus.io/port": str(telemetry_port),
                "prometheus.io/scrape": "true",
            },
        },
        "spec": pod_spec,
    }
    workload: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet" if mode == "daemonset" else "Deployment",
        "metadata": metadata(base_name),
        "spec": {"selector": {"matchLabels": dict(selector)}, "template": template},
    }
    if mode != "daemonset":
        workload["spec"]["replicas"] = int(spec.get("replicas") or 1)

    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(base_name)},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(config_map_name)
            | {"labels": {**labels, "app.kubernetes.io/name": base_name}},
            "data": {CONFIG_KEY: config_text},
        },
        workload,
    ]
    if service_ports:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(base_name, {SERVICE_TYPE_LABEL: "base"}),
                "spec": {
                    "type": "ClusterIP",
                    "selector": dict(selector),
                    "ports": service_ports,
                    "internalTrafficPolicy": "Cluster",
                },
            }
        )
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata(f"{base_name}-headless", {SERVICE_TYPE_LABEL: "headless"})
                | {
                    "annotations": {
                        "service.beta.openshift.io/serving-cert-secret-name": (
                            f"{base_name}-headless-tls"
                        )
                    },
                },
                "spec": {"clusterIP": "None", "selector": dict(selector), "ports": service_ports},
            }
        )
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(f"{base_name}-monitoring", {SERVICE_TYPE_LABEL: "monitoring"}),
            "spec": {
                "type": "ClusterIP",
                "selector": dict(selector),
                "ports": [
                    {
                        "name": "monitoring",
                        "port": telemetry_port,
                        "targetPort": telemetry_port,
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )
    if mode not in ("deployment", "daemonset"):
        logger.warning(
            "collector %s/%s: mode %s is run as a Deployment in the sandbox", namespace, name, mode
        )
    return objects
