"""The routes of the sandbox's Kubernetes API server."""

from __future__ import annotations

from aiohttp import web

from sandbox.kube import errors
from sandbox.kube.control import Control
from sandbox.kube.responses import KubeApi, error_response


async def _not_found(request: web.Request) -> web.Response:
    return error_response(errors.no_route())


def routes(api: KubeApi, control: Control) -> list[web.RouteDef]:
    """Control endpoints, health, version, OpenAPI, then every /api and /apis path."""
    return [
        *control.routes(),
        web.get("/version", api.version),
        web.get("/version/", api.version),
        *(web.get(path, api.health) for path in ("/healthz", "/livez", "/readyz")),
        web.get("/openapi/v2", api.openapi_v2),
        web.get("/openapi/v3", api.openapi_v3),
        web.get("/openapi/v3/{tail:.*}", api.openapi_v3),
        web.route("*", "/api", api.handle),
        web.route("*", "/api/{tail:.*}", api.handle),
        web.route("*", "/apis", api.handle),
        web.route("*", "/apis/{tail:.*}", api.handle),
        web.route("*", "/{tail:.*}", _not_found),
    ]
