"""The sandbox's Kubernetes API, driven by the official Python client: CRUD, selectors, status
codes and Status bodies, resourceVersion and generation, subresources, watch, discovery."""

from __future__ import annotations

import json
import threading

import pytest
from kube_fixtures import Kube, deployment
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def _cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def _status(error: ApiException) -> dict:
    return json.loads(error.body)


def test_version_and_legacy_discovery_list_the_served_kinds(kube: Kube) -> None:
    assert client.VersionApi(kube.api_client).get_code().git_version == "v1.32.4"
    core = client.CoreApi(kube.api_client).get_api_versions()
    assert core.versions == ["v1"]

    resources = kube.core.get_api_resources().resources
    by_name = {r.name: r for r in resources}
    assert by_name["pods"].short_names == ["po"]
    assert by_name["services"].short_names == ["svc"]
    assert "pods/exec" in by_name and "pods/log" in by_name and "services/proxy" in by_name
    apps = {r.name: r for r in kube.apps.get_api_resources().resources}
    assert apps["deployments"].short_names == ["deploy"]
    assert apps["deployments/scale"].kind == "Scale"
    groups = {g.name for g in client.ApisApi(kube.api_client).get_api_versions().groups}
    assert {
        "apps",
        "apiextensions.k8s.io",
        "rbac.authorization.k8s.io",
        "admissionregistration.k8s.io",
    } <= groups


def test_create_answers_201_with_server_fields_and_409_on_a_duplicate(kube: Kube) -> None:
    _, code, _ = kube.core.create_namespaced_config_map_with_http_info("default", _cm("a"))
    assert code == 201
    stored = kube.core.read_namespaced_config_map("a", "default")
    assert stored.metadata.uid and stored.metadata.creation_timestamp
    assert stored.metadata.namespace == "default"
    assert int(stored.metadata.resource_version) > 0

    with pytest.raises(ApiException) as error:
        kube.core.create_namespaced_config_map("default", _cm("a"))
    assert error.value.status == 409
    body = _status(error.value)
    assert body["kind"] == "Status" and body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "a" already exists'


def test_get_of_a_missing_object_is_404_not_found_with_the_qualified_resource(kube: Kube) -> None:
    with pytest.raises(ApiException) as error:
        kube.apps.read_namespaced_deployment("nope", "default")
    assert error.value.status == 404
    body = _status(error.value)
    assert body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    assert body["details"] == {"name": "nope", "group": "apps", "kind": "deployments"}


def test_objects_cannot_be_created_in_a_missing_namespace_or_with_a_bad_name(kube: Kube) -> None:
    with pytest.raises(ApiException) as missing:
        kube.core.create_namespaced_config_map("ghost", _cm("a"))
    assert missing.value.status == 404
    assert _status(missing.value)["message"] == 'namespaces "ghost" not found'

    with pytest.raises(ApiException) as invalid:
        kube.core.create_namespaced_config_map("default", _cm("Not_Valid"))
    assert invalid.value.status == 422
    cause = _status(invalid.value)["details"]["causes"][0]
    assert cause["field"] == "metadata.name" and cause["reason"] == "FieldValueInvalid"


def test_generate_name_gives_a_unique_suffix(kube: Kube) -> None:
    first = kube.core.create_namespaced_config_map("default", {"metadata": {"generateName": "x-"}})
    second = kube.core.create_namespaced_config_map("default", {"metadata": {"generateName": "x-"}})
    assert first.metadata.name.startswith("x-") and len(first.metadata.name) == 7
    assert first.metadata.name != second.metadata.name


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("tier=web", {"a", "b"}),
        ("tier==web", {"a", "b"}),
        ("tier!=web", {"c", "d"}),
        ("tier in (web,db)", {"a", "b", "c"}),
        ("tier notin (web)", {"c", "d"}),
        ("env", {"a"}),
        ("!env", {"b", "c", "d"}),
        ("tier=web,env=prod", {"a"}),
    ],
)
def test_label_selectors_filter_lists(kube: Kube, selector: str, expected: set[str]) -> None:
    kube.core.create_namespaced_config_map("default", _cm("a", {"tier": "web", "env": "prod"}))
    kube.core.create_namespaced_config_map("default", _cm("b", {"tier": "web"}))
    kube.core.create_namespaced_config_map("default", _cm("c", {"tier": "db"}))
    kube.core.create_namespaced_config_map("default", _cm("d"))

    items = kube.core.list_namespaced_config_map("default", label_selector=selector).items
    assert {item.metadata.name for item in items} - {"kube-root-ca.crt"} == expected


