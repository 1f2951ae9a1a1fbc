"""The generic controllers of the sandbox cluster: what kube-controller-manager, kube-scheduler and
the kubelet would do for the kinds the project touches.

- Namespaces: Active, with a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap.
- CRDs: NamesAccepted and Established, served in discovery; deleting one deletes its objects.
- Deployments → ReplicaSets (`<name>-<pod-template-hash>`) → Pods (`<rs>-<5 chars>`); a template
  change (e.g. `kubectl rollout restart`) makes a new ReplicaSet and replaces the pods at once.
- DaemonSets → one Pod per node the pods fit on.
- The scheduler and kubelet: a Pod that tolerates the node's taints (or lives in kube-system, whose
  add-ons tolerate everything) runs and is Ready, unless it carries the annotation
  `sandbox.aks-metrics/ready: "false"`; one that does not stays Pending, Unschedulable, with the
  scheduler's own message.
- Services → Endpoints (ready and not-ready pod addresses, named ports resolved per pod).

Everything runs synchronously inside the store's change notifications, so when an API write returns,
the cluster has already settled: there is nothing to wait for, only the final state to observe.
Every status write is computed from the current state and keeps the previous timestamps when nothing
changed, so a settled cluster makes no further writes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shlex
from typing import Any

from sandbox.kube.managedfields import now
from sandbox.kube.models import NODE_NAME, ExecResult, KubeStore, random_suffix
from sandbox.kube.resources import types_of_crd
from sandbox.kube.selectors import equality_selector_matches

NODE_IP = "10.2.1.4"
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
NODE_TAINTS = [
    {"key": "workload", "value": "general", "effect": "NoSchedule"},
    {"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"},
]
READY_ANNOTATION = "sandbox.aks-metrics/ready"
# The CA every namespace's kube-root-ca.crt carries; the sandbox's API server has no real one.
ROOT_CA_PLACEHOLDER = "-----BEGIN CERTIFICATE-----\nsandbox\n-----END CERTIFICATE-----\n"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


def install_controllers(store: KubeStore) -> GenericControllers:
    """Attach the generic controllers to a store and create the cluster's initial objects."""
    controllers = GenericControllers(store)
    store.subscribe(controllers.on_change)
    controllers.bootstrap()
    return controllers


