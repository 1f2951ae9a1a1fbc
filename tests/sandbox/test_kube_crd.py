"""CustomResourceDefinitions: registration in discovery, custom objects through CustomObjectsApi
and the DynamicClient, schema validation, pruning, and removal with the CRD."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_fixtures import Kube
from kubernetes import dynamic
from kubernetes.client.rest import ApiException

DATA = Path(__file__).resolve().parents[2] / "sandbox" / "data"


def _podmonitor_crd() -> dict[str, Any]:
    documents = yaml.safe_load_all((DATA / "azmonitoring-crds.yaml").read_text())
    return next(d for d in documents if d and d["metadata"]["name"].startswith("podmonitors."))


def _podmonitor(name: str, **endpoint: Any) -> dict[str, Any]:
    return {
        "apiVersion": "azmonitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/component": "opentelemetry-collector"}},
            "podMetricsEndpoints": [
                {"port": "prometheus", "path": "/metrics", "interval": "30s", **endpoint}
            ],
        },
    }


def test_an_established_crd_is_served_in_discovery(kube: Kube) -> None:
    crd = kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    stored = kube.extensions.read_custom_resource_definition(crd.metadata.name)
    conditions = {c.type: c.status for c in stored.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}

    status, resources, _ = kube.http("GET", "/apis/azmonitoring.coreos.com/v1")
    assert status == 200
    podmonitors = next(r for r in resources["resources"] if r["name"] == "podmonitors")
    assert podmonitors["kind"] == "PodMonitor" and podmonitors["shortNames"] == ["pmon"]
    assert podmonitors["namespaced"] is True


def test_custom_objects_are_created_and_listed_through_custom_objects_api(kube: Kube) -> None:
    kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    created = kube.custom.create_namespaced_custom_object(
        "azmonitoring.coreos.com", "v1", "default", "podmonitors", _podmonitor("pm")
    )
    assert created["metadata"]["uid"] and created["metadata"]["generation"] == 1

    listed = kube.custom.list_namespaced_custom_object(
        "azmonitoring.coreos.com", "v1", "default", "podmonitors"
    )
    assert listed["kind"] == "PodMonitorList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["pm"]
    assert listed["items"][0]["apiVersion"] == "azmonitoring.coreos.com/v1"


def test_the_dynamic_client_discovers_a_new_kind_and_applies_it(kube: Kube, tmp_path: Path) -> None:
    kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    client = dynamic.DynamicClient(kube.api_client, cache_file=str(tmp_path / "cache.json"))
    podmonitors = client.resources.get(api_version="azmonitoring.coreos.com/v1", kind="PodMonitor")
    body = {**_podmonitor("pm"), "metadata": {"name": "pm", "namespace": "default"}}
    podmonitors.server_side_apply(
        body=body, namespace="default", field_manager="aks-metrics-pipeline"
    )
    fetched = podmonitors.get(name="pm", namespace="default")
    assert fetched.spec.podMetricsEndpoints[0].port == "prometheus"


def test_custom_objects_are_validated_against_the_crd_schema(kube: Kube) -> None:
    kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    bad = _podmonitor("bad", interval="30 s", scheme="ftp")
    del bad["spec"]["selector"]
    with pytest.raises(ApiException) as error:
        kube.custom.create_namespaced_custom_object(
            "azmonitoring.coreos.com", "v1", "default", "podmonitors", bad
        )
    assert error.value.status == 422
    status = json.loads(error.value.body)
    causes = {(c["field"], c["reason"]) for c in status["details"]["causes"]}
    assert causes == {
        ("spec.selector", "FieldValueRequired"),
        ("spec.podMetricsEndpoints[0].interval", "FieldValueInvalid"),
        ("spec.podMetricsEndpoints[0].scheme", "FieldValueNotSupported"),
    }
    assert status["message"].startswith('PodMonitor.azmonitoring.coreos.com "bad" is invalid: ')


def test_unknown_fields_are_pruned_or_refused_under_strict_validation(kube: Kube) -> None:
    kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    typo = _podmonitor("typo", prot="prometheus")
    status, body, headers = kube.http(
        "POST", "/apis/azmonitoring.coreos.com/v1/namespaces/default/podmonitors", typo
    )
    assert status == 201
    assert "prot" not in body["spec"]["podMetricsEndpoints"][0]
    assert "unknown field" in headers.get("Warning", "")

    strict = _podmonitor("strict", prot="prometheus")
    status, body, _ = kube.http(
        "POST",
        "/apis/azmonitoring.coreos.com/v1/namespaces/default/podmonitors?fieldValidation=Strict",
        strict,
    )
    assert status == 400 and "spec.podMetricsEndpoints[0].prot" in body["message"]


def test_deleting_a_crd_removes_its_objects_and_its_discovery(kube: Kube) -> None:
    crd = kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    kube.custom.create_namespaced_custom_object(
        "azmonitoring.coreos.com", "v1", "default", "podmonitors", _podmonitor("pm")
    )
    kube.extensions.delete_custom_resource_definition(crd.metadata.name)

    status, _, _ = kube.http("GET", "/apis/azmonitoring.coreos.com/v1")
    assert status == 404
    assert kube.store.registry.get("azmonitoring.coreos.com", "podmonitors") is None
    # Recreating the CRD does not bring old objects back.
    kube.extensions.create_custom_resource_definition(_podmonitor_crd())
    listed = kube.custom.list_namespaced_custom_object(
        "azmonitoring.coreos.com", "v1", "default", "podmonitors"
    )
    assert listed["items"] == []


def test_every_served_version_answers_with_its_own_api_version(kube: Kube) -> None:
    documents = yaml.safe_load_all((DATA / "opentelemetry-operator.yaml").read_text())
    crd = next(
        d
        for d in documents
        if d
        and d.get("kind") == "CustomResourceDefinition"
        and d["metadata"]["name"].startswith("opentelemetrycollectors.")
    )
    kube.extensions.create_custom_resource_definition(crd)
    kube.core.create_namespace({"metadata": {"name": "otel"}})
    collector = {
        "apiVersion": "opentelemetry.io/v1beta1",
        "kind": "OpenTelemetryCollector",
        "metadata": {"name": "otel-collector"},
        "spec": {
            "mode": "deployment",
            "config": {
                "receivers": {"otlp": {}},
                "exporters": {"prometheus": {}},
                "service": {
                    "pipelines": {"metrics": {"receivers": ["otlp"], "exporters": ["prometheus"]}}
                },
            },
        },
    }
    kube.custom.create_namespaced_custom_object(
        "opentelemetry.io", "v1beta1", "otel", "opentelemetrycollectors", collector
    )
    old = kube.custom.get_namespaced_custom_object(
        "opentelemetry.io", "v1alpha1", "otel", "opentelemetrycollectors", "otel-collector"
    )
    assert old["apiVersion"] == "opentelemetry.io/v1alpha1"
    groups = {g["name"]: g for g in kube.http("GET", "/apis")[1]["groups"]}
    assert groups["opentelemetry.io"]["preferredVersion"]["version"] == "v1beta1"
