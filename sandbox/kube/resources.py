"""The kinds the sandbox's API server serves: built-in ones and those of Established CRDs.

A `ResourceType` is what discovery publishes for one resource (plural, kind, scope, verbs, short
names, subresources) plus the few facts the server needs to treat its objects correctly (whether
`status` is a subresource, whether `metadata.generation` is kept, the CRD's schemas). The
`ResourceRegistry` resolves URL segments and (group, kind) pairs to these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# The verbs of a subresource that reads and writes a slice of its parent (status, scale).
SLICE_VERBS = ["get", "patch", "update"]
PROXY_VERBS = ["create", "delete", "get", "patch", "update"]


@dataclass(frozen=True)
class Subresource:
    """One subresource as discovery lists it (`pods/exec`, `deployments/scale`, ...)."""

    name: str
    kind: str
    verbs: list[str]
    group: str | None = None  # None: the parent's group and version
    version: str | None = None


@dataclass
class ResourceType:
    """One resource of one API group: what discovery says about it and how its objects behave."""

    group: str
    versions: list[str]
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    subresources: list[Subresource] = field(default_factory=list)
    # Objects keep metadata.generation, bumped when anything but metadata and status changes.
    has_generation: bool = False
    # The CRD that declares this resource, for schemas and printer columns; None when built in.
    crd: dict[str, Any] | None = None

    @property
    def storage_version(self) -> str:
        """The version objects are stored in (the CRD's storage version, else the only one)."""
        if self.crd is not None:
            for version in self.crd["spec"]["versions"]:
                if version.get("storage"):
                    return version["name"]
        return self.versions[0]

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def is_custom(self) -> bool:
        return self.crd is not None

    @property
    def has_status_subresource(self) -> bool:
        return any(sub.name == "status" for sub in self.subresources)

    def api_version(self, version: str | None = None) -> str:
        """The apiVersion string of this resource's objects in one of its versions."""
        version = version or self.storage_version
        return f"{self.group}/{version}" if self.group else version

    def subresource(self, name: str) -> Subresource | None:
        return next((sub for sub in self.subresources if sub.name == name), None)

    def crd_version(self, version: str) -> dict[str, Any] | None:
        """The CRD's `spec.versions[]` entry for one version (None for built-in kinds)."""
        if self.crd is None:
            return None
        return next((v for v in self.crd["spec"]["versions"] if v["name"] == version), None)


def _status() -> Subresource:
    return Subresource("status", "", SLICE_VERBS)


def _scale() -> Subresource:
    return Subresource("scale", "Scale", SLICE_VERBS, group="autoscaling", version="v1")


def builtin_types() -> list[ResourceType]:
    """The built-in resources the sandbox serves, as a Kubernetes 1.32 API server lists them."""
    core, apps = ("", ["v1"]), ("apps", ["v1"])
    rbac = ("rbac.authorization.k8s.io", ["v1"])
    admission = ("admissionregistration.k8s.io", ["v1"])

    def rt(gv: tuple[str, list[str]], plural: str, kind: str, **kwargs: Any) -> ResourceType:
        singular = kwargs.pop("singular", kind.lower())
        return ResourceType(gv[0], list(gv[1]), plural, singular, kind, **kwargs)

    return [
        rt(
            core,
            "namespaces",
            "Namespace",
            namespaced=False,
            short_names=["ns"],
            verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
            subresources=[_status(), Subresource("finalize", "", ["update"])],
        ),
        rt(
            core,
            "nodes",
            "Node",
            namespaced=False,
            short_names=["no"],
            subresources=[_status(), Subresource("proxy", "NodeProxyOptions", PROXY_VERBS)],
        ),
        rt(
            core,
            "pods",
            "Pod",
            namespaced=True,
            short_names=["po"],
            categories=["all"],
            subresources=[
                Subresource("attach", "PodAttachOptions", ["create", "get"]),
                Subresource("exec", "PodExecOptions", ["create", "get"]),
                Subresource("log", "Pod", ["get"]),
                Subresource("portforward", "PodPortForwardOptions", ["create", "get"]),
                _status(),
            ],
        ),
        rt(
            core,
            "services",
            "Service",
            namespaced=True,
            short_names=["svc"],
            categories=["all"],
            subresources=[
                Subresource("proxy", "ServiceProxyOptions", PROXY_VERBS),
                _status(),
            ],
        ),
        rt(
            core,
            "endpoints",
            "Endpoints",
            namespaced=True,
            short_names=["ep"],
            singular="endpoints",
        ),
        rt(core, "configmaps", "ConfigMap", namespaced=True, short_names=["cm"]),
        rt(core, "secrets", "Secret", namespaced=True),
        rt(
            core,
            "serviceaccounts",
            "ServiceAccount",
            namespaced=True,
            short_names=["sa"],
            subresources=[
                Subresource(
                    "token", "TokenRequest", ["create"], group="authentication.k8s.io", version="v1"
                )
            ],
        ),
        rt(core, "events", "Event", namespaced=True, short_names=["ev"]),
        rt(
            apps,
            "deployments",
            "Deployment",
            namespaced=True,
            short_names=["deploy"],
            categories=["all"],
            subresources=[_scale(), _status()],
            has_generation=True,
        ),
        rt(
            apps,
            "replicasets",
            "ReplicaSet",
            namespaced=True,
            short_names=["rs"],
            categories=["all"],
            subresources=[_scale(), _status()],
            has_generation=True,
        ),
        rt(
            apps,
            "daemonsets",
            "DaemonSet",
            namespaced=True,
            short_names=["ds"],
            categories=["all"],
            subresources=[_status()],
            has_generation=True,
        ),
        rt(
            apps,
            "statefulsets",
            "StatefulSet",
            namespaced=True,
            short_names=["sts"],
            categories=["all"],
            subresources=[_scale(), _status()],
            has_generation=True,
        ),
        rt(apps, "controllerrevisions", "ControllerRevision", namespaced=True),
        rt(rbac, "roles", "Role", namespaced=True),
        rt(rbac, "rolebindings", "RoleBinding", namespaced=True),
        rt(rbac, "clusterroles", "ClusterRole", namespaced=False),
        rt(rbac, "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
        rt(
            admission,
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            namespaced=False,
            categories=["api-extensions"],
            has_generation=True,
        ),
        rt(
            admission,
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            namespaced=False,
            categories=["api-extensions"],
            has_generation=True,
        ),
        rt(
            ("apiextensions.k8s.io", ["v1"]),
            "customresourcedefinitions",
            "CustomResourceDefinition",
            namespaced=False,
            short_names=["crd", "crds"],
            categories=["api-extensions"],
            subresources=[_status()],
            has_generation=True,
        ),
        rt(("coordination.k8s.io", ["v1"]), "leases", "Lease", namespaced=True),
        rt(("discovery.k8s.io", ["v1"]), "endpointslices", "EndpointSlice", namespaced=True),
        rt(
            ("policy", ["v1"]),
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            namespaced=True,
            short_names=["pdb"],
            subresources=[_status()],
            has_generation=True,
        ),
    ]


def types_of_crd(crd: dict[str, Any]) -> ResourceType:
    """The resource an Established CRD adds to the API (all its served versions)."""
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    subresources: list[Subresource] = []
    # Subresources are declared per version; the sandbox serves the union of them.
    declared: dict[str, Any] = {}
    for version in served:
        declared.update(version.get("subresources") or {})
    if "scale" in declared:
        subresources.append(_scale())
    if "status" in declared:
        subresources.append(_status())
    return ResourceType(
        group=spec["group"],
        versions=[v["name"] for v in served],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        subresources=subresources,
        has_generation=True,
        crd=crd,
    )


class ResourceRegistry:
    """Every resource the server currently serves, found by URL segments or by kind."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        for resource_type in builtin_types():
            self.add(resource_type)

    def add(self, resource_type: ResourceType) -> None:
        self._types[(resource_type.group, resource_type.plural)] = resource_type

    def remove(self, group: str, plural: str) -> ResourceType | None:
        return self._types.pop((group, plural), None)

    def get(self, group: str, plural: str) -> ResourceType | None:
        return self._types.get((group, plural))

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at /apis/{group}/{version}/{plural}, if that version is served."""
        resource_type = self._types.get((group, plural))
        if resource_type is None or version not in resource_type.versions:
            return None
        return resource_type

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        return next((t for t in self._types.values() if t.group == group and t.kind == kind), None)

    def by_api_version(self, api_version: str, kind: str) -> ResourceType | None:
        """The type of objects written with this apiVersion and kind."""
        group, _, version = api_version.rpartition("/")
        resource_type = self.by_kind(group, kind)
        if resource_type is None or version not in resource_type.versions:
            return None
        return resource_type

    def groups(self) -> dict[str, list[str]]:
        """Each group (core is "") with its versions, preferred first, in registration order."""
        result: dict[str, list[str]] = {}
        for resource_type in self._types.values():
            versions = result.setdefault(resource_type.group, [])
            for version in _by_priority(resource_type.versions):
                if version not in versions:
                    versions.append(version)
        return {group: _by_priority(versions) for group, versions in result.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and version in t.versions]


def _by_priority(versions: list[str]) -> list[str]:
    """Versions in Kubernetes' priority order: GA before beta before alpha, newer first."""

    def key(version: str) -> tuple[int, int, int]:
        match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
        if match is None:
            return (3, 0, 0)
        major, stage, minor = match.groups()
        rank = {None: 0, "beta": 1, "alpha": 2}[stage]
        return (rank, -int(major), -int(minor or 0))

    return sorted(versions, key=key)
