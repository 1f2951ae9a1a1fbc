"""Pod exec over WebSocket (through `kubernetes.stream`), pod logs and the service proxy."""

from __future__ import annotations

import json

import pytest
import yaml
from kube_fixtures import Kube, deployment
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from sandbox.kube import ExecResult, ProxyRequest, ProxyResponse


def _exec(kube: Kube, pod: str, command: list[str], container: str | None = "main"):
    kwargs = {"container": container} if container else {}
    response = stream(
        kube.core.connect_get_namespaced_pod_exec,
        pod,
        "default",
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
        **kwargs,
    )
    response.run_forever(timeout=10)
    return response


def _pod(kube: Kube) -> str:
    kube.apps.create_namespaced_deployment("default", deployment("web"))
    return kube.core.list_namespaced_pod("default").items[0].metadata.name


def test_exec_returns_stdout_stderr_and_exit_codes_from_a_handler(kube: Kube) -> None:
    seen: list[tuple[str, str, list[str]]] = []

    def agent(pod: dict, container: str, argv: list[str]) -> ExecResult | None:
        seen.append((pod["metadata"]["name"], container, argv))
        if argv == ["cat", "/opt/microsoft/linuxmonagent/mdsd.err"]:
            return ExecResult(stdout=b"", stderr=b"cat: no such file\n", exit_code=3)
        if argv[:1] == ["ps"]:
            return ExecResult(stdout=b"PID USER COMMAND\n1 root MetricsExtension\n")
        return None

    kube.store.register_exec(agent)
    pod = _pod(kube)

    ok = _exec(kube, pod, ["ps", "aux"])
    assert ok.read_stdout() == "PID USER COMMAND\n1 root MetricsExtension\n"
    assert ok.returncode == 0

    failed = _exec(kube, pod, ["cat", "/opt/microsoft/linuxmonagent/mdsd.err"])
    assert failed.read_stdout() == ""
    assert failed.read_stderr() == "cat: no such file\n"
    assert failed.returncode == 3
    assert seen[0] == (pod, "main", ["ps", "aux"])


def test_exec_status_channel_carries_the_kubelet_status(kube: Kube) -> None:
    pod = _pod(kube)
    response = _exec(kube, pod, ["false"])
    status = yaml.safe_load(response.read_channel(3))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "1"}]

    echoed = _exec(kube, pod, ["sh", "-c", "echo hello world"])
    assert echoed.read_stdout() == "hello world\n" and echoed.returncode == 0


def test_an_unknown_command_fails_as_the_runtime_reports_it(kube: Kube) -> None:
    pod = _pod(kube)
    response = _exec(kube, pod, ["nslookup", "example.com"])
    status = json.loads(response.read_channel(3))
    assert status["status"] == "Failure" and status["reason"] == "InternalError"
    assert 'exec: "nslookup": executable file not found in $PATH' in status["message"]


def test_exec_refuses_a_missing_pod_or_container(kube: Kube) -> None:
    pod = _pod(kube)
    # The client reports a refused upgrade as status 0 with the handshake's status in the reason.
    with pytest.raises(ApiException) as missing:
        _exec(kube, "no-such-pod", ["true"])
    assert "Handshake status 404" in str(missing.value.reason)
    with pytest.raises(ApiException) as bad_container:
        _exec(kube, pod, ["true"], container="sidecar")
    assert "Handshake status 400" in str(bad_container.value.reason)


def test_exec_picks_the_only_container_when_none_is_named(kube: Kube) -> None:
    pod = _pod(kube)
    assert _exec(kube, pod, ["echo", "x"], container=None).read_stdout() == "x\n"


def test_pod_logs_come_from_the_log_buffer(kube: Kube) -> None:
    pod = _pod(kube)
    for line in ("first", "second", "third"):
        kube.store.append_log("default", pod, "main", line)
    assert kube.core.read_namespaced_pod_log(pod, "default") == "first\nsecond\nthird\n"
    assert (
        kube.core.read_namespaced_pod_log(pod, "default", container="main", tail_lines=1)
        == "third\n"
    )


def test_the_service_proxy_delegates_to_a_registered_handler(kube: Kube) -> None:
    kube.core.create_namespaced_service(
        "default",
        {
            "metadata": {"name": "otel-collector"},
            "spec": {"selector": {"app": "otel"}, "ports": [{"name": "prometheus", "port": 8889}]},
        },
    )
    received: list[ProxyRequest] = []

    def collector(request: ProxyRequest) -> ProxyResponse | None:
        if request.service != "otel-collector":
            return None
        received.append(request)
        return ProxyResponse(
            200, {"Content-Type": "text/plain; version=0.0.4"}, b"# TYPE up gauge\nup 1\n"
        )

    kube.store.register_service_proxy(collector)
    status, body, headers = kube.http(
        "GET", "/api/v1/namespaces/default/services/otel-collector:prometheus/proxy/metrics?x=1"
    )
    assert status == 200 and body == "# TYPE up gauge\nup 1\n"
    assert headers["Content-Type"].startswith("text/plain")
    request = received[0]
    assert (request.namespace, request.port, request.method, request.path, request.query) == (
        "default",
        "prometheus",
        "GET",
        "/metrics",
        "x=1",
    )

    # The Python client's proxy call reaches the same handler (the port defaults to the only one).
    text = kube.core.connect_get_namespaced_service_proxy_with_path(
        "otel-collector", "default", "metrics"
    )
    assert "up 1" in text and received[-1].port == "prometheus"


def test_the_service_proxy_answers_503_without_a_handler_and_404_without_a_service(
    kube: Kube,
) -> None:
    kube.core.create_namespaced_service(
        "default", {"metadata": {"name": "quiet"}, "spec": {"ports": [{"port": 80}]}}
    )
    status, body, _ = kube.http("GET", "/api/v1/namespaces/default/services/quiet:80/proxy/")
    assert status == 503 and body["reason"] == "ServiceUnavailable"
    status, body, _ = kube.http("GET", "/api/v1/namespaces/default/services/ghost/proxy/")
    assert status == 404 and body["message"] == 'services "ghost" not found'
