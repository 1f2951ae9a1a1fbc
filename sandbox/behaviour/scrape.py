"""PodMonitor discovery and Prometheus relabelling, as ama-metrics' target allocator does them.

ama-metrics watches every `azmonitoring.coreos.com/v1` PodMonitor in every namespace (no label
or namespace requirement; the upstream `monitoring.coreos.com` group is ignored). A PodMonitor
endpoint becomes one target per selected pod and matching container port:

- `port` must equal a container port *name* on the pod; a name that matches nothing yields no
  target at all, silently (the seed's `prometheus-dev` mistake);
- `portNumber` (or a numeric `targetPort`) matches a declared container port number;
- target labels: `job` (`<namespace>/<podmonitor>` or the pod label named by `jobLabel`),
  `namespace`, `pod`, `container`, `endpoint` (the port name), `instance` (`<pod IP>:<port>`),
  plus `podTargetLabels`; then the endpoint's `relabelings`;
- scraped samples keep their own labels, except that a clash with a target label is renamed to
  `exported_<name>` unless `honorLabels` is set; then the endpoint's `metricRelabelings`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from sandbox.behaviour.network import container_ports, matches_selector, pod_ip
from sandbox.behaviour.promtext import Sample, labels_of

PODMONITOR_API = "azmonitoring.coreos.com/v1"
PODMONITOR_KIND = "PodMonitor"
DEFAULT_INTERVAL = 30.0

_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str | None, default: float = DEFAULT_INTERVAL) -> float:
    """A Prometheus duration (`30s`, `1m30s`, `500ms`) in seconds."""
    if not text:
        return default
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return default
    return sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)


@dataclass
class Target:
    """One scrape target: a pod's port, how often to scrape it, and what to label it with."""

    pod: dict[str, Any]
    port: int
    path: str
    interval: float
    labels: dict[str, str]
    metric_relabelings: list[dict[str, Any]] = field(default_factory=list)
    honor_labels: bool = False
    scrape_job: str = ""

    @property
    def key(self) -> str:
        """A stable identity: the scrape job and the instance."""
        return f"{self.scrape_job}|{self.labels.get('instance', '')}|{self.path}"


def _namespaces(monitor: dict[str, Any], all_namespaces: list[str]) -> list[str]:
    selector = (monitor.get("spec") or {}).get("namespaceSelector") or {}
    if selector.get("any"):
        return all_namespaces
    if selector.get("matchNames"):
        return list(selector["matchNames"])
    return [monitor["metadata"]["namespace"]]


def discover_targets(store: Any) -> list[Target]:
    """Every target of every PodMonitor in the cluster, in a stable order."""
    monitors = store.list(PODMONITOR_API, PODMONITOR_KIND)
    namespaces = [n["metadata"]["name"] for n in store.list("v1", "Namespace")]
    targets: list[Target] = []
    for monitor in sorted(
        monitors, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"])
    ):
        spec = monitor.get("spec") or {}
        selector = spec.get("selector") or {}
        meta = monitor["metadata"]
        for namespace in _namespaces(monitor, namespaces):
            pods = store.list("v1", "Pod", namespace)
            for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
                labels = pod["metadata"].get("labels") or {}
                if not matches_selector(labels, selector) or not pod_ip(pod):
                    continue
                for index, endpoint in enumerate(spec.get("podMetricsEndpoints") or []):
                    targets.extend(_endpoint_targets(meta, spec, index, endpoint or {}, pod))
    return targets


