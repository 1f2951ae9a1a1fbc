"""kubectl 1.32 against the sandbox's API server: the commands the runbook and the project use."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kube_fixtures import Kube, deployment, require_kubectl

from sandbox.kube import ExecResult, KubeStore, serve_in_thread
from sandbox.tls import make_tls_bundle

pytestmark = pytest.mark.kubectl

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
DATA = Path(__file__).resolve().parents[2] / "sandbox" / "data"


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _manifest(tmp_path: Path) -> Path:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}},
        deployment("web", namespace="demo", replicas=2),
        service,
    ]
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    return path


def test_get_pods_across_namespaces_prints_the_server_table(kube: Kube, kubectl: Kubectl) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    output = _ok(kubectl("get", "pods", "-A"))
    header, row = output.splitlines()[:2]
    assert header.split() == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:5] == ["default", row.split()[1], "1/1", "Running", "0"]
    assert row.split()[1].startswith("web-")


def test_short_names_and_api_resources_work(kube: Kube, kubectl: Kubectl) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    assert "web" in _ok(kubectl("get", "deploy"))
    resources = _ok(kubectl("api-resources", "--api-group=apps", "-o", "name"))
    assert {"deployments.apps", "daemonsets.apps", "replicasets.apps"} <= set(resources.split())


def test_server_side_apply_of_a_manifest_creates_and_then_reapplies(
    kube: Kube, kubectl: Kubectl, tmp_path: Path
) -> None:
    manifest = _manifest(tmp_path)
    first = _ok(
        kubectl(
            "apply", "--server-side", "--field-manager=aks-metrics-pipeline", "-f", str(manifest)
        )
    )
    assert "deployment.apps/web serverside-applied" in first
    _ok(
        kubectl(
            "apply", "--server-side", "--field-manager=aks-metrics-pipeline", "-f", str(manifest)
        )
    )

    pods = json.loads(_ok(kubectl("get", "pods", "-n", "demo", "-o", "json")))["items"]
    assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Running"}
    managers = kube.apps.read_namespaced_deployment("web", "demo").metadata.managed_fields
    assert {(m.manager, m.operation) for m in managers} >= {("aks-metrics-pipeline", "Apply")}
    endpoints = _ok(
        kubectl(
            "get", "endpoints", "web", "-n", "demo", "-o", "jsonpath={.subsets[0].ports[0].port}"
        )
    )
    assert endpoints == "8080"


def test_apply_reports_kinds_the_cluster_does_not_serve(kubectl: Kubectl) -> None:
    result = kubectl("apply", "--server-side", "-f", str(DATA / "opentelemetry-operator.yaml"))
    assert result.returncode == 1
    assert 'no matches for kind "Certificate" in version "cert-manager.io/v1"' in result.stderr
    assert (
        "customresourcedefinition.apiextensions.k8s.io/opentelemetrycollectors"
        ".opentelemetry.io serverside-applied" in result.stdout
    )


def test_exec_prints_the_output_and_exits_with_the_command_exit_code(
    kube: Kube, kubectl: Kubectl
) -> None:
    def agent(pod: dict, container: str, argv: list[str]) -> ExecResult | None:
        if argv[:1] == ["cat"]:
            return ExecResult(stdout=b"partial\n", stderr=b"cat: missing\n", exit_code=3)
        return None

    kube.store.register_exec(agent)
    kube.apps.create_namespaced_deployment("default", deployment("web"))

    ok = kubectl("exec", "deploy/web", "--", "echo", "hello")
    assert (ok.returncode, ok.stdout) == (0, "hello\n")
    failed = kubectl("exec", "deploy/web", "-c", "main", "--", "cat", "/x")
    assert failed.returncode == 3
    assert failed.stdout == "partial\n"
    assert "cat: missing" in failed.stderr
    assert "command terminated with exit code 3" in failed.stderr


def test_rollout_restart_then_rollout_status_finishes(kube: Kube, kubectl: Kubectl) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    before = {p.metadata.name for p in kube.core.list_namespaced_pod("default").items}

    assert "deployment.apps/web restarted" in _ok(kubectl("rollout", "restart", "deploy/web"))
    status = _ok(kubectl("rollout", "status", "deploy/web", "--timeout=20s"))
    assert 'deployment "web" successfully rolled out' in status

    after = {p.metadata.name for p in kube.core.list_namespaced_pod("default").items}
    assert len(after) == 1 and not after & before
    patches = [e for e in kube.requests() if e["verb"] == "patch"]
    assert patches[-1]["path"].endswith("/deployments/web?fieldManager=kubectl-rollout")


def test_rollout_status_of_a_daemonset_finishes(kube: Kube, kubectl: Kubectl) -> None:
    template = deployment("node-agent")["spec"]["template"]
    kube.apps.create_namespaced_daemon_set(
        "kube-system",
        {
            "metadata": {"name": "node-agent"},
            "spec": {"selector": {"matchLabels": {"app": "node-agent"}}, "template": template},
        },
    )
    _ok(kubectl("rollout", "restart", "ds/node-agent", "-n", "kube-system"))
    status = _ok(
        kubectl("rollout", "status", "ds/node-agent", "-n", "kube-system", "--timeout=20s")
    )
    assert 'daemon set "node-agent" successfully rolled out' in status


def test_logs_and_describe_of_a_pod(kube: Kube, kubectl: Kubectl) -> None:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    pod = kube.core.list_namespaced_pod("default").items[0].metadata.name
    kube.store.append_log("default", pod, "main", "Error in SSL handshake")
    assert _ok(kubectl("logs", pod)) == "Error in SSL handshake\n"
    described = _ok(kubectl("describe", "pod", pod))
    assert "Status:" in described and "Running" in described


def test_create_generators_post_protobuf_the_server_decodes(kube: Kube, kubectl: Kubectl) -> None:
    _ok(kubectl("create", "namespace", "demo"))
    _ok(kubectl("create", "configmap", "settings", "-n", "demo", "--from-literal=a=b"))
    _ok(
        kubectl(
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "demo",
            "--from-literal=password=not-a-real-one",
        )
    )
    assert kube.core.read_namespaced_config_map("settings", "demo").data == {"a": "b"}
    secret = kube.core.read_namespaced_secret("creds", "demo")
    assert secret.type == "Opaque" and set(secret.data) == {"password"}
    refused = kubectl("create", "deployment", "web", "--image=busybox:1.36")
    assert refused.returncode == 1 and "unknown format" in refused.stderr


def test_kubectl_over_https_trusts_the_sandbox_ca_for_get_and_exec(tmp_path: Path) -> None:
    binary = require_kubectl()
    bundle = make_tls_bundle(tmp_path / "tls")
    store = KubeStore()
    store.put(deployment("web"))
    with serve_in_thread(store, tls=bundle) as server:
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig, ca_file=bundle.ca_pem)
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [binary, "--cache-dir", str(tmp_path / "cache"), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        assert "web-" in _ok(run("get", "pods"))
        assert _ok(run("exec", "deploy/web", "--", "echo", "over tls")) == "over tls\n"
