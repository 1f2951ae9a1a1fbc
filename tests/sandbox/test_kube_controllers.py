"""The sandbox cluster's generic controllers: workloads become Running and Ready pods, rollouts
replace pods, taints keep pods Pending, Services get Endpoints, CRDs and namespaces settle."""

from __future__ import annotations

from datetime import UTC, datetime

from kube_fixtures import TOLERATE_ALL, Kube, deployment

from sandbox.kube import KubeStore
from sandbox.kube.models import NODE_NAME


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def test_a_fresh_cluster_has_its_namespaces_node_and_default_service_accounts(kube: Kube) -> None:
    names = {ns.metadata.name for ns in kube.core.list_namespace().items}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}
    node = kube.core.read_node(NODE_NAME)
    assert {(t.key, t.value, t.effect) for t in node.spec.taints} == {
        ("workload", "general", "NoSchedule"),
        ("CriticalAddonsOnly", "true", "NoSchedule"),
    }
    kube.core.create_namespace({"metadata": {"name": "fresh"}})
    assert kube.core.read_namespace("fresh").status.phase == "Active"
    assert kube.core.read_namespaced_service_account("default", "fresh")


def test_a_deployment_gets_a_replicaset_and_running_ready_pods(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web", replicas=2))

    replicasets = kube.apps.list_namespaced_replica_set("default").items
    assert len(replicasets) == 1
    replicaset = replicasets[0]
    template_hash = replicaset.metadata.labels["pod-template-hash"]
    assert replicaset.metadata.name == f"web-{template_hash}"
    assert replicaset.metadata.owner_references[0].kind == "Deployment"

    pods = kube.core.list_namespaced_pod("default", label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.metadata.name.startswith(f"{replicaset.metadata.name}-")
        assert len(pod.metadata.name) == len(replicaset.metadata.name) + 6
        assert pod.metadata.owner_references[0].name == replicaset.metadata.name
        assert pod.status.phase == "Running" and _ready(pod)
        assert pod.status.pod_ip.startswith("10.244.")
        assert pod.spec.node_name == NODE_NAME
        assert pod.status.container_statuses[0].ready is True

    status = kube.apps.read_namespaced_deployment("web", "default").status
    assert (
        status.observed_generation,
        status.replicas,
        status.updated_replicas,
        status.ready_replicas,
        status.available_replicas,
    ) == (1, 2, 2, 2, 2)
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert progressing.reason == "NewReplicaSetAvailable"


def test_a_rollout_restart_patch_replaces_the_pods(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    before = {p.metadata.name for p in kube.core.list_namespaced_pod("default").items}

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
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
    )

    pods = kube.core.list_namespaced_pod("default").items
    assert len(pods) == 1 and pods[0].metadata.name not in before
    assert pods[0].metadata.annotations["kubectl.kubernetes.io/restartedAt"] == stamp
    replicasets = {
        rs.metadata.name: rs.spec.replicas
        for rs in kube.apps.list_namespaced_replica_set("default").items
    }
    assert sorted(replicasets.values()) == [0, 1]
    deployment_now = kube.apps.read_namespaced_deployment("web", "default")
    assert deployment_now.metadata.generation == 2
    assert deployment_now.status.observed_generation == 2
    assert deployment_now.status.updated_replicas == 1


def test_scaling_down_removes_pods_and_deleting_a_pod_replaces_it(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web", replicas=3))
    kube.apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}})
    pods = kube.core.list_namespaced_pod("default").items
    assert len(pods) == 1

    kube.core.delete_namespaced_pod(pods[0].metadata.name, "default")
    replacement = kube.core.list_namespaced_pod("default").items
    assert len(replacement) == 1
    assert replacement[0].metadata.name != pods[0].metadata.name


def test_pods_that_do_not_tolerate_the_node_taints_stay_pending(kube: Kube) -> None:
    manifest = deployment("picky")
    del manifest["spec"]["template"]["spec"]["tolerations"]
    manifest["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "workload", "operator": "Equal", "value": "general", "effect": "NoSchedule"}
    ]
    kube.apps.create_namespaced_deployment("default", manifest)

    pod = kube.core.list_namespaced_pod("default").items[0]
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")
    assert scheduled.message.startswith(
        "0/1 nodes are available: 1 node(s) had untolerated taint {CriticalAddonsOnly: true}."
    )
    events = kube.core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={pod.metadata.name}"
    ).items
    assert [(e.type, e.reason, e.message) for e in events] == [
        ("Warning", "FailedScheduling", scheduled.message)
    ]
    status = kube.apps.read_namespaced_deployment("picky", "default").status
    assert not status.available_replicas
    assert next(c for c in status.conditions if c.type == "Available").status == "False"


