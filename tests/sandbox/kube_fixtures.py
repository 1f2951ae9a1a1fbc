"""Fixtures for the Kubernetes API server tests: a server on a loopback port, the real clients
pointed at it through a written kubeconfig, and kubectl.

Import the fixtures a module needs (`from kube_fixtures import kube, kubectl`); pytest finds them
in the module's namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from sandbox.kube import KubeSandbox, KubeStore, serve_in_thread

# Pods in the sandbox must tolerate the node's taints (workload=general, CriticalAddonsOnly) to
# be scheduled; test workloads outside kube-system tolerate everything.
TOLERATE_ALL = [{"operator": "Exists"}]


def deployment(
    name: str,
    *,
    replicas: int = 1,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
    image: str = "busybox:1.36",
) -> dict[str, Any]:
    """A minimal Deployment manifest whose pods can be scheduled on the sandbox node."""
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "tolerations": TOLERATE_ALL,
                    "containers": [
                        {
                            "name": "main",
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ],
                },
            },
        },
    }


@dataclass
class Kube:
    """A running API server with its store and clients."""

    store: KubeStore
    server: KubeSandbox
    kubeconfig: Path
    api_client: client.ApiClient
    tmp: Path
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api_client)

    @property
    def extensions(self) -> client.ApiextensionsV1Api:
        return client.ApiextensionsV1Api(self.api_client)

    def requests(self) -> list[dict[str, Any]]:
        return list(self.server.control.log.entries)

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """A raw request (status, decoded JSON body or text, headers), for what the typed
        client cannot send: explicit patch content types, bad methods, control endpoints."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=data,
            headers={"Content-Type": content_type, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, raw, answer_headers = answer.status, answer.read(), dict(answer.headers)
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), dict(error.headers)
        try:
            decoded: Any = json.loads(raw) if raw else None
        except ValueError:
            decoded = raw.decode()
        return status, decoded, answer_headers


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[Kube]:
    """A fresh store served over plain HTTP on 127.0.0.1."""
    store = KubeStore()
    with serve_in_thread(store) as server:
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig)
        api_client = config.new_client_from_config(str(kubeconfig))
        try:
            yield Kube(store, server, kubeconfig, api_client, tmp_path)
        finally:
            api_client.close()


def require_kubectl() -> str:
    """The kubectl binary; the test fails when it is missing, unless AKS_METRICS_NO_KUBECTL=1
    says so on purpose (then it is skipped)."""
    binary = shutil.which("kubectl")
    if binary is None:
        if os.environ.get("AKS_METRICS_NO_KUBECTL") == "1":
            pytest.skip("kubectl is not installed and AKS_METRICS_NO_KUBECTL=1")
        pytest.fail("kubectl is not installed (set AKS_METRICS_NO_KUBECTL=1 to skip on purpose)")
    return binary


@pytest.fixture
def kubectl(kube: Kube) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run kubectl against the sandbox: `kubectl("get", "pods", "-A")`."""
    binary = require_kubectl()
    cache = kube.tmp / "kubectl-cache"
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "NO_PROXY": "127.0.0.1"}

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, "--cache-dir", str(cache), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
