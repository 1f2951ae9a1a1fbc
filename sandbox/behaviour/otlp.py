"""OTLP metrics in, Prometheus series out: the collector's `otlp` receiver, `prometheus` exporter.

`decode_export_request` reads an OTLP/HTTP body (protobuf or JSON, optionally gzip-compressed),
and `PrometheusExporterStore` keeps the latest value of every series the way the collector's
Prometheus exporter does, translating OpenTelemetry names and attributes with the exporter's
rules:

- metric names: characters outside `[a-zA-Z0-9_:]` become `_` (runs collapse), a unit suffix is
  appended (`s` -> `_seconds`, `By` -> `_bytes`, `1` on a gauge -> `_ratio`; units in braces are
  dropped) and monotonic sums end in `_total`;
- label names: the same character rule, with a `key_` prefix when the name starts with a digit;
- `job` is `service.namespace/service.name` (or `service.name`), `instance` is
  `service.instance.id`; with `resource_to_telemetry_conversion.enabled` every resource attribute
  also becomes a label, otherwise they are published once in `target_info`;
- delta sums and histograms are accumulated into cumulative series; series not updated for
  `metric_expiration` are dropped.

Exponential histograms are not translated (the real exporter has no classic form for them
either); they are counted as accepted and then ignored.
"""

from __future__ import annotations

import gzip
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2

from sandbox.behaviour.promtext import Labels, MetricFamily, Sample, labels_of

DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA

# The unit words the exporter appends to metric names (UCUM-ish units of the semantic conventions).
_UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "%": "percent",
}
_PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "y": "year"}
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_:]+")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]+")


class OtlpDecodeError(ValueError):
    """The request body is not a valid OTLP metrics export request."""


def decode_export_request(
    body: bytes, *, content_type: str, content_encoding: str = ""
) -> ExportMetricsServiceRequest:
    """Decode an OTLP/HTTP metrics body: protobuf or JSON, plain or gzip."""
    if content_encoding.strip().lower() == "gzip":
        try:
            body = gzip.decompress(body)
        except OSError as exc:
            raise OtlpDecodeError(f"gzip body could not be decompressed: {exc}") from None
    request = ExportMetricsServiceRequest()
    media_type = content_type.split(";")[0].strip().lower()
    try:
        if media_type == "application/json":
            json_format.Parse(body.decode("utf-8"), request, ignore_unknown_fields=True)
        else:
            request.ParseFromString(body)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise OtlpDecodeError(f"body is not an ExportMetricsServiceRequest: {exc}") from None
    return request


def any_value_text(value: AnyValue) -> str:
    """An attribute value as the Prometheus exporter writes it into a label."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "array_value":
        return "[" + ",".join(any_value_text(v) for v in value.array_value.values) + "]"
    if kind == "kvlist_value":
        inner = ",".join(f"{kv.key}:{any_value_text(kv.value)}" for kv in value.kvlist_value.values)
        return "{" + inner + "}"
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return str(getattr(value, kind))


def attributes_dict(attributes: list[KeyValue]) -> dict[str, str]:
    """OTLP attributes as a plain `{key: text}` mapping."""
    return {kv.key: any_value_text(kv.value) for kv in attributes}


def sanitize_label_name(name: str) -> str:
    """An attribute key as a Prometheus label name (`service.name` -> `service_name`)."""
    cleaned = _INVALID_LABEL_CHARS.sub("_", name)
    if cleaned and cleaned[0].isdigit():
        cleaned = "key_" + cleaned
    return cleaned or "_"


def unit_suffix(unit: str, *, is_gauge: bool) -> str:
    """The name suffix the exporter derives from an OTel unit ('' when there is none)."""
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()
    if not unit:
        return ""
    if unit == "1":
        return "ratio" if is_gauge else ""
    if "/" in unit:
        main, _, per = unit.partition("/")
        main_word = _UNIT_WORDS.get(main, _INVALID_LABEL_CHARS.sub("_", main).strip("_"))
        per_word = _PER_UNIT_WORDS.get(per, _INVALID_LABEL_CHARS.sub("_", per).strip("_"))
        return "_per_".join(word for word in (main_word, per_word) if word)
    return _UNIT_WORDS.get(unit, _INVALID_LABEL_CHARS.sub("_", unit).strip("_"))


def prometheus_metric_name(
    name: str, *, unit: str, is_gauge: bool, is_counter: bool, namespace: str = ""
) -> str:
    """The Prometheus name of an OTel metric, with the exporter's suffix rules."""
    base = _INVALID_NAME_CHARS.sub("_", name).strip("_") or "_"
    if namespace:
        base = f"{_INVALID_NAME_CHARS.sub('_', namespace)}_{base}"
    suffix = unit_suffix(unit, is_gauge=is_gauge)
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    if is_counter and not base.endswith("_total"):
        base = f"{base}_total"
    if base[0].isdigit():
        base = "_" + base
    return base