def test_field_selectors_and_cluster_wide_lists(kube: Kube) -> None:
    kube.core.create_namespace({"metadata": {"name": "other"}})
    kube.core.create_namespaced_config_map("default", _cm("same"))
    kube.core.create_namespaced_config_map("other", _cm("same"))

    everywhere = kube.core.list_config_map_for_all_namespaces(field_selector="metadata.name=same")
    assert sorted(i.metadata.namespace for i in everywhere.items) == ["default", "other"]
    only_other = kube.core.list_config_map_for_all_namespaces(
        field_selector="metadata.name=same,metadata.namespace!=default"
    )
    assert [i.metadata.namespace for i in only_other.items] == ["other"]
    assert int(everywhere.metadata.resource_version) >= 1


def test_list_pages_with_limit_and_continue(kube: Kube) -> None:
    for index in range(5):
        kube.core.create_namespaced_config_map("default", _cm(f"page-{index}", {"p": "1"}))
    first = kube.core.list_namespaced_config_map("default", label_selector="p", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    rest = kube.core.list_namespaced_config_map(
        "default", label_selector="p", limit=10, _continue=first.metadata._continue
    )
    names = [i.metadata.name for i in first.items + rest.items]
    assert names == [f"page-{i}" for i in range(5)]
    assert rest.metadata._continue is None


def test_replace_with_a_stale_resource_version_is_a_409_conflict(kube: Kube) -> None:
    created = kube.core.create_namespaced_config_map("default", _cm("a", k="1"))
    created.data = {"k": "2"}
    updated = kube.core.replace_namespaced_config_map("a", "default", created)
    assert updated.data == {"k": "2"}
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)

    created.data = {"k": "3"}  # still carries the first resourceVersion
    with pytest.raises(ApiException) as error:
        kube.core.replace_namespaced_config_map("a", "default", created)
    assert error.value.status == 409
    assert _status(error.value)["reason"] == "Conflict"
    assert "the object has been modified" in _status(error.value)["message"]


def test_a_write_that_changes_nothing_keeps_the_resource_version(kube: Kube) -> None:
    created = kube.core.create_namespaced_config_map("default", _cm("a", k="1"))
    again = kube.core.replace_namespaced_config_map("a", "default", created)
    assert again.metadata.resource_version == created.metadata.resource_version


def test_generation_bumps_on_spec_changes_only(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    first = kube.apps.read_namespaced_deployment("web", "default")
    assert first.metadata.generation == 1

    kube.apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert kube.apps.read_namespaced_deployment("web", "default").metadata.generation == 1
    kube.apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    assert kube.apps.read_namespaced_deployment("web", "default").metadata.generation == 2


def test_the_status_subresource_writes_only_status(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    kube.apps.patch_namespaced_deployment_status(
        "web",
        "default",
        {"status": {"conditions": [{"type": "Custom", "status": "True"}]}, "spec": {"replicas": 5}},
    )
    after = kube.apps.read_namespaced_deployment("web", "default")
    assert after.spec.replicas == 1
    assert any(c.type == "Custom" for c in after.status.conditions)

    # ...and a write to the main resource leaves status alone.
    kube.apps.patch_namespaced_deployment("web", "default", {"status": {"replicas": 42}})
    assert kube.apps.read_namespaced_deployment("web", "default").status.replicas != 42


def test_scale_subresource_reads_and_sets_replicas(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    scale = kube.apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=web"
    kube.apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 3}})
    assert kube.apps.read_namespaced_deployment("web", "default").spec.replicas == 3
    assert len(kube.core.list_namespaced_pod("default", label_selector="app=web").items) == 3


def test_dry_run_persists_nothing(kube: Kube) -> None:
    answer = kube.core.create_namespaced_config_map("default", _cm("dry"), dry_run="All")
    assert answer.metadata.name == "dry"
    with pytest.raises(ApiException) as error:
        kube.core.read_namespaced_config_map("dry", "default")
    assert error.value.status == 404


def test_delete_answers_a_success_status_and_removes_the_object(kube: Kube) -> None:
    kube.core.create_namespaced_config_map("default", _cm("a"))
    answer = kube.core.delete_namespaced_config_map("a", "default")
    assert answer["status"] == "Success" and answer["details"]["name"] == "a"
    with pytest.raises(ApiException) as error:
        kube.core.delete_namespaced_config_map("a", "default")
    assert error.value.status == 404


def test_deleting_a_namespace_deletes_its_objects(kube: Kube) -> None:
    kube.core.create_namespace({"metadata": {"name": "gone"}})
    kube.core.create_namespaced_config_map("gone", _cm("a"))
    kube.core.delete_namespace("gone")
    assert (
        kube.core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=gone").items
        == []
    )
    with pytest.raises(ApiException) as protected:
        kube.core.delete_namespace("kube-system")
    assert protected.value.status == 403


