"""The sandbox's pure translation pieces: OTLP to Prometheus, the exposition format, relabelling,
the workspace's query subset and the busybox shell. No servers; each test is milliseconds."""

from __future__ import annotations

import gzip
import math

import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

from sandbox.behaviour import promtext
from sandbox.behaviour.otlp import (
    ExporterSettings,
    OtlpDecodeError,
    PrometheusExporterStore,
    decode_export_request,
    prometheus_metric_name,
)
from sandbox.behaviour.promtext import Sample, labels_of
from sandbox.behaviour.scrape import Target, label_scraped, parse_duration, relabel
from sandbox.behaviour.shell import Busybox
from sandbox.behaviour.workspace import QueryError, Workspace, evaluate, parse_query


def _export_body() -> bytes:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "checkout", "service.instance.id": "pod-1"}),
    )
    meter = provider.get_meter("test")
    meter.create_counter("http.requests", unit="{request}").add(3, {"http.route": "/pay"})
    meter.create_histogram("http.server.duration", unit="ms").record(12.5)
    meter.create_up_down_counter("queue.size", unit="By").add(5)
    return encode_metrics(reader.get_metrics_data()).SerializeToString()


def _families(settings: ExporterSettings, body: bytes) -> dict[str, promtext.MetricFamily]:
    store = PrometheusExporterStore(settings)
    store.ingest(decode_export_request(body, content_type="application/x-protobuf"))
    text = promtext.render(store.families())
    return {family.name: family for family in promtext.parse(text)}


def test_counter_gets_total_suffix_and_job_instance_from_the_resource() -> None:
    families = _families(ExporterSettings(), _export_body())

    sample = families["http_requests_total"].samples[0]
    assert families["http_requests_total"].type == "counter"
    assert sample.value == 3
    assert sample.label("job") == "checkout"
    assert sample.label("instance") == "pod-1"
    assert sample.label("http_route") == "/pay"
    # Without the conversion resource attributes stay out of the series, in target_info.
    assert sample.label("service_name") is None
    assert "target_info" in families


def test_resource_to_telemetry_conversion_turns_resource_attributes_into_labels() -> None:
    families = _families(ExporterSettings(resource_to_telemetry_conversion=True), _export_body())

    assert families["http_requests_total"].samples[0].label("service_name") == "checkout"


def test_units_become_suffixes_and_histograms_get_buckets() -> None:
    families = _families(ExporterSettings(), _export_body())

    histogram = families["http_server_duration_milliseconds"]
    assert histogram.type == "histogram"
    buckets = [s for s in histogram.samples if s.name.endswith("_bucket")]
    assert buckets[-1].label("le") == "+Inf" and buckets[-1].value == 1
    assert families["queue_size_bytes"].type == "gauge"
    assert prometheus_metric_name("a.b", unit="1", is_gauge=True, is_counter=False) == "a_b_ratio"


def test_json_and_gzip_bodies_decode_like_protobuf() -> None:
    body = _export_body()
    request = decode_export_request(body, content_type="application/x-protobuf")
    as_json = json_format.MessageToJson(request).encode()

    from_json = decode_export_request(as_json, content_type="application/json")
    from_gzip = decode_export_request(
        gzip.compress(body), content_type="application/x-protobuf", content_encoding="gzip"
    )

    assert from_json == request == from_gzip
    with pytest.raises(OtlpDecodeError):
        decode_export_request(b"\xff\xfe not protobuf", content_type="application/x-protobuf")


def test_exposition_text_round_trips_escapes_and_special_values() -> None:
    family = promtext.MetricFamily(
        name="x",
        type="gauge",
        help="line\nbreak",
        samples=[Sample("x", labels_of({"path": 'a"b\\c'}), math.inf)],
    )
    text = promtext.render([family])

    parsed = promtext.parse(text)[0]
    assert parsed.help == "line\\nbreak"
    assert parsed.samples[0].label("path") == 'a"b\\c'
    assert parsed.samples[0].value == math.inf
    with pytest.raises(promtext.ParseError):
        promtext.parse('x{a="unterminated} 1')


