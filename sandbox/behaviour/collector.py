"""The OpenTelemetry Collector's data path, one in-memory collector per collector pod.

Every pod the operator's Deployment produces (labels `app.kubernetes.io/component=
opentelemetry-collector`, `app.kubernetes.io/managed-by=opentelemetry-operator`) gets a
`CollectorInstance` that reads the configuration the pod mounts (the operator's
`<name>-collector-<hash>` ConfigMap) and serves, on the pod network:

- the `otlp` receiver's HTTP endpoint: `POST /v1/metrics` (protobuf or JSON, gzip allowed);
- the `prometheus` exporter: `GET /metrics` on the exporter's port (8889 in the seed);
- the collector's own telemetry: `GET /metrics` on 8888 (`otelcol_*` series).

The `batch` processor is applied loosely: exported points are visible at once (sandbox time is
accelerated), and the batch processor's counters count one batch per export request. A new pod
starts empty, as a restarted collector does.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)

from sandbox.behaviour import promtext
from sandbox.behaviour.network import HttpRequest, HttpResponse, PodNetwork, pod_key
from sandbox.behaviour.otlp import (
    ExporterSettings,
    OtlpDecodeError,
    PrometheusExporterStore,
    decode_export_request,
)
from sandbox.behaviour.promtext import MetricFamily, Sample, labels_of

logger = logging.getLogger(__name__)

COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
INSTANCE_LABEL = "app.kubernetes.io/instance"
CONFIG_KEY = "collector.yaml"
DEFAULT_TELEMETRY_PORT = 8888
COLLECTOR_VERSION = "0.158.0"

_PORT_AT_END = re.compile(r":(\d{1,5})$")


def endpoint_port(endpoint: Any, default: int | None) -> int | None:
    """The port of a collector endpoint such as `0.0.0.0:4318` or `${env:MY_POD_IP}:4318`."""
    if not isinstance(endpoint, str):
        return default
    match = _PORT_AT_END.search(endpoint.strip())
    return int(match.group(1)) if match else default


def is_collector_pod(pod: dict[str, Any]) -> bool:
    """True for pods the OpenTelemetry operator made for a collector."""
    labels = pod.get("metadata", {}).get("labels") or {}
    return (
        labels.get(COMPONENT_LABEL) == "opentelemetry-collector"
        and labels.get(MANAGED_BY_LABEL) == "opentelemetry-operator"
    )


@dataclass
class CollectorConfig:
    """The parts of a collector configuration that decide what the sandbox collector serves."""

    otlp_http_port: int | None = None
    otlp_grpc_port: int | None = None
    exporter_port: int | None = None
    telemetry_port: int = DEFAULT_TELEMETRY_PORT
    exporter: ExporterSettings = field(default_factory=ExporterSettings)
    metrics_pipeline: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CollectorConfig:
        """Read the receivers, the exporter and the telemetry port from a collector config."""
        receivers = config.get("receivers") or {}
        exporters = config.get("exporters") or {}
        service = config.get("service") or {}
        pipelines = service.get("pipelines") or {}

        # Only components wired into a metrics pipeline do anything, as in the real collector.
        metrics_pipelines = [p for name, p in pipelines.items() if name.split("/")[0] == "metrics"]
        used_receivers = {r for p in metrics_pipelines for r in (p or {}).get("receivers") or []}
        used_exporters = {e for p in metrics_pipelines for e in (p or {}).get("exporters") or []}

        result = cls(metrics_pipeline=bool(metrics_pipelines))
        otlp_name = next((r for r in used_receivers if r.split("/")[0] == "otlp"), None)
        if otlp_name is not None:
            protocols = (receivers.get(otlp_name) or {}).get("protocols") or {}
            if "http" in protocols:
                result.otlp_http_port = endpoint_port(
                    (protocols["http"] or {}).get("endpoint"), 4318
                )
            if "grpc" in protocols:
                result.otlp_grpc_port = endpoint_port(
                    (protocols["grpc"] or {}).get("endpoint"), 4317
                )
        prom_name = next((e for e in used_exporters if e.split("/")[0] == "prometheus"), None)
        if prom_name is not None:
            settings = exporters.get(prom_name) or {}
            result.exporter_port = endpoint_port(settings.get("endpoint"), None)
            conversion = settings.get("resource_to_telemetry_conversion") or {}
            result.exporter = ExporterSettings(
                namespace=str(settings.get("namespace") or ""),
                const_labels={
                    str(k): str(v) for k, v in (settings.get("const_labels") or {}).items()
                },
                resource_to_telemetry_conversion=bool(conversion.get("enabled", False)),
                metric_expiration=_duration_seconds(settings.get("metric_expiration"), 300.0),
            )
        result.telemetry_port = _telemetry_port(service.get("telemetry") or {})
        return result


def _telemetry_port(telemetry: dict[str, Any]) -> int:
    metrics = telemetry.get("metrics") or {}
    if metrics.get("address"):
        return endpoint_port(metrics["address"], DEFAULT_TELEMETRY_PORT) or DEFAULT_TELEMETRY_PORT
    for reader in metrics.get("readers") or []:
        prometheus = ((reader or {}).get("pull") or {}).get("exporter", {}).get("prometheus") or {}
        if prometheus.get("port"):
            return int(prometheus["port"])
    return DEFAULT_TELEMETRY_PORT


def _duration_seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", str(value).strip())
    if not match:
        return default
    number, unit = float(match.group(1)), match.group(2)
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


class CollectorInstance:
    """One collector process: its receiver, its exporter's series and its own counters."""

    def __init__(self, *, pod: dict[str, Any], config: CollectorConfig) -> None:
        self.pod_name = pod_key(pod)
        self.pod_uid = pod.get("metadata", {}).get("uid", "")
        self.config = config
        self.store = PrometheusExporterStore(config.exporter)
        self.started = time.time()
        self.accepted_points = 0
        self.refused_points = 0
        self.export_requests = 0

    def handle(self, port: int, request: HttpRequest) -> HttpResponse | None:
        """Serve one request on `port`; None when this collector does not listen there."""
        path = request.path or "/"
        if port == self.config.otlp_http_port:
            if path != "/v1/metrics":
                return _text(404, "404 page not found\n")
            if request.method != "POST":
                return _text(405, f"{request.method} method not allowed, supported: [POST]\n")
            return self._receive(request)
        if port == self.config.exporter_port:
            if request.method not in ("GET", "HEAD"):
                return _text(405, "Method Not Allowed\n")
            text = promtext.render(self.store.families()) if path == "/metrics" else None
            return _metrics(text)
        if port == self.config.telemetry_port:
            text = promtext.render(self.telemetry()) if path == "/metrics" else None
            return _metrics(text)
        return None

    def _receive(self, request: HttpRequest) -> HttpResponse:
        content_type = request.header("Content-Type", "application/x-protobuf")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in ("application/x-protobuf", "application/json"):
            return _text(
                415,
                "415 unsupported media type, supported: [application/json, "
                "application/x-protobuf]\n",
            )
        try:
            export = decode_export_request(
                request.body,
                content_type=content_type,
                content_encoding=request.header("Content-Encoding"),
            )
        except OtlpDecodeError as exc:
            self.refused_points += 1
            return _text(400, f"{exc}\n")

        result = self.store.ingest(export)
        self.accepted_points += result.accepted_points
        self.export_requests += 1
        logger.debug("collector %s accepted %d points", self.pod_name, result.accepted_points)

        reply = ExportMetricsServiceResponse()
        if media_type == "application/json":
            return HttpResponse(200, {"Content-Type": "application/json"}, b"{}")
        return HttpResponse(
            200, {"Content-Type": "application/x-protobuf"}, reply.SerializeToString()
        )

    def telemetry(self) -> list[MetricFamily]:
        """The collector's own `otelcol_*` metrics, as served on its telemetry port."""
        base = {
            "service_instance_id": self.pod_uid or self.pod_name,
            "service_name": "otelcol",
            "service_version": COLLECTOR_VERSION,
        }

        def family(name: str, type_: str, help_: str, value: float, **extra: str) -> MetricFamily:
            return MetricFamily(
                name=name,
                type=type_,
                help=help_,
                samples=[Sample(name, labels_of(base | extra), value)],
            )

        return [
            family(
                "otelcol_exporter_sent_metric_points_total",
                "counter",
                "Number of metric points successfully sent to destination.",
                self.accepted_points,
                exporter="prometheus",
            ),
            family(
                "otelcol_process_uptime_seconds_total",
                "counter",
                "Uptime of the process",
                round(time.time() - self.started, 3),
            ),
            family(
                "otelcol_processor_batch_batch_send_size_count",
                "counter",
                "Number of batches sent by the batch processor",
                self.export_requests,
                processor="batch",
            ),
            family(
                "otelcol_receiver_accepted_metric_points_total",
                "counter",
                "Number of metric points successfully pushed into the pipeline.",
                self.accepted_points,
                receiver="otlp",
                transport="http",
            ),
            family(
                "otelcol_receiver_refused_metric_points_total",
                "counter",
                "Number of metric points that could not be pushed into the pipeline.",
                self.refused_points,
                receiver="otlp",
                transport="http",
            ),
            family(
                "otelcol_exporter_prometheus_series",
                "gauge",
                "Series currently exposed by the prometheus exporter (sandbox).",
                self.store.series_count(),
            ),
        ]