@dataclass
class ExporterSettings:
    """The `prometheus` exporter's options that change what it exposes."""

    namespace: str = ""
    const_labels: dict[str, str] = field(default_factory=dict)
    resource_to_telemetry_conversion: bool = False
    metric_expiration: float = 300.0


@dataclass
class _Series:
    """The latest state of one exposed series."""

    labels: Labels
    value: float = 0.0
    buckets: list[tuple[float, float]] = field(default_factory=list)  # (upper bound, cumulative)
    count: float = 0.0
    total: float = 0.0
    quantiles: list[tuple[float, float]] = field(default_factory=list)
    updated: float = 0.0


@dataclass
class _Family:
    name: str
    type: str
    help: str
    series: dict[Labels, _Series] = field(default_factory=dict)


@dataclass
class IngestResult:
    """What one export request brought: accepted and refused data points."""

    accepted_points: int = 0
    refused_points: int = 0


class PrometheusExporterStore:
    """The series a collector's `prometheus` exporter currently exposes.

    Thread-unsafe by design: the sandbox runs everything in one asyncio loop.
    """

    def __init__(self, settings: ExporterSettings | None = None) -> None:
        self.settings = settings or ExporterSettings()
        self._families: dict[str, _Family] = {}
        self._targets: dict[Labels, tuple[Labels, float]] = {}

    def ingest(
        self, request: ExportMetricsServiceRequest, *, now: float | None = None
    ) -> IngestResult:
        """Apply one export request; return how many data points it carried."""
        now = time.time() if now is None else now
        result = IngestResult()
        for resource_metrics in request.resource_metrics:
            resource = attributes_dict(list(resource_metrics.resource.attributes))
            base_labels = self._resource_labels(resource)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    result.accepted_points += self._ingest_metric(metric, base_labels, now)
        return result

    def _resource_labels(self, resource: Mapping[str, str]) -> dict[str, str]:
        labels: dict[str, str] = {}
        if self.settings.resource_to_telemetry_conversion:
            labels.update({sanitize_label_name(k): v for k, v in resource.items()})
        service = resource.get("service.name")
        if service:
            namespace = resource.get("service.namespace")
            labels["job"] = f"{namespace}/{service}" if namespace else service
        if resource.get("service.instance.id"):
            labels["instance"] = resource["service.instance.id"]
        labels.update({sanitize_label_name(k): v for k, v in self.settings.const_labels.items()})
        if not self.settings.resource_to_telemetry_conversion and resource:
            # Without the conversion the exporter still publishes the resource once, as the
            # target_info series keyed by job and instance.
            info = {sanitize_label_name(k): v for k, v in resource.items()}
            info.update({k: labels[k] for k in ("job", "instance") if k in labels})
            for key in ("service_name", "service_namespace", "service_instance_id"):
                info.pop(key, None)
            key = labels_of({k: labels[k] for k in ("job", "instance") if k in labels})
            self._targets[key] = (labels_of(info), time.time())
        return labels

    def _family(self, name: str, type_: str, help_: str) -> _Family:
        family = self._families.get(name)
        if family is None or family.type != type_:
            family = _Family(name=name, type=type_, help=help_)
            self._families[name] = family
        if help_ and not family.help:
            family.help = help_
        return family

    def _ingest_metric(self, metric: metrics_pb2.Metric, base: dict[str, str], now: float) -> int:
        kind = metric.WhichOneof("data")
        if kind == "gauge":
            name = prometheus_metric_name(
                metric.name,
                unit=metric.unit,
                is_gauge=True,
                is_counter=False,
                namespace=self.settings.namespace,
            )
            family = self._family(name, "gauge", metric.description)
            for point in metric.gauge.data_points:
                series = self._series(family, base, point.attributes, now)
                series.value = _number(point)
            return len(metric.gauge.data_points)
        if kind == "sum":
            monotonic = metric.sum.is_monotonic
            name = prometheus_metric_name(
                metric.name,
                unit=metric.unit,
                is_gauge=not monotonic,
                is_counter=monotonic,
                namespace=self.settings.namespace,
            )
            family = self._family(name, "counter" if monotonic else "gauge", metric.description)
            delta = metric.sum.aggregation_temporality == DELTA
            for point in metric.sum.data_points:
                series = self._series(family, base, point.attributes, now)
                series.value = series.value + _number(point) if delta else _number(point)
            return len(metric.sum.data_points)
        if kind == "histogram":
            name = prometheus_metric_name(
                metric.name,
                unit=metric.unit,
                is_gauge=False,
                is_counter=False,
                namespace=self.settings.namespace,
            )
            family = self._family(name, "histogram", metric.description)
            delta = metric.histogram.aggregation_temporality == DELTA
            for point in metric.histogram.data_points:
                series = self._series(family, base, point.attributes, now)
                _apply_histogram(series, point, delta=delta)
            return len(metric.histogram.data_points)
        if kind == "summary":
            name = prometheus_metric_name(
                metric.name,
                unit=metric.unit,
                is_gauge=False,
                is_counter=False,
                namespace=self.settings.namespace,
            )
            family = self._family(name, "summary", metric.description)
            for point in metric.summary.data_points:
                series = self._series(family, base, point.attributes, now)
                series.count = float(point.count)
                series.total = point.sum
                series.quantiles = [(q.quantile, q.value) for q in point.quantile_values]
            return len(metric.summary.data_points)
        if kind == "exponential_histogram":
            return len(metric.exponential_histogram.data_points)
        return 0

    def _series(
        self, family: _Family, base: dict[str, str], attributes: list[KeyValue], now: float
    ) -> _Series:
        labels = dict(base)
        labels.update(
            {sanitize_label_name(k): v for k, v in attributes_dict(list(attributes)).items()}
        )
        key = labels_of(labels)
        series = family.series.get(key)
        if series is None:
            series = _Series(labels=key)
            family.series[key] = series
        series.updated = now
        return series

    def expire(self, *, now: float | None = None) -> None:
        """Forget series not updated within `metric_expiration`, as the exporter does."""
        now = time.time() if now is None else now
        horizon = now - self.settings.metric_expiration
        for family in list(self._families.values()):
            family.series = {k: s for k, s in family.series.items() if s.updated >= horizon}
            if not family.series:
                del self._families[family.name]

    def families(self, *, now: float | None = None) -> list[MetricFamily]:
        """The exposed families, sorted by name, ready for `promtext.render`."""
        self.expire(now=now)
        out: list[MetricFamily] = []
        for family in sorted(self._families.values(), key=lambda f: f.name):
            exposed = MetricFamily(name=family.name, type=family.type, help=family.help)
            for series in family.series.values():
                exposed.samples.extend(_samples_of(family, series))
            out.append(exposed)
        if self._targets:
            info = MetricFamily(name="target_info", type="gauge", help="Target metadata")
            info.samples = [
                Sample("target_info", labels, 1.0) for labels, _ in self._targets.values()
            ]
            out.append(info)
        return out

    def series_count(self) -> int:
        """How many series the exporter currently holds."""
        return sum(len(f.series) for f in self._families.values())