def _endpoint_targets(
    monitor_meta: dict[str, Any],
    spec: dict[str, Any],
    index: int,
    endpoint: dict[str, Any],
    pod: dict[str, Any],
) -> list[Target]:
    port_name = endpoint.get("port")
    port_number = endpoint.get("portNumber")
    target_port = endpoint.get("targetPort")
    if port_number is None and isinstance(target_port, int):
        port_number = target_port
    if port_number is None and isinstance(target_port, str) and target_port.isdigit():
        port_number = int(target_port)

    matches = []
    for container, name, number in container_ports(pod):
        if port_name is not None:
            if name == port_name:
                matches.append((container, name, number))
        elif port_number is not None:
            if number == port_number:
                matches.append((container, name, number))
        else:
            matches.append((container, name, number))

    pod_meta = pod["metadata"]
    pod_labels = pod_meta.get("labels") or {}
    job = f"{monitor_meta['namespace']}/{monitor_meta['name']}"
    if spec.get("jobLabel") and pod_labels.get(spec["jobLabel"]):
        job = pod_labels[spec["jobLabel"]]
    targets = []
    for container, name, number in matches:
        labels = {
            "job": job,
            "namespace": pod_meta["namespace"],
            "pod": pod_meta["name"],
            "container": container,
            "endpoint": name or str(number),
            "instance": f"{pod_ip(pod)}:{number}",
        }
        for label in spec.get("podTargetLabels") or []:
            if label in pod_labels:
                labels[_sanitize(label)] = pod_labels[label]
        relabelled = relabel(labels, endpoint.get("relabelings") or [])
        if relabelled is None:
            continue
        targets.append(
            Target(
                pod=pod,
                port=number,
                path=endpoint.get("path") or "/metrics",
                interval=parse_duration(endpoint.get("interval")),
                labels=relabelled,
                metric_relabelings=list(endpoint.get("metricRelabelings") or []),
                honor_labels=bool(endpoint.get("honorLabels")),
                scrape_job=f"podMonitor/{monitor_meta['namespace']}/{monitor_meta['name']}/{index}",
            )
        )
    return targets


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _expand(template: str, match: re.Match[str]) -> str:
    """Prometheus' `$1` / `${1}` / `${name}` expansion."""

    def group(found: re.Match[str]) -> str:
        key = found.group(1) or found.group(2)
        try:
            value = match.group(int(key)) if key.isdigit() else match.group(key)
        except IndexError:
            return ""
        return value or ""

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(labels: dict[str, str], configs: list[dict[str, Any]]) -> dict[str, str] | None:
    """Apply relabel configs to a label set; None means the series or target is dropped."""
    result = dict(labels)
    for config in configs:
        action = str(config.get("action") or "replace").lower()
        separator = config.get("separator", ";")
        regex_text = config.get("regex", "(.*)")
        try:
            regex = re.compile(f"^(?:{regex_text})$")
        except re.error:
            continue
        sources = config.get("sourceLabels") or []
        value = separator.join(result.get(s, "") for s in sources)
        if action == "replace":
            target = config.get("targetLabel")
            if not target:
                continue
            match = regex.match(value)
            if match is None:
                continue
            new_value = _expand(str(config.get("replacement", "$1")), match)
            new_target = _expand(target, match)
            if new_value:
                result[new_target] = new_value
            else:
                result.pop(new_target, None)
        elif action == "keep":
            if not regex.match(value):
                return None
        elif action == "drop":
            if regex.match(value):
                return None
        elif action == "labeldrop":
            result = {k: v for k, v in result.items() if not regex.match(k)}
        elif action == "labelkeep":
            result = {k: v for k, v in result.items() if regex.match(k) or k == "__name__"}
        elif action == "labelmap":
            replacement = str(config.get("replacement", "$1"))
            for key, val in list(result.items()):
                match = regex.match(key)
                if match:
                    result[_expand(replacement, match)] = val
        elif action in ("lowercase", "uppercase"):
            target = config.get("targetLabel")
            if target:
                result[target] = value.lower() if action == "lowercase" else value.upper()
        elif action == "hashmod":
            target = config.get("targetLabel")
            modulus = int(config.get("modulus") or 1)
            if target:
                digest = int.from_bytes(hashlib.md5(value.encode()).digest()[8:], "big")
                result[target] = str(digest % modulus)
    return result


def label_scraped(samples: list[Sample], target: Target, extra: dict[str, str]) -> list[Sample]:
    """Attach target and external labels to scraped samples and apply metricRelabelings."""
    out: list[Sample] = []
    attached = {**target.labels, **extra}
    for sample in samples:
        labels = dict(sample.labels)
        for key, value in attached.items():
            if key in labels and not target.honor_labels:
                if labels[key] != value or key in ("job", "instance"):
                    labels[f"exported_{key}"] = labels.pop(key)
                    labels[key] = value
            elif key not in labels:
                labels[key] = value
        labels["__name__"] = sample.name
        relabelled = relabel(labels, target.metric_relabelings)
        if relabelled is None:
            continue
        name = relabelled.pop("__name__", sample.name)
        out.append(
            Sample(name, labels_of({k: v for k, v in relabelled.items() if v}), sample.value)
        )
    return out