def _text(status: int, text: str) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "text/plain; charset=utf-8"}, text.encode())


def _metrics(text: str | None) -> HttpResponse:
    if text is None:
        return _text(404, "404 page not found\n")
    return HttpResponse(200, {"Content-Type": promtext.CONTENT_TYPE}, text.encode())


class CollectorFleet:
    """Starts a `CollectorInstance` for each running collector pod and serves it on the network."""

    def __init__(self, store: Any, network: PodNetwork) -> None:
        self._store = store
        self._instances: dict[str, CollectorInstance] = {}
        network.listen(self._listener)

    def instance(self, pod: dict[str, Any]) -> CollectorInstance | None:
        """The collector running in `pod`, started on first use (None for other pods)."""
        if not is_collector_pod(pod):
            return None
        uid = pod.get("metadata", {}).get("uid") or pod_key(pod)
        instance = self._instances.get(uid)
        if instance is None:
            config = self._config_of(pod)
            if config is None:
                return None
            instance = CollectorInstance(pod=pod, config=config)
            self._instances[uid] = instance
            logger.info("collector started in pod %s", pod_key(pod))
        return instance

    def forget(self, pod: dict[str, Any]) -> None:
        """Drop the state of a deleted pod; a replacement pod starts empty."""
        uid = pod.get("metadata", {}).get("uid") or pod_key(pod)
        self._instances.pop(uid, None)

    def on_event(self, event: str, obj: dict[str, Any]) -> None:
        """Store subscription: forget collectors whose pods are gone."""
        if obj.get("kind") == "Pod" and event == "DELETED":
            self.forget(obj)

    def _listener(
        self, pod: dict[str, Any], port: int, request: HttpRequest
    ) -> HttpResponse | None:
        instance = self.instance(pod)
        return instance.handle(port, request) if instance is not None else None

    def _config_of(self, pod: dict[str, Any]) -> CollectorConfig | None:
        """The configuration the pod mounts from the operator's ConfigMap."""
        namespace = pod["metadata"].get("namespace")
        for volume in pod.get("spec", {}).get("volumes") or []:
            config_map = (volume or {}).get("configMap")
            if not config_map:
                continue
            cm = self._store.get("v1", "ConfigMap", namespace, config_map.get("name", ""))
            text = ((cm or {}).get("data") or {}).get(CONFIG_KEY)
            if text:
                try:
                    return CollectorConfig.from_config(yaml.safe_load(text) or {})
                except yaml.YAMLError:
                    logger.warning("collector config in %s is not YAML", config_map.get("name"))
                    return None
        return None
