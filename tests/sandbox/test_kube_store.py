"""The KubeStore interface behaviour code builds on: controller writes, subscriptions, admission
hooks, and reads of kinds that are not served."""

from __future__ import annotations

import json

import pytest
from kube_fixtures import Kube, deployment
from kubernetes.client.rest import ApiException

from sandbox.kube import KubeStore
from sandbox.kube.errors import internal


def _cm(name: str, **data: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": data,
    }


def test_put_creates_then_replaces_keeping_identity_and_bumping_the_version() -> None:
    store = KubeStore()
    created = store.put(_cm("a", k="1"))
    replaced = store.put(_cm("a", k="2"))
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(replaced["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"]
    )
    assert store.get("v1", "ConfigMap", "default", "a")["data"] == {"k": "2"}
    unchanged = store.put(_cm("a", k="2"))
    assert unchanged["metadata"]["resourceVersion"] == replaced["metadata"]["resourceVersion"]


def test_put_keeps_the_old_status_when_the_new_object_has_none() -> None:
    store = KubeStore()
    store.put(deployment("web"))
    ready = store.get("apps/v1", "Deployment", "default", "web")["status"]
    assert ready["readyReplicas"] == 1
    store.put(deployment("web"))  # as a controller that never writes status would
    assert store.get("apps/v1", "Deployment", "default", "web")["status"] == ready


def test_subscribers_see_every_change_in_commit_order() -> None:
    store = KubeStore()
    seen: list[tuple[str, str]] = []
    store.subscribe(
        lambda event, obj: (
            seen.append((event, obj["metadata"]["name"])) if obj["kind"] == "ConfigMap" else None
        )
    )
    store.put(_cm("a"))
    store.put(_cm("a", k="v"))
    store.delete("v1", "ConfigMap", "default", "a")
    store.delete("v1", "ConfigMap", "default", "a")  # already gone: nothing happens
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_reads_of_a_kind_that_is_not_served_find_nothing() -> None:
    store = KubeStore()
    assert store.get("azmonitoring.coreos.com/v1", "PodMonitor", "default", "x") is None
    assert store.list("azmonitoring.coreos.com/v1", "PodMonitor") == []
    with pytest.raises(KeyError):
        store.put(
            {
                "apiVersion": "azmonitoring.coreos.com/v1",
                "kind": "PodMonitor",
                "metadata": {"name": "x", "namespace": "default"},
            }
        )


def test_list_filters_by_namespace_and_labels() -> None:
    store = KubeStore()
    store.put(
        {**_cm("a"), "metadata": {"name": "a", "namespace": "default", "labels": {"app": "x"}}}
    )
    store.put(
        {**_cm("b"), "metadata": {"name": "b", "namespace": "kube-system", "labels": {"app": "x"}}}
    )
    assert [
        o["metadata"]["name"] for o in store.list("v1", "ConfigMap", label_selector={"app": "x"})
    ] == ["a", "b"]
    assert [
        o["metadata"]["name"] for o in store.list("v1", "ConfigMap", "kube-system", {"app": "x"})
    ] == ["b"]


def test_an_admission_refusal_is_a_400_with_its_message(kube: Kube) -> None:
    calls: list[tuple[str, str, bool]] = []

    def webhook(operation: str, new: dict, old: dict | None) -> str | None:
        calls.append((operation, new["metadata"]["name"], old is not None))
        if new["metadata"]["name"] == "refused":
            return 'admission webhook "vcollector.kb.io" denied the request: mode is invalid'
        new["metadata"].setdefault("labels", {})["mutated"] = "yes"
        return None

    kube.store.register_admission(webhook)
    with pytest.raises(ApiException) as error:
        kube.core.create_namespaced_config_map("default", {"metadata": {"name": "refused"}})
    assert error.value.status == 400
    assert json.loads(error.value.body)["message"].endswith("mode is invalid")

    created = kube.core.create_namespaced_config_map("default", {"metadata": {"name": "ok"}})
    assert created.metadata.labels == {"mutated": "yes"}
    kube.core.patch_namespaced_config_map("ok", "default", {"data": {"k": "v"}})
    assert calls[-1] == ("UPDATE", "ok", True)

    # Controller writes do not go through admission.
    kube.store.put(_cm("refused"))
    assert kube.store.get("v1", "ConfigMap", "default", "refused") is not None


def test_an_admission_handler_can_answer_with_its_own_status_code(kube: Kube) -> None:
    def unreachable(operation: str, new: dict, old: dict | None) -> str | None:
        raise internal('failed calling webhook "mcollector.kb.io": no endpoints available')

    kube.store.register_admission(unreachable)
    with pytest.raises(ApiException) as error:
        kube.core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    assert error.value.status == 500
    assert json.loads(error.value.body)["reason"] == "InternalError"