def template_hash(template: dict[str, Any]) -> str:
    """A pod-template-hash: a stable short name for a template, in Kubernetes' alphabet."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:4], "big")
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(alphabet[int(digit) % len(alphabet)] for digit in str(number))


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def controller_ref(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def default_exec(pod: dict, container: str, argv: list[str]) -> ExecResult:
    """What any container answers when no behaviour handler claims the command.

    A few shell basics work (`echo`, `true`, `false`, `hostname`, `sh -c` of those); anything else
    fails the way containerd reports a missing binary.
    """
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"], ["bash", "-c"]) and len(argv) == 3:
        try:
            argv = shlex.split(argv[2])
        except ValueError:
            return ExecResult(stderr=b"sh: syntax error\n", exit_code=2)
        if not argv:
            return ExecResult()
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    if program == "echo":
        return ExecResult(stdout=(" ".join(argv[1:]) + "\n").encode())
    if program == "true":
        return ExecResult()
    if program == "false":
        return ExecResult(exit_code=1)
    if program == "hostname":
        return ExecResult(stdout=f"{pod['metadata']['name']}\n".encode())
    return ExecResult(
        error=(
            f"OCI runtime exec failed: exec failed: unable to start container process: exec: "
            f'"{argv[0] if argv else ""}": executable file not found in $PATH: unknown'
        )
    )


def _tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint["effect"]:
            continue
        if toleration.get("operator") == "Exists":
            if not toleration.get("key") or toleration["key"] == taint["key"]:
                return True
        elif toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def _condition(
    old_conditions: list[dict],
    kind: str,
    status: str,
    reason: str | None = None,
    message: str | None = None,
    *,
    probe: bool = False,
    update_time: bool = False,
) -> dict[str, Any]:
    """A status condition that keeps its old timestamps when its status and reason are unchanged."""
    previous = next((c for c in old_conditions if c.get("type") == kind), None)
    unchanged = (
        previous is not None
        and previous.get("status") == status
        and previous.get("reason") == reason
        and previous.get("message") == message
    )
    stamp = previous.get("lastTransitionTime") if unchanged else now()
    condition: dict[str, Any] = {"type": kind, "status": status}
    if probe:
        condition["lastProbeTime"] = None
    if update_time:
        condition["lastUpdateTime"] = previous.get("lastUpdateTime", stamp) if unchanged else stamp
    condition["lastTransitionTime"] = stamp
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


class GenericControllers:
    """Reconciles built-in kinds after each change in the store (see the module docstring)."""

    def __init__(self, store: KubeStore) -> None:
        self.store = store
        self._next_pod_ip = 2

    # -- start-up -------------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Create what a fresh AKS cluster has: its namespaces, its node, the kubernetes Service."""
        store = self.store
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if store.get("v1", "Namespace", None, name) is None:
                store.put({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        if store.get("v1", "Node", None, NODE_NAME) is None:
            store.put(self._node())
        if store.get("v1", "Service", "default", "kubernetes") is None:
            store.put(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {
                        "name": "kubernetes",
                        "namespace": "default",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {
                        "clusterIP": "10.0.0.1",
                        "ports": [
                            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}
                        ],
                    },
                }
            )
        # Pod IPs continue after those already handed out (a store loaded from disk).
        for pod in store.list("v1", "Pod"):
            address = (pod.get("status") or {}).get("podIP")
            if address and ipaddress.ip_address(address) in POD_NETWORK:
                offset = int(ipaddress.ip_address(address)) - int(POD_NETWORK.network_address)
                self._next_pod_ip = max(self._next_pod_ip, offset + 1)

    @staticmethod
    def _node() -> dict[str, Any]:
        stamp = now()
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "agentpool": "nodepool1",
                    "kubernetes.azure.com/agentpool": "nodepool1",
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": "Standard_D4s_v5",
                    "topology.kubernetes.io/region": "koreacentral",
                },
            },
            "spec": {
                "podCIDR": "10.244.0.0/24",
                "providerID": "azure:///subscriptions/f752aff6-b20c-4973-b32b-0a60ba2c6764/"
                "resourceGroups/mc_rg-rubicon-koreacentral-01_aks-rubicon-koreacentral-01_"
                "koreacentral/providers/Microsoft.Compute/virtualMachineScaleSets/"
                "aks-nodepool1-00000000-vmss/virtualMachines/0",
                "taints": [dict(taint) for taint in NODE_TAINTS],
            },
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": NODE_IP},
                    {"type": "Hostname", "address": NODE_NAME},
                ],
                "capacity": {"cpu": "4", "memory": "16374584Ki", "pods": "110"},
                "allocatable": {"cpu": "3860m", "memory": "12880184Ki", "pods": "110"},
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": stamp,
                        "lastTransitionTime": stamp,
                    }
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": "5f0c2d9e-6c1b-4d7e-9a55-0b1e8e2c4a10",
                    "containerRuntimeVersion": "containerd://1.7.27-1",
                    "kernelVersion": "5.15.0-1089-azure",
                    "kubeProxyVersion": "v1.32.4",
                    "kubeletVersion": "v1.32.4",
                    "machineID": "8d5c6f0e3b2a4c1d9e7f6a5b4c3d2e1f",
                    "operatingSystem": "linux",
                    "osImage": "Ubuntu 22.04.5 LTS",
                    "systemUUID": "2b7e9c4a-1f3d-4e6b-8a0c-5d9f1e2a3b4c",
                },
            },
        }

    # -- dispatch -------------------------------------------------------------------------------

    def on_change(self, event_type: str, obj: dict[str, Any]) -> None:
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"]
        if group == "" and kind == "Namespace" and event_type != "DELETED":
            self._namespace(obj)
        elif group == "apiextensions.k8s.io" and kind == "CustomResourceDefinition":
            self._crd(event_type, obj)
        elif group == "apps" and kind == "Deployment" and event_type != "DELETED":
            self._deployment(obj)
        elif group == "apps" and kind == "ReplicaSet":
            if event_type != "DELETED":
                self._replicaset(obj)
            self._owner_changed(obj)
        elif group == "apps" and kind == "DaemonSet" and event_type != "DELETED":
            self._daemonset(obj)
        elif group == "" and kind == "Pod":
            if event_type != "DELETED":
                self._pod(obj)
            self._owner_changed(obj)
            self._endpoints_for_pod(obj)
        elif group == "" and kind == "Service":
            if event_type == "DELETED":
                self.store.delete(
                    "v1", "Endpoints", obj["metadata"]["namespace"], obj["metadata"]["name"]
                )
            else:
                self._endpoints(obj)

    def _owner_changed(self, obj: dict[str, Any]) -> None:
        """Reconcile the controller that owns a changed ReplicaSet or Pod."""
        namespace = obj["metadata"].get("namespace")
        for ref in obj["metadata"].get("ownerReferences") or []:
            if not ref.get("controller"):
                continue
            owner = self.store.get(ref["apiVersion"], ref["kind"], namespace, ref["name"])
            if owner is None or owner["metadata"]["uid"] != ref["uid"]:
                continue
            if ref["kind"] == "ReplicaSet":
                self._replicaset(owner)
            elif ref["kind"] == "Deployment":
                self._deployment(owner)
            elif ref["kind"] == "DaemonSet":
                self._daemonset(owner)

    # -- namespaces and CRDs --------------------------------------------------------------------

    def _namespace(self, namespace: dict[str, Any]) -> None:
        name = namespace["metadata"]["name"]
        if (namespace.get("status") or {}).get("phase") != "Active":
            self.store.put({**namespace, "status": {"phase": "Active"}})
        if self.store.get("v1", "ServiceAccount", name, "default") is None:
            self.store.put(
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": name},
                }
            )
        if self.store.get("v1", "ConfigMap", name, "kube-root-ca.crt") is None:
            self.store.put(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": "kube-root-ca.crt",
                        "namespace": name,
                        "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION},
                    },
                    "data": {"ca.crt": ROOT_CA_PLACEHOLDER},
                }
            )

    def _crd(self, event_type: str, crd: dict[str, Any]) -> None:
        if event_type == "DELETED":
            return  # the store removed the resource and its objects with the CRD
        spec = crd["spec"]
        self.store.registry.add(types_of_crd(crd))
        old_conditions = (crd.get("status") or {}).get("conditions") or []
        names = dict(spec["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", f"{names['kind']}List")
        status = {
            "acceptedNames": names,
            "conditions": [
                _condition(
                    old_conditions, "NamesAccepted", "True", "NoConflicts", "no conflicts found"
                ),
                _condition(
                    old_conditions,
                    "Established",
                    "True",
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                ),
            ],
            "storedVersions": sorted(
                {v["name"] for v in spec["versions"] if v.get("storage")}
                | set((crd.get("status") or {}).get("storedVersions") or [])
            ),
        }
        if crd.get("status") != status:
            self.store.put({**crd, "status": status})

    # -- workloads ------------------------------------------------------------------------------

    def _owned(self, api_version: str, kind: str, owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        return [
            obj
            for obj in self.store.list(api_version, kind, owner["metadata"]["namespace"])
            if any(
                ref.get("uid") == uid and ref.get("controller")
                for ref in obj["metadata"].get("ownerReferences") or []
            )
        ]

    def _deployment(self, deployment: dict[str, Any]) -> None:
        meta, spec = deployment["metadata"], deployment["spec"]
        namespace, name = meta["namespace"], meta["name"]
        replicas = spec.get("replicas", 1)
        template_hash_value = template_hash(spec.get("template") or {})
        owned = self._owned("apps/v1", "ReplicaSet", deployment)
        current = next(
            (
                rs
                for rs in owned
                if rs["metadata"].get("labels", {}).get("pod-template-hash") == template_hash_value
            ),
            None,
        )
        revisions = [
            int(rs["metadata"].get("annotations", {}).get("deployment.kubernetes.io/revision", "0"))
            for rs in owned
        ]
        revision = str(max(revisions, default=0) + 1)

        if current is None:
            template = json.loads(json.dumps(spec.get("template") or {}))
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = (
                template_hash_value
            )
            selector = json.loads(json.dumps(spec.get("selector") or {}))
            selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash_value
            current = self.store.put(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": f"{name}-{template_hash_value}",
                        "namespace": namespace,
                        "labels": template["metadata"]["labels"],
                        "annotations": {
                            "deployment.kubernetes.io/desired-replicas": str(replicas),
                            "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                            "deployment.kubernetes.io/revision": revision,
                        },
                        "ownerReferences": [controller_ref(deployment)],
                    },
                    "spec": {"replicas": replicas, "selector": selector, "template": template},
                }
            )
        elif current["spec"].get("replicas") != replicas:
            current["spec"]["replicas"] = replicas
            current["metadata"].setdefault("annotations", {})[
                "deployment.kubernetes.io/desired-replicas"
            ] = str(replicas)
            current = self.store.put(current)
        # The sandbox rolls out at once: old ReplicaSets go to zero as the new one comes up.
        for rs in owned:
            if rs["metadata"]["uid"] != current["metadata"]["uid"] and rs["spec"].get("replicas"):
                self.store.put({**rs, "spec": {**rs["spec"], "replicas": 0}})

        deployment = self.store.get("apps/v1", "Deployment", namespace, name) or deployment
        owned = self._owned("apps/v1", "ReplicaSet", deployment)
        current = next(
            (rs for rs in owned if rs["metadata"]["uid"] == current["metadata"]["uid"]), current
        )
        self._deployment_status(deployment, current, owned)

    def _deployment_status(
        self, deployment: dict[str, Any], current: dict[str, Any], owned: list[dict[str, Any]]
    ) -> None:
        replicas = deployment["spec"].get("replicas", 1)

        def total(key: str, sets: list[dict[str, Any]]) -> int:
            return sum((rs.get("status") or {}).get(key, 0) for rs in sets)

        status_total = total("replicas", owned)
        updated = total("replicas", [current])
        ready = total("readyReplicas", owned)
        available = total("availableReplicas", owned)
        old = deployment.get("status") or {}
        old_conditions = old.get("conditions") or []
        rs_name = current["metadata"]["name"]
        complete = updated == replicas and status_total == replicas and available == replicas
        status: dict[str, Any] = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": status_total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
        }
        if replicas - available > 0:
            status["unavailableReplicas"] = replicas - available
        status = {
            key: value for key, value in status.items() if value or key in ("observedGeneration",)
        }
        status["conditions"] = [
            _condition(
                old_conditions,
                "Available",
                "True" if available >= replicas else "False",
                "MinimumReplicasAvailable"
                if available >= replicas
                else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available >= replicas
                else "Deployment does not have minimum availability.",
                update_time=True,
            ),
            _condition(
                old_conditions,
                "Progressing",
                "True",
                "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" has successfully progressed.'
                if complete
                else f'ReplicaSet "{rs_name}" is progressing.',
                update_time=True,
            ),
        ]
        # Conditions of other writers stay, as the deployment controller keeps them.
        status["conditions"] += [
            c for c in old_conditions if c.get("type") not in ("Available", "Progressing")
        ]
        if old != status:
            self.store.put({**deployment, "status": status})

    def _replicaset(self, replicaset: dict[str, Any]) -> None:
        meta, spec = replicaset["metadata"], replicaset["spec"]
        wanted = spec.get("replicas", 1)
        pods = self._owned("v1", "Pod", replicaset)
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                self._create_pod(replicaset, f"{meta['name']}-{random_suffix()}")
        elif len(pods) > wanted:
            # Not-ready pods go first, then the newest, as the ReplicaSet controller prefers.
            pods.sort(key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in pods[: len(pods) - wanted]:
                self.store.delete("v1", "Pod", meta["namespace"], pod["metadata"]["name"])
        replicaset = self.store.get("apps/v1", "ReplicaSet", meta["namespace"], meta["name"])
        if replicaset is None:
            return
        pods = self._owned("v1", "Pod", replicaset)
        ready = sum(1 for pod in pods if is_ready(pod))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": replicaset["metadata"].get("generation", 1),
        }
        status = {
            key: value
            for key, value in status.items()
            if value or key in ("replicas", "observedGeneration")
        }
        if replicaset.get("status") != status:
            self.store.put({**replicaset, "status": status})

    def _daemonset(self, daemonset: dict[str, Any]) -> None:
        meta, spec = daemonset["metadata"], daemonset["spec"]
        revision_hash = template_hash(spec.get("template") or {})
        pods = self._owned("v1", "Pod", daemonset)
        nodes = self.store.list("v1", "Node")
        template_spec = (spec.get("template") or {}).get("spec") or {}
        fitting = [
            node for node in nodes if self._fits(template_spec, meta["namespace"], node) is None
        ]
        for pod in pods:
            outdated = (
                pod["metadata"].get("labels", {}).get("controller-revision-hash") != revision_hash
            )
            unwanted = pod["spec"].get("nodeName") not in {n["metadata"]["name"] for n in fitting}
            if outdated or unwanted:
                self.store.delete("v1", "Pod", meta["namespace"], pod["metadata"]["name"])
        pods = self._owned("v1", "Pod", daemonset)
        for node in fitting:
            node_name = node["metadata"]["name"]
            if not any(pod["spec"].get("nodeName") == node_name for pod in pods):
                self._create_pod(
                    daemonset,
                    f"{meta['name']}-{random_suffix()}",
                    node_name=node_name,
                    labels={
                        "controller-revision-hash": revision_hash,
                        "pod-template-generation": str(meta.get("generation", 1)),
                    },
                )
        daemonset = self.store.get("apps/v1", "DaemonSet", meta["namespace"], meta["name"])
        if daemonset is None:
            return
        pods = self._owned("v1", "Pod", daemonset)
        ready = sum(1 for pod in pods if is_ready(pod))
        updated = sum(
            1
            for pod in pods
            if pod["metadata"].get("labels", {}).get("controller-revision-hash") == revision_hash
        )
        status = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": len(fitting),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": updated,
            "observedGeneration": daemonset["metadata"].get("generation", 1),
        }
        if len(fitting) - ready > 0:
            status["numberUnavailable"] = len(fitting) - ready
        if status["numberAvailable"] == 0:
            del status["numberAvailable"]
        if daemonset.get("status") != status:
            self.store.put({**daemonset, "status": status})

    def _create_pod(
        self,
        owner: dict[str, Any],
        name: str,
        *,
        node_name: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        template = json.loads(json.dumps(owner["spec"].get("template") or {}))
        template_meta = template.get("metadata") or {}
        pod_spec = template.get("spec") or {}
        if node_name:
            pod_spec["nodeName"] = node_name
        pod_meta: dict[str, Any] = {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(template_meta.get("labels") or {}), **(labels or {})},
            "ownerReferences": [controller_ref(owner)],
        }
        if template_meta.get("annotations"):
            pod_meta["annotations"] = template_meta["annotations"]
        self.store.put(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": pod_meta,
                "spec": pod_spec,
                "status": {"phase": "Pending"},
            }
        )

    # -- scheduler and kubelet ------------------------------------------------------------------

    @staticmethod
    def _fits(pod_spec: dict[str, Any], namespace: str, node: dict[str, Any]) -> str | None:
        """Why a pod cannot go on a node (the scheduler's words), or None when it fits."""
        node_labels = node["metadata"].get("labels") or {}
        for key, value in (pod_spec.get("nodeSelector") or {}).items():
            if node_labels.get(key) != value:
                return "node(s) didn't match Pod's node affinity/selector"
        if namespace == "kube-system":
            return None  # the AKS add-ons tolerate every taint
        tolerations = pod_spec.get("tolerations") or []
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
                tolerations, taint
            ):
                return f"node(s) had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
        return None

    def _pod(self, pod: dict[str, Any]) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        status = pod.get("status") or {}
        old_conditions = status.get("conditions") or []
        if status.get("phase") in ("Succeeded", "Failed"):
            return

        if not spec.get("nodeName"):
            nodes = self.store.list("v1", "Node")
            reasons = [self._fits(spec, meta["namespace"], node) for node in nodes]
            chosen = next((n for n, r in zip(nodes, reasons, strict=True) if r is None), None)
            if chosen is None:
                summary = ", ".join(f"1 {reason}" for reason in reasons if reason)
                message = (
                    f"0/{len(nodes)} nodes are available: {summary}. preemption: "
                    f"0/{len(nodes)} nodes are available: {len(nodes)} Preemption is not "
                    "helpful for scheduling."
                )
                pending = {
                    "phase": "Pending",
                    "conditions": [
                        _condition(
                            old_conditions,
                            "PodScheduled",
                            "False",
                            "Unschedulable",
                            message,
                            probe=True,
                        )
                    ],
                    "qosClass": _qos_class(spec),
                }
                if status != pending:
                    self.store.put({**pod, "status": pending})
                    self._event(pod, "Warning", "FailedScheduling", message, "default-scheduler")
                return
            spec = {**spec, "nodeName": chosen["metadata"]["name"]}
            self._event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {spec['nodeName']}",
                "default-scheduler",
            )

        ready = (meta.get("annotations") or {}).get(READY_ANNOTATION) != "false"
        running = status.get("phase") == "Running"
        started = status.get("startTime") or now()
        pod_ip = status.get("podIP") if running and status.get("podIP") else self._allocate_ip()
        ready_text = "True" if ready else "False"
        not_ready_reason = None if ready else "ContainersNotReady"
        containers = spec.get("containers") or []
        not_ready_message = (
            None
            if ready
            else (
                "containers with unready status: ["
                + " ".join(container.get("name", "") for container in containers)
                + "]"
            )
        )
        old_statuses = {s["name"]: s for s in status.get("containerStatuses") or []}
        new_status = {
            "phase": "Running",
            "conditions": [
                _condition(old_conditions, "PodReadyToStartContainers", "True", probe=True),
                _condition(old_conditions, "Initialized", "True", probe=True),
                _condition(
                    old_conditions,
                    "Ready",
                    ready_text,
                    not_ready_reason,
                    not_ready_message,
                    probe=True,
                ),
                _condition(
                    old_conditions,
                    "ContainersReady",
                    ready_text,
                    not_ready_reason,
                    not_ready_message,
                    probe=True,
                ),
                _condition(old_conditions, "PodScheduled", "True", probe=True),
            ],
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": started,
            "qosClass": _qos_class(spec),
            "containerStatuses": [
                self._container_status(
                    container, old_statuses.get(container.get("name")), ready, meta["uid"]
                )
                for container in containers
            ],
        }
        if status != new_status or spec is not pod["spec"]:
            self.store.put({**pod, "spec": spec, "status": new_status})

    def _event(
        self, obj: dict[str, Any], kind: str, reason: str, message: str, component: str
    ) -> None:
        """Record a core/v1 Event about an object, once per reason (what `describe` shows)."""
        meta = obj["metadata"]
        digest = hashlib.sha256(f"{meta['uid']}/{reason}".encode()).hexdigest()[:16]
        name = f"{meta['name']}.{digest}"
        if self.store.get("v1", "Event", meta["namespace"], name) is not None:
            return
        stamp = now()
        self.store.put(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": meta["namespace"]},
                "involvedObject": {
                    "apiVersion": obj["apiVersion"],
                    "kind": obj["kind"],
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": component},
                "reportingComponent": component,
                "reportingInstance": "",
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
        )

    @staticmethod
    def _container_status(
        container: dict[str, Any], old: dict[str, Any] | None, ready: bool, pod_uid: str
    ) -> dict[str, Any]:
        image = container.get("image", "")
        digest = hashlib.sha256(image.encode()).hexdigest()
        container_id = hashlib.sha256(f"{pod_uid}/{container.get('name')}".encode()).hexdigest()
        started_at = ((old or {}).get("state") or {}).get("running", {}).get("startedAt", now())
        return {
            "name": container.get("name", ""),
            "image": image,
            "imageID": f"{image.split(':')[0]}@sha256:{digest}",
            "containerID": f"containerd://{container_id}",
            "ready": ready,
            "started": True,
            "restartCount": (old or {}).get("restartCount", 0),
            "state": {"running": {"startedAt": started_at}},
        }

    def _allocate_ip(self) -> str:
        address = str(POD_NETWORK.network_address + self._next_pod_ip)
        self._next_pod_ip += 1
        return address

    # -- services -------------------------------------------------------------------------------

    def _endpoints_for_pod(self, pod: dict[str, Any]) -> None:
        namespace = pod["metadata"]["namespace"]
        labels = pod["metadata"].get("labels") or {}
        for service in self.store.list("v1", "Service", namespace):
            if equality_selector_matches((service.get("spec") or {}).get("selector"), labels):
                self._endpoints(service)

    def _endpoints(self, service: dict[str, Any]) -> None:
        meta, spec = service["metadata"], service.get("spec") or {}
        selector = spec.get("selector")
        if not selector:
            return  # Endpoints of selector-less Services belong to whoever writes them
        namespace = meta["namespace"]
        pods = [
            pod
            for pod in self.store.list("v1", "Pod", namespace)
            if equality_selector_matches(selector, pod["metadata"].get("labels") or {})
            and (pod.get("status") or {}).get("podIP")
        ]
        subsets: list[dict[str, Any]] = []
        for service_port in spec.get("ports") or []:
            for pod in pods:
                port_number = _resolve_port(
                    service_port.get("targetPort", service_port.get("port")), pod
                )
                if port_number is None:
                    continue
                endpoint_port = {
                    "port": port_number,
                    "protocol": service_port.get("protocol", "TCP"),
                }
                if service_port.get("name"):
                    endpoint_port["name"] = service_port["name"]
                address = {
                    "ip": pod["status"]["podIP"],
                    "nodeName": pod["spec"].get("nodeName", NODE_NAME),
                    "targetRef": {
                        "kind": "Pod",
                        "name": pod["metadata"]["name"],
                        "namespace": namespace,
                        "uid": pod["metadata"]["uid"],
                    },
                }
                subset = next((s for s in subsets if s["ports"] == [endpoint_port]), None)
                if subset is None:
                    subset = {"ports": [endpoint_port]}
                    subsets.append(subset)
                subset.setdefault("addresses" if is_ready(pod) else "notReadyAddresses", []).append(
                    address
                )
        subsets = _merge_subsets(subsets)
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": meta["name"],
                "namespace": namespace,
                "labels": dict(meta.get("labels") or {}),
            },
        }
        if subsets:
            endpoints["subsets"] = subsets
        existing = self.store.get("v1", "Endpoints", namespace, meta["name"])
        if (
            existing is None
            or existing.get("subsets") != endpoints.get("subsets")
            or existing["metadata"].get("labels", {}) != endpoints["metadata"]["labels"]
        ):
            self.store.put(endpoints)


def _merge_subsets(subsets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group ports that share their addresses into one subset, as the Endpoints controller does."""
    merged: list[dict[str, Any]] = []
    for subset in subsets:
        addresses = (subset.get("addresses"), subset.get("notReadyAddresses"))
        same = next(
            (m for m in merged if (m.get("addresses"), m.get("notReadyAddresses")) == addresses),
            None,
        )
        if same is None:
            merged.append(subset)
        else:
            same["ports"] = same["ports"] + subset["ports"]
    return merged


def _resolve_port(target: Any, pod: dict[str, Any]) -> int | None:
    """A Service targetPort on one pod: a number as is, a name looked up among container ports."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in pod["spec"].get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return port.get("containerPort")
    return None


def _qos_class(spec: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    if all(r.get("limits") and r.get("requests", r["limits"]) == r["limits"] for r in resources):
        return "Guaranteed"
    return "Burstable"
