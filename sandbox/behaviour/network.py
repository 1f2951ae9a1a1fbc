"""The cluster's pod network, in process: who answers HTTP on which pod IP and container port.

Pods in the sandbox have made-up IPs (10.244.0.0/16) that nothing listens on. Workloads that
serve HTTP (the collector's OTLP receiver, its Prometheus exporter and its own telemetry) register
a listener here; the service proxy of the Kubernetes API server and the ama-metrics scraper both
reach pods through this one table, so that both see the same pods and the same answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class HttpRequest:
    """An HTTP request as it arrives at a pod's port."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str, default: str = "") -> str:
        """A header's value, matched case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default


@dataclass
class HttpResponse:
    """What a pod's listener answers."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class ConnectionRefused(Exception):
    """Nothing listens on that pod and port (as `connect: connection refused`)."""


# A listener is given the pod object, the container port number and the request; it returns None
# when it does not serve that pod and port, so several workloads can share the table.
Listener = Callable[[dict[str, Any], int, HttpRequest], HttpResponse | None]


class PodNetwork:
    """Routes HTTP requests to the pod listeners registered by the behaviour modules."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Add a listener; it is asked, in registration order, for every request."""
        self._listeners.append(listener)

    def request(self, pod: dict[str, Any], port: int, request: HttpRequest) -> HttpResponse:
        """Send `request` to `pod`'s `port`; raise ConnectionRefused when nothing answers."""
        if not is_running(pod):
            raise ConnectionRefused(f"pod {pod_key(pod)} is not running")
        for listener in self._listeners:
            response = listener(pod, port, request)
            if response is not None:
                return response
        raise ConnectionRefused(f"dial tcp {pod_ip(pod)}:{port}: connect: connection refused")


def pod_key(pod: dict[str, Any]) -> str:
    """`namespace/name` of a pod, for messages and dictionary keys."""
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def pod_ip(pod: dict[str, Any]) -> str:
    """The pod's IP, or an empty string before it has one."""
    return str(pod.get("status", {}).get("podIP") or "")


def is_running(pod: dict[str, Any]) -> bool:
    """True when the pod is in phase Running and not being deleted."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return pod.get("status", {}).get("phase") == "Running"


def is_ready(pod: dict[str, Any]) -> bool:
    """True when the pod runs and its Ready condition is True."""
    if not is_running(pod):
        return False
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def container_ports(pod: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(container name, port name, port number) for every declared container port of a pod."""
    ports = []
    for container in pod.get("spec", {}).get("containers") or []:
        for port in container.get("ports") or []:
            number = port.get("containerPort")
            if isinstance(number, int):
                ports.append((container.get("name", ""), port.get("name", ""), number))
    return ports


def matches_selector(labels: dict[str, str], selector: dict[str, Any] | None) -> bool:
    """True when `labels` satisfy a LabelSelector (matchLabels and matchExpressions)."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = expression.get("key", "")
        operator = expression.get("operator", "")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
