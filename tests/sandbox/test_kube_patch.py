"""PATCH in its four formats, and server-side apply's field ownership, through the Python client
and the DynamicClient."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kube_fixtures import Kube, deployment
from kubernetes import dynamic
from kubernetes.client.rest import ApiException

MANAGER = "aks-metrics-pipeline"


def _dynamic(kube: Kube, tmp_path: Path) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(kube.api_client, cache_file=str(tmp_path / "discovery.json"))


def _patch(kube: Kube, path: str, content_type: str, body: object) -> tuple[int, dict]:
    """A PATCH with an explicit content type, as `kubectl patch --type=...` sends it."""
    status, answer, _ = kube.http("PATCH", path, body, content_type=content_type)
    return status, answer


def test_json_patch_applies_rfc6902_operations(kube: Kube) -> None:
    kube.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}}
    )
    status, _ = _patch(
        kube,
        "/api/v1/namespaces/default/configmaps/a",
        "application/json-patch+json",
        [
            {"op": "replace", "path": "/data/x", "value": "10"},
            {"op": "remove", "path": "/data/y"},
            {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
        ],
    )
    assert status == 200
    stored = kube.core.read_namespaced_config_map("a", "default")
    assert stored.data == {"x": "10"} and stored.metadata.labels == {"k": "v"}

    status, body = _patch(
        kube,
        "/api/v1/namespaces/default/configmaps/a",
        "application/json-patch+json",
        [{"op": "test", "path": "/data/x", "value": "nope"}],
    )
    assert status == 422 and body["kind"] == "Status"


def test_merge_patch_replaces_lists_and_deletes_with_null(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    _patch(
        kube,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/merge-patch+json",
        {
            "metadata": {"labels": {"team": "obs"}},
            "spec": {"template": {"spec": {"containers": [{"name": "other", "image": "x:1"}]}}},
        },
    )
    stored = kube.apps.read_namespaced_deployment("web", "default")
    assert [c.name for c in stored.spec.template.spec.containers] == ["other"]
    _patch(
        kube,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/merge-patch+json",
        {"metadata": {"labels": {"team": None}}},
    )
    assert "team" not in (
        kube.apps.read_namespaced_deployment("web", "default").metadata.labels or {}
    )


def test_strategic_merge_patch_merges_containers_and_env_by_name(kube: Kube) -> None:
    manifest = deployment("web")
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    manifest["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "s:1"})
    kube.apps.create_namespaced_deployment("default", manifest)

    # The client's default for a dict body is a strategic merge patch.
    kube.apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": "busybox:1.37",
                                "env": [{"name": "B", "value": "2"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    containers = kube.apps.read_namespaced_deployment(
        "web", "default"
    ).spec.template.spec.containers
    by_name = {c.name: c for c in containers}
    assert set(by_name) == {"main", "side"}
    assert by_name["main"].image == "busybox:1.37"
    assert {(e.name, e.value) for e in by_name["main"].env} == {("A", "1"), ("B", "2")}

    _patch(
        kube,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/strategic-merge-patch+json",
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
    )
    containers = kube.apps.read_namespaced_deployment(
        "web", "default"
    ).spec.template.spec.containers
    assert [c.name for c in containers] == ["main"]


def test_strategic_merge_patch_on_a_custom_resource_is_415(kube: Kube, tmp_path: Path) -> None:
    _crd(kube)
    kube.custom.create_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", _widget("w")
    )
    status, body = _patch(
        kube,
        "/apis/example.com/v1/namespaces/default/widgets/w",
        "application/strategic-merge-patch+json",
        {"spec": {"size": 2}},
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"
    status, _ = _patch(
        kube,
        "/apis/example.com/v1/namespaces/default/widgets/w",
        "application/merge-patch+json",
        {"spec": {"size": 2}},
    )
    assert status == 200


def test_server_side_apply_creates_then_records_its_manager(kube: Kube, tmp_path: Path) -> None:
    deployments = _dynamic(kube, tmp_path).resources.get(api_version="apps/v1", kind="Deployment")
    created = deployments.server_side_apply(
        body=deployment("web"), namespace="default", field_manager=MANAGER
    )
    assert created.metadata.name == "web"
    entries = created.to_dict()["metadata"]["managedFields"]
    mine = [e for e in entries if e["manager"] == MANAGER]
    assert mine and mine[0]["operation"] == "Apply"
    fields = mine[0]["fieldsV1"]
    assert "f:replicas" in fields["f:spec"]
    assert 'k:{"name":"main"}' in fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert len(kube.core.list_namespaced_pod("default").items) == 1


def test_server_side_apply_without_field_manager_is_refused(kube: Kube) -> None:
    status, body = _patch(
        kube,
        "/apis/apps/v1/namespaces/default/deployments/web",
        "application/apply-patch+yaml",
        deployment("web"),
    )
    assert status == 422 and body["details"]["causes"][0]["field"] == "fieldManager"


def test_a_conflicting_apply_is_409_until_forced(kube: Kube, tmp_path: Path) -> None:
    deployments = _dynamic(kube, tmp_path).resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(
        body=deployment("web", replicas=1), namespace="default", field_manager=MANAGER
    )

    with pytest.raises(ApiException) as error:
        deployments.server_side_apply(
            body=deployment("web", replicas=3), namespace="default", field_manager="someone-else"
        )
    assert error.value.status == 409
    status = json.loads(error.value.body)
    assert status["reason"] == "Conflict"
    assert {
        "reason": "FieldManagerConflict",
        "field": ".spec.replicas",
        "message": f'conflict with "{MANAGER}" using apps/v1',
    } in status["details"]["causes"]

    forced = deployments.server_side_apply(
        body=deployment("web", replicas=3),
        namespace="default",
        field_manager="someone-else",
        force_conflicts=True,
    )
    assert forced.spec.replicas == 3
    owners = {e["manager"]: e["fieldsV1"] for e in forced.to_dict()["metadata"]["managedFields"]}
    assert "f:replicas" in owners["someone-else"]["f:spec"]
    assert "f:replicas" not in owners[MANAGER]["f:spec"]


def test_applying_the_same_value_as_another_manager_shares_the_field(
    kube: Kube, tmp_path: Path
) -> None:
    deployments = _dynamic(kube, tmp_path).resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(
        body=deployment("web"), namespace="default", field_manager=MANAGER
    )
    shared = deployments.server_side_apply(
        body=deployment("web"), namespace="default", field_manager="twin"
    )
    assert {e["manager"] for e in shared.metadata.managedFields} == {MANAGER, "twin"}


def test_fields_an_applier_stops_applying_are_removed(kube: Kube, tmp_path: Path) -> None:
    configmaps = _dynamic(kube, tmp_path).resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "default", "labels": {"a": "1", "b": "2"}},
        "data": {"keep": "1", "drop": "2"},
    }
    configmaps.server_side_apply(body=body, namespace="default", field_manager=MANAGER)
    kube.core.patch_namespaced_config_map("cfg", "default", {"data": {"theirs": "3"}})

    body["data"] = {"keep": "1"}
    body["metadata"]["labels"] = {"a": "1"}
    after = configmaps.server_side_apply(body=body, namespace="default", field_manager=MANAGER)
    stored = after.to_dict()
    assert stored["data"] == {"keep": "1", "theirs": "3"}
    assert stored["metadata"]["labels"] == {"a": "1"}


def test_a_rollout_restart_annotation_survives_the_next_apply(kube: Kube, tmp_path: Path) -> None:
    deployments = _dynamic(kube, tmp_path).resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(
        body=deployment("web"), namespace="default", field_manager=MANAGER
    )
    stamp = "2026-01-01T00:00:00Z"
    kube.apps.patch_namespaced_deployment(
        "web",
        "default",
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        },
        field_manager="restart",
    )

    again = deployments.server_side_apply(
        body=deployment("web"), namespace="default", field_manager=MANAGER
    )
    assert again.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] == stamp


def test_apply_with_dry_run_changes_nothing(kube: Kube, tmp_path: Path) -> None:
    deployments = _dynamic(kube, tmp_path).resources.get(api_version="apps/v1", kind="Deployment")
    deployments.server_side_apply(
        body=deployment("web"), namespace="default", field_manager=MANAGER, dry_run="All"
    )
    assert kube.apps.list_namespaced_deployment("default").items == []


def _crd(kube: Kube) -> None:
    kube.extensions.create_custom_resource_definition(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "scope": "Namespaced",
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"size": {"type": "integer"}},
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )


def _widget(name: str) -> dict:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1},
    }