def test_replace_relabelling_without_source_labels_sets_a_constant() -> None:
    relabelled = relabel(
        {"__name__": "otelcol_up"},
        [{"targetLabel": "source", "replacement": "otel-collector", "action": "replace"}],
    )

    assert relabelled == {"__name__": "otelcol_up", "source": "otel-collector"}


def test_relabel_keep_drop_and_capture_groups() -> None:
    labels = {"pod": "collector-abc", "namespace": "ns"}

    assert relabel(labels, [{"sourceLabels": ["pod"], "regex": "web-.*", "action": "keep"}]) is None
    assert (
        relabel(labels, [{"sourceLabels": ["pod"], "regex": "collector-.*", "action": "drop"}])
        is None
    )
    moved = relabel(
        labels,
        [
            {
                "sourceLabels": ["pod"],
                "regex": "(.*)-(.*)",
                "targetLabel": "suffix",
                "replacement": "$2",
            }
        ],
    )
    assert moved is not None and moved["suffix"] == "abc"


def test_scraped_labels_that_clash_with_target_labels_become_exported() -> None:
    target = Target(
        pod={},
        port=8889,
        path="/metrics",
        interval=30,
        labels={"job": "ns/pm", "instance": "10.244.0.5:8889"},
    )
    samples = [Sample("m", labels_of({"job": "checkout", "run": "1"}), 1.0)]

    labelled = label_scraped(samples, target, {"cluster": "c"})[0]

    assert labelled.label("job") == "ns/pm"
    assert labelled.label("exported_job") == "checkout"
    assert labelled.label("cluster") == "c"
    assert parse_duration("1m30s") == 90 and parse_duration("bogus") == 30


def test_workspace_query_selectors_and_aggregations() -> None:
    workspace = Workspace("w")
    workspace.append(Sample("up", labels_of({"job": "a", "pod": "p1"}), 1.0), at=100.0)
    workspace.append(Sample("up", labels_of({"job": "b", "pod": "p2"}), 0.0), at=100.0)

    assert len(evaluate(workspace, parse_query("up"), at=110.0)) == 2
    only_a = evaluate(workspace, parse_query('up{job="a"}'), at=110.0)
    assert only_a == [({"__name__": "up", "job": "a", "pod": "p1"}, 1.0)]
    assert evaluate(workspace, parse_query('up{job=~"a|b",pod!="p2"}'), at=110.0)[0][1] == 1.0
    assert evaluate(workspace, parse_query("count(up)"), at=110.0) == [({}, 2.0)]
    assert evaluate(workspace, parse_query("sum by (job) (up)"), at=110.0)[0][0] == {"job": "a"}
    # Older than the five-minute lookback: gone.
    assert evaluate(workspace, parse_query("up"), at=100.0 + 301) == []


@pytest.mark.parametrize("bad", ["", "up{", 'up{job="a"', "rate(up[5m])", "{}"])
def test_workspace_refuses_queries_outside_the_subset(bad: str) -> None:
    with pytest.raises(QueryError):
        parse_query(bad)


def test_busybox_cat_grep_pipelines_and_exit_codes() -> None:
    files = {"/var/log/a.log": "ok line\nError in SSL handshake\n"}
    shell = Busybox(files=lambda: files)

    assert shell.run(["cat", "/var/log/a.log"]).stdout == files["/var/log/a.log"]
    missing = shell.run(["cat", "/nope"])
    assert missing.exit_code == 1
    assert missing.stderr == "cat: can't open '/nope': No such file or directory\n"
    assert shell.run(["sh", "-c", "cat /var/log/a.log | grep -c SSL"]).stdout == "1\n"
    assert shell.run(["sh", "-c", "grep -q nothing /var/log/a.log"]).exit_code == 1
    assert shell.run(["test", "-f", "/var/log/a.log"]).exit_code == 0
    assert shell.run(["ls", "/var/log"]).stdout == "a.log\n"
    assert "executable file not found" in (shell.run(["curl", "x"]).error or "")
