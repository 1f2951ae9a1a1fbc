"""Server-side printing: `meta.k8s.io/v1 Table` answers for `kubectl get`.

kubectl asks for a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`) and prints its
columns as they come. The columns here are the ones kube-apiserver's printers use for the kinds the
project looks at (`READY`, `STATUS`, `UP-TO-DATE`, ...); custom resources use their CRD's
`additionalPrinterColumns`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.kube.resources import ResourceType

Column = tuple[str, str, int]  # (name, type, priority); priority 1 shows only with -o wide
Row = Callable[[dict[str, Any]], list[Any]]


def age(timestamp: str | None) -> str:
    """A creation timestamp as kubectl's AGE column shows it (`45s`, `3m12s`, `2d`)."""
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(s.get("restartCount", 0) for s in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        status.get("reason") or status.get("phase") or "Pending",
        restarts,
        age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _deployment_row(deployment: dict[str, Any]) -> list[Any]:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [
        deployment["metadata"]["name"],
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        age(deployment["metadata"].get("creationTimestamp")),
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
        _selector_text((spec.get("selector") or {}).get("matchLabels") or {}),
    ]


def _replicaset_row(replicaset: dict[str, Any]) -> list[Any]:
    spec, status = replicaset.get("spec") or {}, replicaset.get("status") or {}
    return [
        replicaset["metadata"]["name"],
        spec.get("replicas", 1),
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        age(replicaset["metadata"].get("creationTimestamp")),
    ]


def _daemonset_row(daemonset: dict[str, Any]) -> list[Any]:
    status = daemonset.get("status") or {}
    node_selector = ((daemonset.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "nodeSelector"
    ) or {}
    return [
        daemonset["metadata"]["name"],
        status.get("desiredNumberScheduled", 0),
        status.get("currentNumberScheduled", 0),
        status.get("numberReady", 0),
        status.get("updatedNumberScheduled", 0),
        status.get("numberAvailable", 0),
        _selector_text(node_selector) or "<none>",
        age(daemonset["metadata"].get("creationTimestamp")),
    ]


def _service_row(service: dict[str, Any]) -> list[Any]:
    spec = service.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [
        service["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        "<none>",
        ports or "<none>",
        age(service["metadata"].get("creationTimestamp")),
        _selector_text(spec.get("selector") or {}) or "<none>",
    ]


def _endpoints_row(endpoints: dict[str, Any]) -> list[Any]:
    pairs = [
        f"{address['ip']}:{port['port']}"
        for subset in endpoints.get("subsets") or []
        for port in subset.get("ports") or []
        for address in subset.get("addresses") or []
    ]
    shown = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [
        endpoints["metadata"]["name"],
        shown or "<none>",
        age(endpoints["metadata"].get("creationTimestamp")),
    ]


def _node_row(node: dict[str, Any]) -> list[Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return [
        node["metadata"]["name"],
        "Ready" if ready else "NotReady",
        "<none>",
        age(node["metadata"].get("creationTimestamp")),
        ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""),
    ]


def _selector_text(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in labels.items())


_NAME: Column = ("Name", "string", 0)
_AGE: Column = ("Age", "string", 0)
PRINTERS: dict[tuple[str, str], tuple[list[Column], Row]] = {
    ("", "Pod"): (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            _AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    ("apps", "Deployment"): (
        [
            _NAME,
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            _AGE,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        _deployment_row,
    ),
    ("apps", "ReplicaSet"): (
        [
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            _AGE,
        ],
        _replicaset_row,
    ),
    ("apps", "DaemonSet"): (
        [
            _NAME,
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            _AGE,
        ],
        _daemonset_row,
    ),
    ("", "Service"): (
        [
            _NAME,
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            _AGE,
            ("Selector", "string", 1),
        ],
        _service_row,
    ),
    ("", "Endpoints"): ([_NAME, ("Endpoints", "string", 0), _AGE], _endpoints_row),
    ("", "Node"): (
        [_NAME, ("Status", "string", 0), ("Roles", "string", 0), _AGE, ("Version", "string", 0)],
        _node_row,
    ),
    ("", "Namespace"): (
        [_NAME, ("Status", "string", 0), _AGE],
        lambda ns: [
            ns["metadata"]["name"],
            (ns.get("status") or {}).get("phase", "Active"),
            age(ns["metadata"].get("creationTimestamp")),
        ],
    ),
    ("", "ConfigMap"): (
        [_NAME, ("Data", "integer", 0), _AGE],
        lambda cm: [
            cm["metadata"]["name"],
            len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            age(cm["metadata"].get("creationTimestamp")),
        ],
    ),
    ("", "Secret"): (
        [_NAME, ("Type", "string", 0), ("Data", "integer", 0), _AGE],
        lambda s: [
            s["metadata"]["name"],
            s.get("type", "Opaque"),
            len(s.get("data") or {}),
            age(s["metadata"].get("creationTimestamp")),
        ],
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (
        [_NAME, ("Created At", "date", 0)],
        lambda crd: [crd["metadata"]["name"], crd["metadata"].get("creationTimestamp")],
    ),
}


def jsonpath_value(obj: dict[str, Any], path: str) -> Any:
    """The value at a simple JSONPath such as `.spec.mode` or `.status.conditions[0].type`."""
    current: Any = obj
    for part in path.strip().lstrip(".").replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("[") and part.endswith("]"):
            index = part[1:-1]
            current = (
                current[int(index)]
                if isinstance(current, list) and index.isdigit() and int(index) < len(current)
                else None
            )
        else:
            current = current.get(part) if isinstance(current, dict) else None
        if current is None:
            return None
    return current


def _custom_printer(resource_type: ResourceType, version: str) -> tuple[list[Column], Row]:
    columns = (resource_type.crd_version(version) or {}).get("additionalPrinterColumns") or []
    if not columns:
        return [_NAME, ("Created At", "date", 0)], lambda obj: [
            obj["metadata"]["name"],
            obj["metadata"].get("creationTimestamp"),
        ]
    definitions: list[Column] = [_NAME] + [
        (c["name"], c.get("type", "string"), c.get("priority", 0)) for c in columns
    ]

    def row(obj: dict[str, Any]) -> list[Any]:
        cells: list[Any] = [obj["metadata"]["name"]]
        for column in columns:
            value = jsonpath_value(obj, column.get("jsonPath", ""))
            if column.get("type") == "date" and isinstance(value, str):
                value = age(value)
            cells.append(value)
        return cells

    return definitions, row


def to_table(
    resource_type: ResourceType,
    version: str,
    objects: list[dict[str, Any]],
    list_metadata: dict[str, Any],
    include_object: str = "Metadata",
) -> dict[str, Any]:
    """A Table of objects, each row carrying its object's metadata (or the object itself)."""
    if resource_type.is_custom:
        columns, row = _custom_printer(resource_type, version)
    else:
        columns, row = PRINTERS.get(
            (resource_type.group, resource_type.kind),
            (
                [_NAME, _AGE],
                lambda obj: [
                    obj["metadata"]["name"],
                    age(obj["metadata"].get("creationTimestamp")),
                ],
            ),
        )
    rows = []
    for obj in objects:
        cells = row(obj)
        # Date columns of built-in printers are rendered by the server as ages.
        cells = [
            age(cell) if kind == "date" and isinstance(cell, str) else cell
            for cell, (_, kind, _) in zip(cells, columns, strict=False)
        ]
        entry: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            }
        rows.append(entry)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": [
            {
                "name": name,
                "type": "string" if kind == "date" else kind,
                "format": "name" if name == "Name" else "",
                "description": "",
                "priority": priority,
            }
            for name, kind, priority in columns
        ],
        "rows": rows,
    }
