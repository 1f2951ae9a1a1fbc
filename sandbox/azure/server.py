"""The sandbox's Azure endpoint: ARM and the token endpoint over HTTPS, plus per-VNet DNS.

Every request passes, in this order: the fault injector (latency, injected errors, connection
resets), then for ARM paths authentication (401), the api-version check (400) and throttling
(429), then the handler. Everything except ``/_sandbox/`` itself goes into the request log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox.azure.dns import VnetDnsServers
from sandbox.azure.identity import AuthError, Directory
from sandbox.azure.ids import parse_path
from sandbox.azure.models import ArmError, AzureState
from sandbox.azure.resource_types import VIRTUAL_NETWORKS
from sandbox.azure.responses import ArmResponses, arm_error_response, json_response
from sandbox.azure.throttling import FaultInjector, RequestLog, Throttle, ThrottleLimits
from sandbox.azure.urls import FIXED_ROUTES
from sandbox.tls import TlsBundle, server_ssl_context

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_CLIENT_ID = "a0c5e1f2-7a4b-4c1d-9e3f-5b6a7c8d9e01"
TICK_INTERVAL = 0.05
# How long a write may wait before it is on disk (a killed sandbox loses at most this much).
SAVE_INTERVAL = 0.2


class AzureSandbox:
    """ARM over HTTPS on loopback, the OAuth token endpoint, and a DNS port per VNet.

    ``tenant_id``, ``client_id`` and ``client_secret`` are the credentials the token endpoint
    accepts (a secret is generated when none is given). ``lro_delay`` is how long a long-running
    operation stays ``InProgress``; ``lro_retry_after`` (seconds, ≥ 1, or ``None`` to omit) is
    the ``Retry-After`` sent with it. ``throttle`` sets the token buckets (smaller ones for tests).
    """

    def __init__(
        self,
        state: AzureState,
        *,
        host: str = "127.0.0.1",
        arm_port: int = 0,
        dns_ports: dict[str, int] | None = None,
        tls: TlsBundle,
        lro_delay: float = 0.3,
        lro_retry_after: int | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        throttle: ThrottleLimits | None = None,
        page_size: int = 1000,
        fault_seed: int | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the sandbox listens on loopback only")
        self.state = state
        self.state.lro_delay = lro_delay
        # Writes are saved by the timer in _tick (within SAVE_INTERVAL), and at stop.
        self.state.autosave = False
        self.host = host
        self.tls = tls
        self.lro_retry_after = lro_retry_after
        self.page_size = page_size
        self.tenant_id = state.tenant_id
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(32)
        self.directory = Directory(state)
        self.directory.add_principal(self.client_id, self.client_secret)
        self.throttle = Throttle(throttle)
        self.faults = FaultInjector(seed=fault_seed)
        self.request_log = RequestLog()
        self.responses = ArmResponses(self)
        self.dns = VnetDnsServers(state, host=host)
        self.arm_url = ""
        self.dns_addresses: dict[str, tuple[str, int]] = self.dns.addresses
        self._arm_port = arm_port
        self._dns_ports = dict(dns_ports or {})
        self._extra_routes: list[tuple[str, str, Handler]] = []
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        state.subscribe(self._on_write)

    # ------------------------------------------------------------------------------- lifecycle

    def add_route(self, method: str, path: str, handler: Handler, *, auth: bool = True) -> None:
        """Mount another handler on the ARM server (aiohttp path syntax), before :meth:`start`.

        With ``auth`` (the default) the request must carry a bearer token from the sandbox's
        token endpoint, as the workspace's query endpoint requires; ``request["principal"]``
        then holds the client id. Faults and the request log apply as to ARM.
        """
        if self._runner is not None:
            raise RuntimeError("add routes before the sandbox starts")
        if auth:
            handler = self._authenticated(handler)
        self._extra_routes.append((method.upper(), path, handler))

    async def start(self) -> None:
        """Bind ARM (HTTPS) on ``host:arm_port`` and one UDP DNS port per VNet in the state."""
        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[self._observe], client_max_size=16 * 1024 * 1024)
        for method, path, handler in self._extra_routes:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.host, self._arm_port, ssl_context=server_ssl_context(self.tls)
        )
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.arm_url = f"https://{self.host}:{port}"
        self.state.arm_url = self.arm_url
        await self.ensure_dns_servers()
        self._ticker = asyncio.create_task(self._tick())
        logger.info("ARM listens on %s", self.arm_url)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.dns.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.state.save()

    async def ensure_dns_servers(self) -> None:
        """Start a resolver for every VNet that has none yet (VNets added by fleet builders)."""
        for vnet in self.state.of_type(VIRTUAL_NETWORKS.type_key):
            if vnet["id"] not in self.dns.addresses:
                port = next(
                    (p for v, p in self._dns_ports.items() if v.lower() == vnet["id"].lower()), 0
                )
                await self.dns.start_for(vnet["id"], port)

    def dns_address_of(self, vnet_id: str) -> tuple[str, int]:
        """The resolver of a VNet (ids are case-insensitive)."""
        for vnet, address in self.dns.addresses.items():
            if vnet.lower() == vnet_id.lower():
                return address
        raise KeyError(vnet_id)

    def _on_write(self, method: str, resource_id: str) -> None:
        # A VNet written while running gets its resolver as soon as the loop is free.
        if self._loop is None or "/virtualnetworks/" not in resource_id.lower():
            return
        if "/subnets/" in resource_id.lower():
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(self.ensure_dns_servers())
            )

    async def _tick(self) -> None:
        # Operations also finish when nobody polls them: DNS and the behaviour code must see it.
        last_save = time.monotonic()
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            try:
                self.state.advance()
                if time.monotonic() - last_save >= SAVE_INTERVAL:
                    self.state.save_if_dirty()
                    last_save = time.monotonic()
            except Exception:
                logger.exception("Finishing operations or saving the state failed")

    # ------------------------------------------------------------------------------- pipeline

    @web.middleware
    async def _observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Faults first, then the handler; log what was answered."""
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        api_version = request.query.get("api-version")
        decision = self.faults.decide(request.method, request.path)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        if decision.reset:
            self.request_log.record(
                method=request.method, path=request.path, status=0, api_version=api_version
            )
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if decision.status is not None:
            headers = {"x-ms-request-id": str(uuid.uuid4())}
            if decision.retry_after or decision.status == 429:
                headers["Retry-After"] = str(max(1, decision.retry_after or 1))
            response: web.StreamResponse = json_response(
                decision.status,
                {
                    "error": {
                        "code": _FAULT_CODES.get(decision.status, "InjectedFault"),
                        "message": "The sandbox injected this failure.",
                    }
                },
                headers,
            )
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = json_response(
                    exc.status,
                    {"error": {"code": exc.reason.replace(" ", ""), "message": exc.text}},
                )
        self.request_log.record(
            method=request.method,
            path=request.path,
            status=response.status,
            api_version=api_version,
        )
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        for method, pattern, name in FIXED_ROUTES:
            match = pattern.match(request.path)
            if match and request.method == method:
                return await getattr(self.responses, name)(request, **match.groupdict())
        request_id = str(uuid.uuid4())
        headers = {"x-ms-request-id": request_id, "x-ms-correlation-request-id": request_id}
        path = parse_path(request.path)
        if path is None:
            return json_response(
                404,
                {"error": {"code": "NotFound", "message": f"No route for '{request.path}'."}},
                headers,
            )
        try:
            owner = self.directory.check(request.headers.get("Authorization"))
        except AuthError as error:
            headers["WWW-Authenticate"] = (
                f'Bearer authorization_uri="{self.arm_url}/{self.tenant_id}", '
                f'error="invalid_token", error_description="{error.description}"'
            )
            return json_response(
                401, {"error": {"code": error.error, "message": error.description}}, headers
            )
        if "api-version" not in request.query:
            return json_response(
                400,
                {
                    "error": {
                        "code": "MissingApiVersionParameter",
                        "message": "The api-version query parameter (?api-version=) is required "
                        "for "
                        "all requests.",
                    }
                },
                headers,
            )
        decision = self.throttle.take(
            path.subscription or "tenant", owner.client_id, request.method
        )
        headers[decision.header] = str(decision.remaining)
        if not decision.allowed:
            headers["Retry-After"] = str(decision.retry_after)
            return json_response(
                429,
                {
                    "error": {
                        "code": "TooManyRequests",
                        "message": "The request is being throttled as the limit has been reached "
                        "for "
                        f"operation type - {decision.header.rsplit('-', 1)[1].capitalize()}. "
                        f"Please retry after {decision.retry_after} seconds.",
                    }
                },
                headers,
            )
        try:
            response = await self.responses.arm(request, path, owner.client_id)
        except ArmError as error:
            response = arm_error_response(error)
        response.headers.update(headers)
        return response

    def _authenticated(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                owner = self.directory.check(request.headers.get("Authorization"))
            except AuthError as error:
                return json_response(
                    401, {"error": {"code": error.error, "message": error.description}}
                )
            request["principal"] = owner.client_id
            return await handler(request)

        return guarded

    def describe(self) -> dict[str, Any]:
        """What a client needs to reach this sandbox (the runner writes it to sandbox.json)."""
        return {
            "arm_url": self.arm_url,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "dns": {vnet: f"{host}:{port}" for vnet, (host, port) in self.dns.addresses.items()},
        }


_FAULT_CODES = {
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
    409: "Conflict",
}