def _number(point: metrics_pb2.NumberDataPoint) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double


def _apply_histogram(
    series: _Series, point: metrics_pb2.HistogramDataPoint, *, delta: bool
) -> None:
    bounds = [*list(point.explicit_bounds), math.inf]
    counts = list(point.bucket_counts) or [0] * len(bounds)
    cumulative: list[tuple[float, float]] = []
    running = 0.0
    for bound, count in zip(bounds, counts, strict=False):
        running += count
        cumulative.append((bound, running))
    if delta and series.buckets and [b for b, _ in series.buckets] == bounds:
        cumulative = [
            (b, c + old) for (b, c), (_, old) in zip(cumulative, series.buckets, strict=True)
        ]
        series.count += point.count
        series.total += point.sum
    else:
        series.count = float(point.count)
        series.total = point.sum
    series.buckets = cumulative


def _samples_of(family: _Family, series: _Series) -> list[Sample]:
    if family.type == "histogram":
        samples = []
        for bound, count in series.buckets:
            le = "+Inf" if math.isinf(bound) else _le_text(bound)
            labels = labels_of(dict(series.labels) | {"le": le})
            samples.append(Sample(f"{family.name}_bucket", labels, count))
        samples.append(Sample(f"{family.name}_sum", series.labels, series.total))
        samples.append(Sample(f"{family.name}_count", series.labels, series.count))
        return samples
    if family.type == "summary":
        samples = [
            Sample(family.name, labels_of(dict(series.labels) | {"quantile": _le_text(q)}), v)
            for q, v in series.quantiles
        ]
        samples.append(Sample(f"{family.name}_sum", series.labels, series.total))
        samples.append(Sample(f"{family.name}_count", series.labels, series.count))
        return samples
    return [Sample(family.name, series.labels, series.value)]


def _le_text(bound: float) -> str:
    return str(int(bound)) if bound == int(bound) else repr(bound)
