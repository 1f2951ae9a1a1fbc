"""The sandbox's own control surface on the Kubernetes server: the request log and fault injection.

`GET /_sandbox/requests[?since=N]` lists what clients asked (time, method, path, status, verb);
`DELETE /_sandbox/requests` clears it. `POST /_sandbox/faults` sets the fault plan:
`{"latency_ms", "error_rate", "status", "reset_rate", "match", "count"}`: matching requests (regex
on the path) are delayed by latency_ms; the next `count` of them, or a random `error_rate` share of
them, fail with `status` (a v1 Status body; 429 carries Retry-After); a `reset_rate` share have
their connection reset. `{}` clears the plan. Control requests are never logged or faulted.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.kube.errors import ApiError

CONTROL_PREFIX = "/_sandbox/"
# Where the server's first middleware notes a request's Kubernetes verb for the log.
VERB_KEY = web.RequestKey("verb", str)

_FAULT_REASONS = {
    409: (
        "Conflict",
        "Operation cannot be fulfilled: the object has been modified; please apply "
        "your changes to the latest version and try again",
    ),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected fault"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "the server was unable to return a response in the time allotted"),
}


@dataclass
class FaultPlan:
    """What the next matching requests suffer (see the module docstring)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    status: int = 503
    reset_rate: float = 0.0
    match: re.Pattern[str] | None = None
    count: int | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultPlan:
        return cls(
            latency_ms=float(body.get("latency_ms") or 0),
            error_rate=float(body.get("error_rate") or 0),
            status=int(body.get("status") or 503),
            reset_rate=float(body.get("reset_rate") or 0),
            match=re.compile(body["match"]) if body.get("match") else None,
            count=int(body["count"]) if body.get("count") is not None else None,
        )

    def applies_to(self, path: str) -> bool:
        return self.match is None or bool(self.match.search(path))

    def should_fail(self) -> bool:
        if self.count is not None:
            if self.count > 0:
                self.count -= 1
                return True
            return False
        return self.error_rate > 0 and random.random() < self.error_rate

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "status": self.status,
            "reset_rate": self.reset_rate,
            "match": self.match.pattern if self.match else None,
            "count": self.count,
        }


@dataclass
class RequestLog:
    """Every API request the server answered, in order."""

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, method: str, path: str, status: int, verb: str) -> None:
        self.entries.append(
            {
                "time": time.time(),
                "method": method,
                "path": path,
                "status": status,
                "verb": verb,
            }
        )


def fault_status(code: int) -> ApiError:
    reason, message = _FAULT_REASONS.get(code, ("InternalError", f"injected fault ({code})"))
    return ApiError(code, reason, message, retry_after=1 if code == 429 else None)


def _reset(request: web.Request) -> None:
    """Drop the client's connection with a TCP reset, as a failing load balancer would."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Control:
    """The request log and the fault plan, with their routes and the middleware applying them."""

    def __init__(self) -> None:
        self.log = RequestLog()
        self.faults = FaultPlan()
        self.render_error: Callable[[ApiError], web.Response] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{CONTROL_PREFIX}requests", self._get_requests),
            web.delete(f"{CONTROL_PREFIX}requests", self._clear_requests),
            web.post(f"{CONTROL_PREFIX}faults", self._set_faults),
            web.get(f"{CONTROL_PREFIX}faults", self._get_faults),
        ]

    async def _get_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0") or 0)
        return web.json_response(self.log.entries[since:])

    async def _clear_requests(self, request: web.Request) -> web.Response:
        self.log.entries.clear()
        return web.json_response({"cleared": True})

    async def _set_faults(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.faults = FaultPlan.from_json(body or {})
        return web.json_response(self.faults.to_json())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.to_json())

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith(CONTROL_PREFIX):
            return await handler(request)
        plan = self.faults
        if plan.applies_to(request.path):
            if plan.latency_ms:
                await asyncio.sleep(plan.latency_ms / 1000)
            if plan.reset_rate and random.random() < plan.reset_rate:
                self.log.add(request.method, request.path_qs, 0, request.get(VERB_KEY, ""))
                _reset(request)
                raise asyncio.CancelledError
            if plan.should_fail():
                assert self.render_error is not None
                response = self.render_error(fault_status(plan.status))
                self.log.add(request.method, request.path_qs, response.status, "")
                return response
        response = await handler(request)
        self.log.add(request.method, request.path_qs, response.status, request.get(VERB_KEY, ""))
        return response