def test_kube_system_add_ons_run_without_tolerations(kube: Kube) -> None:
    manifest = deployment("ama-metrics", namespace="kube-system")
    del manifest["spec"]["template"]["spec"]["tolerations"]
    kube.apps.create_namespaced_deployment("kube-system", manifest)
    pod = kube.core.list_namespaced_pod("kube-system", label_selector="app=ama-metrics").items[0]
    assert pod.status.phase == "Running" and _ready(pod)


def test_the_ready_annotation_holds_a_pod_back_until_removed(kube: Kube) -> None:
    manifest = deployment("slow")
    manifest["spec"]["template"]["metadata"]["annotations"] = {"sandbox.aks-metrics/ready": "false"}
    kube.apps.create_namespaced_deployment("default", manifest)
    pod = kube.core.list_namespaced_pod("default").items[0]
    assert pod.status.phase == "Running" and not _ready(pod)
    assert kube.apps.read_namespaced_deployment("slow", "default").status.ready_replicas is None

    kube.core.patch_namespaced_pod(
        pod.metadata.name,
        "default",
        {"metadata": {"annotations": {"sandbox.aks-metrics/ready": None}}},
    )
    assert _ready(kube.core.read_namespaced_pod(pod.metadata.name, "default"))
    assert kube.apps.read_namespaced_deployment("slow", "default").status.ready_replicas == 1


def test_a_daemonset_runs_one_pod_on_the_node_and_rolls_on_template_change(kube: Kube) -> None:
    template = deployment("agent")["spec"]["template"]
    kube.apps.create_namespaced_daemon_set(
        "kube-system",
        {
            "metadata": {"name": "agent", "labels": {"dsName": "agent"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template},
        },
    )
    pods = kube.core.list_namespaced_pod("kube-system", label_selector="app=agent").items
    assert len(pods) == 1 and pods[0].spec.node_name == NODE_NAME and _ready(pods[0])
    status = kube.apps.read_namespaced_daemon_set("agent", "kube-system").status
    assert (
        status.desired_number_scheduled,
        status.current_number_scheduled,
        status.number_ready,
        status.number_available,
        status.updated_number_scheduled,
        status.observed_generation,
    ) == (1, 1, 1, 1, 1, 1)

    kube.apps.patch_namespaced_daemon_set(
        "agent",
        "kube-system",
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "now"}}
                }
            }
        },
    )
    after = kube.core.list_namespaced_pod("kube-system", label_selector="app=agent").items
    assert len(after) == 1 and after[0].metadata.name != pods[0].metadata.name
    assert (
        kube.apps.read_namespaced_daemon_set("agent", "kube-system").status.observed_generation == 2
    )


def test_a_daemonset_that_does_not_tolerate_the_taints_schedules_nothing(kube: Kube) -> None:
    template = deployment("picky")["spec"]["template"]
    del template["spec"]["tolerations"]
    kube.apps.create_namespaced_daemon_set(
        "default",
        {
            "metadata": {"name": "picky"},
            "spec": {"selector": {"matchLabels": {"app": "picky"}}, "template": template},
        },
    )
    status = kube.apps.read_namespaced_daemon_set("picky", "default").status
    assert status.desired_number_scheduled == 0
    assert kube.core.list_namespaced_pod("default").items == []


def test_services_get_a_cluster_ip_and_endpoints_of_ready_pods(kube: Kube) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    service = kube.core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
    )
    assert service.spec.cluster_ip.startswith("10.0.")
    assert service.spec.ports[0].protocol == "TCP"

    endpoints = kube.core.read_namespaced_endpoints("web", "default")
    subset = endpoints.subsets[0]
    pod_ips = {p.status.pod_ip for p in kube.core.list_namespaced_pod("default").items}
    assert {a.ip for a in subset.addresses} == pod_ips
    assert [(p.name, p.port) for p in subset.ports] == [("http", 8080)]

    kube.apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 1}})
    endpoints = kube.core.read_namespaced_endpoints("web", "default")
    assert len(endpoints.subsets[0].addresses) == 1


def test_controllers_settle_without_further_writes() -> None:
    store = KubeStore()
    store.put(deployment("web", replicas=2))
    settled = store.resource_version
    store.put(store.get("apps/v1", "Deployment", "default", "web"))
    assert store.resource_version == settled


def test_tolerations_are_honoured_for_pods_created_directly(kube: Kube) -> None:
    pod = kube.core.create_namespaced_pod(
        "default",
        {
            "metadata": {"name": "single"},
            "spec": {
                "tolerations": TOLERATE_ALL,
                "containers": [{"name": "main", "image": "busybox:1.36"}],
            },
        },
    )
    assert pod.metadata.name == "single"
    assert kube.core.read_namespaced_pod("single", "default").status.phase == "Running"
