"""`kubectl exec` over WebSocket: the channel protocol the API server speaks to exec clients.

Each binary frame starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (a `v1 Status` when
the process ends, in v4 and v5), 4 terminal resize; in v5 a frame on channel 255 closes the channel
named by its second byte. The command's answer comes from the store's exec handlers; the frames,
the final Status and the exit code reach the client exactly as from a kubelet, so `kubectl exec`
prints "command terminated with exit code N" and exits N, and the Python client's `returncode`
reads N.

Commands run non-interactively: nothing the client sends (stdin, resize, v5 close frames) is read,
and the server closes the connection once the Status is written, as a kubelet does when the
process has exited.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from sandbox.kube import errors
from sandbox.kube.errors import ApiError
from sandbox.kube.models import ExecResult, KubeStore

logger = logging.getLogger(__name__)

# Best first; a client's first offer we support wins (aiohttp picks in the client's order).
PROTOCOLS = (
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
)
STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255
FRAME_SIZE = 32 * 1024


def exit_status(result: ExecResult, argv: list[str]) -> dict[str, Any]:
    """The Status a kubelet writes on channel 3 for a finished (or unstartable) command."""
    if result.error is not None:
        # What the kubelet answers when the runtime cannot start the process at all.
        message = (
            f"error executing command in container: failed to exec in container: "
            f"failed to start exec: {result.error}"
        )
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        }
    if result.exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: command '{' '.join(argv)}' "
        f"exited with {result.exit_code}: ",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
    }


def _pod_and_container(
    store: KubeStore, namespace: str, name: str, request: web.Request
) -> tuple[dict[str, Any], str, list[str]]:
    """Check the exec request the way the API server does before it upgrades the connection."""
    pods = store.registry.get("", "pods")
    assert pods is not None
    pod = store.api_get(pods, "v1", namespace, name)
    argv = request.query.getall("command", [])
    if not argv:
        raise errors.bad_request("you must specify at least 1 command")
    containers = [c.get("name") for c in pod["spec"].get("containers") or []]
    container = request.query.get("container")
    if not container:
        if len(containers) != 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {name}, choose one of: "
                f"[{' '.join(containers)}]"
            )
        container = containers[0]
    if container not in containers:
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    if not pod["spec"].get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    if (pod.get("status") or {}).get("phase") != "Running":
        raise errors.bad_request(
            f'unable to upgrade connection: container not found ("{container}")'
        )
    return pod, container, argv


async def serve_exec(
    request: web.Request, store: KubeStore, namespace: str, name: str
) -> web.StreamResponse:
    """Answer `/api/v1/namespaces/{ns}/pods/{name}/exec` (GET or POST with a WebSocket upgrade)."""
    try:
        pod, container, argv = _pod_and_container(store, namespace, name, request)
    except ApiError as error:
        return _refuse(error)
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return _refuse(errors.bad_request("Upgrade request required"))

    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    protocol = ws.ws_protocol or ""
    result = await store.run_exec(pod, container, argv)
    logger.info(
        "exec in %s/%s [%s]: %s → exit %s%s",
        namespace,
        name,
        container,
        " ".join(argv),
        result.exit_code,
        f" ({result.error})" if result.error else "",
    )

    try:
        if request.query.get("stdout", "true").lower() in ("1", "true"):
            await _send(ws, STDOUT, result.stdout)
        if request.query.get("stderr", "true").lower() in ("1", "true"):
            await _send(ws, STDERR, result.stderr)
        status = exit_status(result, argv)
        if protocol in ("v4.channel.k8s.io", "v5.channel.k8s.io"):
            await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
        elif status["status"] != "Success":
            # Before v4 the error channel carried plain text.
            await ws.send_bytes(bytes([ERROR]) + status.get("message", "").encode())
    finally:
        await ws.close()
    return ws


def _refuse(error: ApiError) -> web.Response:
    """The plain HTTP answer to an exec request that cannot be upgraded."""
    return web.json_response(error.status(), status=error.code)


async def _send(ws: web.WebSocketResponse, channel: int, data: bytes) -> None:
    for start in range(0, len(data), FRAME_SIZE):
        await ws.send_bytes(bytes([channel]) + data[start : start + FRAME_SIZE])
