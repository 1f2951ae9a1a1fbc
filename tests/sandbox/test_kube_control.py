"""The Kubernetes server's sandbox controls (request log, faults), its persistence, HTTPS and the
kubeconfig it writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import urllib3
import yaml
from kube_fixtures import Kube, deployment
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from sandbox.kube import KubeStore, serve_in_thread
from sandbox.tls import make_tls_bundle


def test_the_request_log_records_method_path_status_and_verb(kube: Kube) -> None:
    kube.http("DELETE", "/_sandbox/requests")
    kube.core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    kube.core.read_namespaced_config_map("a", "default")
    kube.core.list_namespaced_config_map("default")
    kube.core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    with pytest.raises(ApiException):
        kube.core.read_namespaced_config_map("missing", "default")
    kube.core.delete_namespaced_config_map("a", "default")

    status, entries, _ = kube.http("GET", "/_sandbox/requests")
    assert status == 200
    assert [(e["method"], e["status"], e["verb"]) for e in entries] == [
        ("POST", 201, "create"),
        ("GET", 200, "get"),
        ("GET", 200, "list"),
        ("PATCH", 200, "patch"),
        ("GET", 404, "get"),
        ("DELETE", 200, "delete"),
    ]
    assert entries[0]["path"] == "/api/v1/namespaces/default/configmaps"
    assert all(isinstance(e["time"], float) for e in entries)
    _, later, _ = kube.http("GET", "/_sandbox/requests?since=4")
    assert later == entries[4:]


def test_injected_429s_carry_retry_after_and_stop_after_count(kube: Kube) -> None:
    status, plan, _ = kube.http(
        "POST", "/_sandbox/faults", {"status": 429, "count": 2, "match": "/configmaps"}
    )
    assert status == 200 and plan["count"] == 2

    for _ in range(2):
        code, body, headers = kube.http("GET", "/api/v1/namespaces/default/configmaps")
        assert code == 429 and body["reason"] == "TooManyRequests"
        assert headers["Retry-After"] == "1"
    # Other paths were never affected; the matching ones recover after the count.
    assert kube.http("GET", "/api/v1/namespaces/default/pods")[0] == 200
    assert kube.http("GET", "/api/v1/namespaces/default/configmaps")[0] == 200


def test_an_error_rate_of_one_fails_every_matching_request_until_cleared(kube: Kube) -> None:
    kube.http("POST", "/_sandbox/faults", {"status": 503, "error_rate": 1.0})
    code, body, _ = kube.http("GET", "/api/v1/namespaces")
    assert code == 503 and body["reason"] == "ServiceUnavailable"
    assert kube.http("GET", "/_sandbox/requests")[0] == 200  # control is never faulted
    kube.http("POST", "/_sandbox/faults", {})
    assert kube.http("GET", "/api/v1/namespaces")[0] == 200


def test_a_reset_fault_drops_the_connection(kube: Kube) -> None:
    kube.http("POST", "/_sandbox/faults", {"reset_rate": 1.0, "match": "/namespaces$"})
    pool = urllib3.PoolManager(retries=False)
    with pytest.raises(urllib3.exceptions.HTTPError):
        pool.request("GET", f"{kube.url}/api/v1/namespaces")
    assert pool.request("GET", f"{kube.url}/api/v1/nodes").status == 200


def test_the_store_persists_and_reloads_objects_and_custom_kinds(tmp_path: Path) -> None:
    state = tmp_path / "state"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    with serve_in_thread(KubeStore(), state_dir=state) as server:
        server.store.put(crd)
        server.store.put(
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w", "namespace": "default"},
            }
        )
        server.store.put(deployment("web"))
        saved_version = server.store.resource_version

    reloaded = KubeStore()
    with serve_in_thread(reloaded, state_dir=state):
        assert reloaded.get("example.com/v1", "Widget", "default", "w") is not None
        pods = reloaded.list("v1", "Pod", "default")
        assert len(pods) == 1 and pods[0]["status"]["phase"] == "Running"
        assert reloaded.resource_version >= saved_version


def test_https_with_the_sandbox_ca_and_the_written_kubeconfig(tmp_path: Path) -> None:
    bundle = make_tls_bundle(tmp_path / "tls")
    with serve_in_thread(KubeStore(), tls=bundle) as server:
        assert server.url.startswith("https://127.0.0.1:")
        kubeconfig = tmp_path / "kubeconfig"
        server.write_kubeconfig(kubeconfig, ca_file=bundle.ca_pem)

        written = yaml.safe_load(kubeconfig.read_text())
        assert written["current-context"] == "aks-rubicon-koreacentral-01"
        assert written["clusters"][0]["cluster"] == {
            "server": server.url,
            "certificate-authority": str(bundle.ca_pem),
        }
        assert written["users"][0]["name"] == "aks-rubicon-koreacentral-01"
        assert kubeconfig.stat().st_mode & 0o777 == 0o600

        api_client = config.new_client_from_config(str(kubeconfig))
        try:
            names = {n.metadata.name for n in client.CoreV1Api(api_client).list_namespace().items}
        finally:
            api_client.close()
        assert "kube-system" in names
