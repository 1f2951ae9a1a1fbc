"""Kubernetes Services on the in-process pod network: the API server's service proxy.

`GET|POST /api/v1/namespaces/{ns}/services/{name}:{port}/proxy/{path}` is how tests (and a
person with `kubectl`) reach the collector from outside the cluster. The API server hands the
request to `ServiceProxy.handle`, which picks a ready endpoint pod of the Service the way
kube-proxy would, maps the Service port to the pod's container port, and forwards the request on
the `PodNetwork`. Errors read like the real API server's `v1 Status` answers.
"""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

from sandbox.behaviour.network import (
    ConnectionRefused,
    HttpRequest,
    HttpResponse,
    PodNetwork,
    container_ports,
    is_ready,
    pod_ip,
)

logger = logging.getLogger(__name__)


def status_response(code: int, reason: str, message: str) -> HttpResponse:
    """A `v1 Status` failure body, as the API server writes it."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return HttpResponse(code, {"Content-Type": "application/json"}, json.dumps(body).encode())


class ServiceProxy:
    """Forwards service-proxy requests to the endpoint pods of a Service."""

    def __init__(self, store: Any, network: PodNetwork) -> None:
        self._store = store
        self._network = network
        self._round_robin = itertools.count()

    def handle(
        self, *, namespace: str, service: str, port: str, request: HttpRequest
    ) -> HttpResponse | None:
        """Answer one proxied request; None when the Service does not exist (the caller's 404)."""
        svc = self._store.get("v1", "Service", namespace, service)
        if svc is None:
            return None
        service_port = _service_port(svc, port)
        if service_port is None:
            return status_response(
                503, "ServiceUnavailable", f'no endpoints available for service "{service}"'
            )

        pods = self.endpoint_pods(svc)
        if not pods:
            return status_response(
                503, "ServiceUnavailable", f'no endpoints available for service "{service}"'
            )
        pod = pods[next(self._round_robin) % len(pods)]
        target = _target_port(pod, service_port)
        if target is None:
            return status_response(
                503, "ServiceUnavailable", f'no endpoints available for service "{service}"'
            )
        try:
            return self._network.request(pod, target, request)
        except ConnectionRefused:
            message = (
                f"error trying to reach service: dial tcp {pod_ip(pod)}:{target}: "
                "connect: connection refused"
            )
            return status_response(503, "ServiceUnavailable", message)

    def endpoint_pods(self, service: dict[str, Any]) -> list[dict[str, Any]]:
        """The ready pods a Service's selector picks, in a stable order."""
        selector = (service.get("spec") or {}).get("selector") or {}
        if not selector:
            return []
        namespace = service["metadata"]["namespace"]
        pods = self._store.list("v1", "Pod", namespace, label_selector=selector)
        ready = [p for p in pods if is_ready(p)]
        return sorted(ready, key=lambda p: p["metadata"]["name"])


def _service_port(service: dict[str, Any], port: str) -> dict[str, Any] | None:
    """The Service port that `port` (a name, a number, or empty) refers to."""
    ports = (service.get("spec") or {}).get("ports") or []
    if not port:
        return ports[0] if len(ports) == 1 else None
    for candidate in ports:
        if candidate.get("name") == port or str(candidate.get("port")) == port:
            return candidate
    return None


def _target_port(pod: dict[str, Any], service_port: dict[str, Any]) -> int | None:
    """The container port number a Service port's targetPort means on `pod`."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for _container, name, number in container_ports(pod):
        if name == target:
            return number
    return None
