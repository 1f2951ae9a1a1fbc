"""The sandbox's Kubernetes API server: store, API machinery, controllers, wire format."""

from sandbox.kube.errors import ApiError
from sandbox.kube.models import (
    ExecResult,
    KubeStore,
    ProxyRequest,
    ProxyResponse,
)
from sandbox.kube.server import KubeSandbox, serve_in_thread

__all__ = [
    "ApiError",
    "ExecResult",
    "KubeSandbox",
    "KubeStore",
    "ProxyRequest",
    "ProxyResponse",
    "serve_in_thread",
]
