"""ARM's wire format: turning HTTP requests into state calls and results into ARM responses.

Status codes, headers (``Azure-AsyncOperation``, ``Location``, ``ETag``, throttling counters),
error bodies and paging follow the spec examples of each provider; the decisions themselves are
made in ``models.AzureState`` and ``resource_types``.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.azure import apiversions
from sandbox.azure.identity import AuthError
from sandbox.azure.ids import ArmPath, parse_path
from sandbox.azure.models import ArmError, Operation, WriteResult
from sandbox.azure.resource_types import KINDS, kind_for
from sandbox.azure.urls import (
    OPERATION_RESULT_TYPES,
    OPERATION_STATUS_TYPES,
    ArmRoute,
    classify,
    operation_paths,
)

if TYPE_CHECKING:
    from sandbox.azure.server import AzureSandbox

JSON = "application/json; charset=utf-8"


def json_response(
    status: int, body: Any | None = None, headers: dict[str, str] | None = None
) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def arm_error_response(error: ArmError) -> web.Response:
    return json_response(error.status, error.body(), error.headers)


class ArmResponses:
    """The request handlers of the ARM server; one instance per :class:`AzureSandbox`."""

    def __init__(self, sandbox: AzureSandbox) -> None:
        self.sandbox = sandbox
        self.state = sandbox.state

    # ------------------------------------------------------------------------------- identity

    async def openid_configuration(self, request: web.Request, tenant: str) -> web.Response:
        """The OpenID metadata MSAL reads before it asks for a token."""
        base = f"{self.sandbox.arm_url}/{tenant}"
        return json_response(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "tenant_region_scope": None,
                "cloud_instance_name": "sandbox",
            },
        )

    async def token(self, request: web.Request, tenant: str) -> web.Response:
        """``POST /{tenant}/oauth2/v2.0/token`` with the client-credentials grant."""
        form = dict(urllib.parse.parse_qsl((await request.read()).decode()))
        try:
            issued = self.sandbox.directory.issue(tenant=tenant, form=form)
        except AuthError as error:
            return json_response(
                error.status,
                {
                    "error": error.error,
                    "error_description": error.description,
                    "error_codes": [int(error.description.split(":")[0].removeprefix("AADSTS"))],
                    "trace_id": str(uuid.uuid4()),
                    "correlation_id": str(uuid.uuid4()),
                },
            )
        return json_response(
            200,
            {
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "ext_expires_in": issued.expires_in,
                "access_token": issued.access_token,
            },
        )

    # ------------------------------------------------------------------------------- control

    async def control_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return json_response(200, self.sandbox.request_log.since(since))

    async def control_clear_requests(self, request: web.Request) -> web.Response:
        self.sandbox.request_log.clear()
        return json_response(204)

    async def control_faults(self, request: web.Request) -> web.Response:
        return json_response(200, self.sandbox.faults.rules())

    async def control_add_fault(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError as error:
            return json_response(400, {"error": {"code": "BadRequest", "message": str(error)}})
        if not spec:
            self.sandbox.faults.clear()
            return json_response(200, [])
        try:
            self.sandbox.faults.add(spec)
        except (TypeError, ValueError) as error:
            return json_response(400, {"error": {"code": "BadRequest", "message": str(error)}})
        return json_response(200, self.sandbox.faults.rules())

    async def control_clear_faults(self, request: web.Request) -> web.Response:
        self.sandbox.faults.clear()
        return json_response(204)

    async def control_state(self, request: web.Request) -> web.Response:
        return json_response(200, self.state.dump())

    async def control_health(self, request: web.Request) -> web.Response:
        return json_response(200, {"status": "ok"})

    # ------------------------------------------------------------------------------- ARM

    async def arm(self, request: web.Request, path: ArmPath, principal: str) -> web.Response:
        """Answer one authenticated ARM request whose api-version is present."""
        api_version = request.query["api-version"]
        route = classify(path)
        if route is ArmRoute.SUBSCRIPTIONS:
            self._check_version(apiversions.RESOURCES, api_version, "subscriptions")
            if path.is_collection:
                return self._page(request, self.state.subscriptions())
            return json_response(200, self.state.subscription(path.names[0]))
        if route is ArmRoute.RESOURCE_GROUPS:
            return self._resource_group(request, path, api_version)
        if route is ArmRoute.GENERIC_RESOURCES:
            return self._generic_resources(request, path, api_version)
        if route is ArmRoute.PROVIDER:
            return self._provider(request, path)
        if route in (ArmRoute.OPERATION_STATUS, ArmRoute.OPERATION_RESULT):
            return self._operation(request, path, route)
        return await self._resource(request, path, api_version, principal)

    def _check_version(self, versions: apiversions.ApiVersions, value: str, type_name: str) -> None:
        if not versions.accepts(value):
            raise ArmError(
                400,
                "NoRegisteredProviderFound",
                f"No registered resource provider found for location 'global' and API version "
                f"'{value}' for type '{type_name}'. The supported api-versions are "
                f"'{versions.describe()}'.",
            )

    def _resource_group(
        self, request: web.Request, path: ArmPath, api_version: str
    ) -> web.Response:
        self._check_version(apiversions.RESOURCES, api_version, "resourceGroups")
        assert path.subscription is not None
        if path.is_collection:
            if request.method != "GET":
                raise ArmError(405, "MethodNotAllowed", "Only GET is supported on this collection.")
            return self._page(request, self.state.resource_groups(path.subscription))
        name = path.names[0]
        if request.method == "HEAD":
            try:
                self.state.resource_group(path.subscription, name)
            except ArmError:
                return json_response(404)
            return json_response(204)
        if request.method != "GET":
            raise ArmError(
                405,
                "MethodNotAllowed",
                "The sandbox's resource groups are part of its scenario; they cannot be written.",
            )
        return json_response(200, self.state.resource_group(path.subscription, name))

    def _generic_resources(
        self, request: web.Request, path: ArmPath, api_version: str
    ) -> web.Response:
        """``/subscriptions/{s}[/resourceGroups/{rg}]/resources`` with common ``$filter`` forms."""
        self._check_version(apiversions.RESOURCES, api_version, "resources")
        if path.types != ("resources",) or request.method != "GET" or path.subscription is None:
            raise ArmError(404, "NotFound", f"No route for '{request.path}'.")
        rows = self.state.generic_resources(path.subscription, path.resource_group)
        rows = [row for row in rows if _matches_filter(row, request.query.get("$filter"))]
        return self._page(request, rows)

    def _provider(self, request: web.Request, path: ArmPath) -> web.Response:
        """``/subscriptions/{s}/providers/{namespace}`` (GET) and ``.../register`` (POST)."""
        namespace = path.namespace or ""
        types = [
            kind
            for key, kind in KINDS.items()
            if key.startswith(namespace.lower() + "/") and kind.type_name.count("/") >= 1
        ]
        if not types:
            raise ArmError(
                404,
                "InvalidResourceNamespace",
                f"The resource namespace '{namespace}' is invalid.",
            )
        canonical = types[0].type_name.split("/", 1)[0]
        return json_response(
            200,
            {
                "id": f"/subscriptions/{path.subscription}/providers/{canonical}",
                "namespace": canonical,
                "registrationState": "Registered",
                "registrationPolicy": "RegistrationRequired",
                "resourceTypes": [
                    {
                        "resourceType": kind.type_name.split("/", 1)[1],
                        "locations": [],
                        "apiVersions": kind.api_versions.as_list(),
                    }
                    for kind in types
                ],
            },
        )

    def _operation(self, request: web.Request, path: ArmPath, route: ArmRoute) -> web.Response:
        """The monitors of long-running operations (status and, for two providers, result)."""
        operation = self.state.operation(path.names[-1])
        if operation is None:
            raise ArmError(
                404, "OperationNotFound", f"The operation '{path.names[-1]}' was not found."
            )
        if route is ArmRoute.OPERATION_STATUS:
            assert path.type_key in OPERATION_STATUS_TYPES
            return json_response(200, self._status_body(request, operation))
        assert path.type_key in OPERATION_RESULT_TYPES
        if operation.status == "InProgress":
            headers = {"Location": self._url(request.path_qs)}
            headers.update(self._retry_after())
            return json_response(202, None, headers)
        if operation.status != "Succeeded":
            error = operation.error or {
                "code": "OperationFailed",
                "message": "The operation failed.",
            }
            return json_response(400, {"error": error})
        if operation.action == "delete":
            return json_response(204)
        resource = self.state.get(operation.resource_id)
        return json_response(200, resource) if resource else json_response(204)

    def _status_body(self, request: web.Request, operation: Operation) -> dict[str, Any]:
        body: dict[str, Any] = {"status": operation.status}
        if operation.style != "network":
            body.update(
                {
                    "id": request.path,
                    "name": operation.id,
                    "startTime": operation.start_time,
                }
            )
            if operation.end_time:
                body["endTime"] = operation.end_time
        if operation.error:
            body["error"] = operation.error
        return body

    async def _resource(
        self, request: web.Request, path: ArmPath, api_version: str, principal: str
    ) -> web.Response:
        kind = kind_for(path.type_key, extension=path.is_extension)
        if kind is None:
            raise ArmError(
                404 if path.namespace else 400,
                "InvalidResourceType",
                f"The resource type '{'/'.join(path.types)}' could not be found in the namespace "
                f"'{path.namespace}' for api version '{api_version}'.",
            )
        self._check_version(kind.api_versions, api_version, kind.type_name)
        method = request.method
        if path.is_collection:
            if method != "GET":
                raise ArmError(
                    405, "MethodNotAllowed", f"{method} is not supported on a collection."
                )
            return self._page(request, self.state.list(path))
        if method in ("GET", "HEAD"):
            if kind.get_handler is not None:
                self.state.list(path)  # the same scope checks as a list of the parent
                found = kind.get_handler(self.state, path)
                if found is None:
                    raise kind.not_found(path)  # type: ignore[misc]
                return json_response(200, found, self._etag(found))
            try:
                resource = self.state.read(path)
            except ArmError:
                if method == "HEAD":
                    return json_response(404)
                raise
            if method == "HEAD":
                return json_response(204)
            return json_response(200, resource, self._etag(resource))
        if method == "PUT":
            body = await self._json_body(request)
            result = self.state.put(
                path,
                body,
                if_match=request.headers.get("If-Match"),
                if_none_match=request.headers.get("If-None-Match"),
                principal=principal,
            )
            return self._write_response(request, result)
        if method == "PATCH":
            body = await self._json_body(request)
            return self._write_response(request, self.state.patch(path, body, principal=principal))
        if method == "DELETE":
            result = self.state.delete(
                path, if_match=request.headers.get("If-Match"), options=dict(request.query)
            )
            return self._write_response(request, result)
        raise ArmError(405, "MethodNotAllowed", f"The method {method} is not supported.")

    # ------------------------------------------------------------------------------- helpers

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ArmError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: '{error}'.",
            ) from None
        if not isinstance(body, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content must be a JSON object."
            )
        return body

    def _write_response(self, request: web.Request, result: WriteResult) -> web.Response:
        headers: dict[str, str] = {}
        body = result.body
        if body is not None:
            headers.update(self._etag(body))
        if result.operation is not None:
            operation = result.operation
            status_path, result_path = operation_paths(
                style=operation.style,
                subscription=operation.subscription,
                resource_group=operation.resource_group,
                location=operation.location,
                operation_id=operation.id,
            )
            query = f"?api-version={request.query['api-version']}"
            headers["Azure-AsyncOperation"] = self._url(status_path + query)
            # Microsoft.Network gives Location only for deletes; Private DNS for both.
            if result_path is not None and (
                operation.style == "privatedns" or operation.action == "delete"
            ):
                headers["Location"] = self._url(result_path + query)
            headers.update(self._retry_after())
        if result.status in (202, 204):
            body = None
        return json_response(result.status, body, headers)

    def _retry_after(self) -> dict[str, str]:
        # Never "Retry-After: 0": azure-core reads 0 as "no advice" and waits its 30 s default.
        seconds = self.sandbox.lro_retry_after
        return {"Retry-After": str(max(1, int(seconds)))} if seconds else {}

    def _etag(self, resource: dict[str, Any]) -> dict[str, str]:
        etag = resource.get("etag") if isinstance(resource, dict) else None
        return {"ETag": etag} if etag else {}

    def _url(self, path_and_query: str) -> str:
        return f"{self.sandbox.arm_url}{path_and_query}"

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        """ARM paging: ``value`` plus ``nextLink`` while more remain (``$top`` honoured)."""
        size = self.sandbox.page_size
        if "$top" in request.query:
            try:
                size = max(1, min(size, int(request.query["$top"])))
            except ValueError:
                raise ArmError(400, "BadRequest", "$top must be an integer.") from None
        start = int(request.query.get("$skiptoken", "0") or 0)
        page = items[start : start + size]
        body: dict[str, Any] = {"value": page}
        if start + size < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(start + size)
            body["nextLink"] = self._url(f"{request.path}?{urllib.parse.urlencode(query)}")
        return json_response(200, body)


def _matches_filter(row: dict[str, Any], expression: str | None) -> bool:
    """The ``$filter`` forms the generic resource list supports: resourceType and tag equality."""
    if not expression:
        return True
    clauses = [c.strip() for c in expression.split(" and ")]
    tag_name: str | None = None
    for clause in clauses:
        field_name, _, value = clause.partition(" eq ")
        field_name, value = field_name.strip(), value.strip().strip("'")
        if field_name == "resourceType":
            if row.get("type", "").lower() != value.lower():
                return False
        elif field_name == "tagName":
            tag_name = value
            if value not in (row.get("tags") or {}):
                return False
        elif field_name == "tagValue":
            if tag_name is None or (row.get("tags") or {}).get(tag_name) != value:
                return False
        elif field_name == "name":
            if row.get("name", "").lower() != value.lower():
                return False
        else:
            raise ArmError(
                400, "InvalidFilterInQueryString", f"The $filter '{expression}' is not supported."
            )
    return True


__all__ = ["ArmResponses", "arm_error_response", "json_response", "parse_path"]