def test_deleting_a_deployment_deletes_its_replicasets_and_pods(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    assert len(kube.core.list_namespaced_pod("default").items) == 2
    kube.apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    assert kube.apps.list_namespaced_replica_set("default").items == []
    assert kube.core.list_namespaced_pod("default").items == []


def test_orphan_propagation_keeps_the_dependents(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    kube.apps.delete_namespaced_deployment("web", "default", propagation_policy="Orphan")
    assert len(kube.apps.list_namespaced_replica_set("default").items) == 1


def test_delete_collection_by_label(kube: Kube) -> None:
    kube.core.create_namespaced_config_map("default", _cm("a", {"drop": "yes"}))
    kube.core.create_namespaced_config_map("default", _cm("b", {"drop": "no"}))
    kube.core.delete_collection_namespaced_config_map("default", label_selector="drop=yes")
    names = {i.metadata.name for i in kube.core.list_namespaced_config_map("default").items}
    assert "a" not in names and "b" in names


def test_watch_streams_the_backlog_then_changes_and_ends_at_its_timeout(kube: Kube) -> None:
    kube.core.create_namespaced_config_map("default", _cm("before", {"w": "1"}))
    events: list[tuple[str, str]] = []

    def consume() -> None:
        stream = watch.Watch().stream(
            kube.core.list_namespaced_config_map, "default", label_selector="w=1", timeout_seconds=2
        )
        for event in stream:
            events.append((event["type"], event["object"].metadata.name))
            if len(events) == 4:
                break

    reader = threading.Thread(target=consume)
    reader.start()
    # The backlog arrives first; wait for it before changing anything.
    for _ in range(200):
        if events:
            break
        threading.Event().wait(0.01)
    kube.core.create_namespaced_config_map("default", _cm("after", {"w": "1"}))
    kube.core.create_namespaced_config_map("default", _cm("unwatched", {"w": "2"}))
    kube.core.patch_namespaced_config_map("after", "default", {"data": {"k": "v"}})
    kube.core.delete_namespaced_config_map("before", "default")
    reader.join(timeout=10)
    assert events == [
        ("ADDED", "before"),
        ("ADDED", "after"),
        ("MODIFIED", "after"),
        ("DELETED", "before"),
    ]


def test_watch_from_a_resource_version_replays_later_changes(kube: Kube) -> None:
    listed = kube.core.list_namespaced_config_map("default")
    kube.core.create_namespaced_config_map("default", _cm("later"))
    kube.core.patch_namespaced_config_map("later", "default", {"metadata": {"labels": {"a": "b"}}})
    stream = watch.Watch().stream(
        kube.core.list_namespaced_config_map,
        "default",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    seen = [(event["type"], event["object"].metadata.name) for event in stream]
    assert seen == [("ADDED", "later"), ("MODIFIED", "later")]


def test_a_watch_leaving_a_selector_sees_the_object_deleted(kube: Kube) -> None:
    listed = kube.core.list_namespaced_config_map("default")
    kube.core.create_namespaced_config_map("default", _cm("mover", {"team": "a"}))
    kube.core.patch_namespaced_config_map(
        "mover", "default", {"metadata": {"labels": {"team": "b"}}}
    )
    stream = watch.Watch().stream(
        kube.core.list_namespaced_config_map,
        "default",
        label_selector="team=a",
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    )
    assert [event["type"] for event in stream] == ["ADDED", "DELETED"]


def test_unknown_paths_and_methods_answer_status_errors(kube: Kube) -> None:
    code, body, _ = kube.http("GET", "/apis/nope.example.com/v1/things")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    code, body, _ = kube.http("PUT", "/api/v1/namespaces/default/configmaps", {})
    assert code == 405 and body["reason"] == "MethodNotAllowed"


def test_a_watch_asking_for_tables_gets_rows_with_columns_first(kube: Kube) -> None:
    kube.core.create_namespaced_config_map("default", _cm("a", {"t": "1"}))
    kube.core.create_namespaced_config_map("default", _cm("b", {"t": "1"}))
    status, text, _ = kube.http(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=t&timeoutSeconds=1",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    events = [json.loads(line) for line in text.splitlines()]
    assert status == 200 and [e["type"] for e in events] == ["ADDED", "ADDED"]
    first, second = (e["object"] for e in events)
    assert first["kind"] == "Table" and first["columnDefinitions"][0]["name"] == "Name"
    assert second["columnDefinitions"] == []
    assert [row["cells"][0] for row in first["rows"] + second["rows"]] == ["a", "b"]
