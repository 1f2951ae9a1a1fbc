"""The wire format of the sandbox's Kubernetes API: URLs, verbs, bodies, status codes, streams.

`KubeApi` turns HTTP requests into `KubeStore` calls and the results (or `ApiError`s) into the JSON
a real kube-apiserver sends: objects, `<Kind>List`s, `Table`s for kubectl, `v1 Status` errors, watch
streams of `{"type", "object"}` lines, pod logs and the service proxy. Exec lives in `exec.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from sandbox.kube import discovery, errors, protobuf
from sandbox.kube.errors import ApiError
from sandbox.kube.exec import serve_exec
from sandbox.kube.models import KubeStore, ProxyRequest, WatchEvent, WriteOptions
from sandbox.kube.patches import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from sandbox.kube.resources import ResourceType
from sandbox.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from sandbox.kube.tables import jsonpath_value, to_table

logger = logging.getLogger(__name__)

JSON = "application/json"
DEFAULT_WATCH_TIMEOUT = 1800.0
MAX_MANAGER_LENGTH = 128


@dataclass
class Target:
    """What an `/api` or `/apis` URL names."""

    group: str
    version: str | None
    namespace: str | None = None
    plural: str | None = None
    name: str | None = None
    subresource: str | None = None
    rest: str = ""  # what follows the subresource (the service proxy's path)
    legacy_watch: bool = False

    @property
    def is_discovery(self) -> bool:
        return self.plural is None


def parse_target(path: str) -> Target | None:
    """Split an API path into group, version, namespace, resource, name and subresource."""
    parts = path.split("/")[1:]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        group, version, rest = "", (parts[1] if len(parts) > 1 and parts[1] else None), parts[2:]
    else:
        if len(parts) < 2 or not parts[1]:
            return Target(group="", version=None, plural=None, name="apis")
        group = parts[1]
        version = parts[2] if len(parts) > 2 and parts[2] else None
        rest = parts[3:]
    target = Target(group=group, version=version)
    if parts[0] == "apis" and version is None:
        target.name = "group"
        return target
    if rest[:1] == ["watch"]:
        target.legacy_watch, rest = True, rest[1:]
    if rest and rest[-1] == "" and len(rest) <= 4:
        rest = rest[:-1]
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
    ):
        target.namespace, rest = rest[1], rest[2:]
    if rest:
        target.plural = rest[0]
    if len(rest) > 1:
        target.name = rest[1]
    if len(rest) > 2:
        target.subresource = rest[2]
        target.rest = "/" + "/".join(rest[3:]) if len(rest) > 3 else ""
    return target


def verb_of(request: web.Request) -> str:
    """The Kubernetes verb of a request, for the request log."""
    target = parse_target(request.path)
    if target is None or target.is_discovery:
        return "get"
    if target.subresource in ("exec", "attach", "portforward"):
        return "exec"
    if target.subresource == "proxy":
        return "proxy"
    watch = target.legacy_watch or request.query.get("watch") in ("1", "true", "True")
    method = request.method
    if method == "GET":
        if target.name is None:
            return "watch" if watch else "list"
        return "get"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def json_response(
    body: Any, status: int = 200, *, headers: dict[str, str] | None = None, content_type: str = JSON
) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        headers={"Content-Type": content_type, **(headers or {})},
    )


def error_response(error: ApiError) -> web.Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return json_response(error.status(), error.code, headers=headers)


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


class KubeApi:
    """Request handlers for discovery and resources, bound to one store."""

    def __init__(self, store: KubeStore, *, server_address: str = "10.0.0.1:443") -> None:
        self.store = store
        self.server_address = server_address
        self._watch_queues: set[asyncio.Queue[WatchEvent | None]] = set()

    # -- entry points ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Every request under /api and /apis."""
        try:
            target = parse_target(request.path)
            if target is None:
                raise errors.no_route()
            if target.is_discovery:
                return self._discovery(request, target)
            return await self._resource(request, target)
        except ApiError as error:
            return error_response(error)
        except Exception as error:  # a sandbox bug still answers as an API server would
            logger.exception("%s %s failed", request.method, request.path)
            return error_response(errors.internal(f"sandbox error: {error}"))

    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.VERSION_INFO)

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def openapi_v2(self, request: web.Request) -> web.Response:
        """An empty OpenAPI v2 document (kubectl asks for it in protobuf).

        kubectl validates kinds the server does not know against it before it reports them
        ("no matches for kind"); with no definitions it skips that validation, as it does for
        any kind missing from a real server's document.
        """
        return web.Response(
            body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )

    async def openapi_v3(self, request: web.Request) -> web.Response:
        """The OpenAPI v3 index, or one group version's (PATCH-only) document."""
        tail = request.match_info.get("tail", "")
        registry = self.store.registry
        if not tail:
            return json_response(discovery.openapi_v3_index(registry))
        parts = tail.strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            document = discovery.openapi_v3_document(registry, "", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            document = discovery.openapi_v3_document(registry, parts[1], parts[2])
        else:
            document = None
        if document is None:
            return error_response(errors.no_route())
        return json_response(document)

    def close_watches(self) -> None:
        """End every open watch stream (the server is stopping)."""
        for queue in list(self._watch_queues):
            queue.put_nowait(None)

    # -- discovery ------------------------------------------------------------------------------

    def _discovery(self, request: web.Request, target: Target) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed()
        registry = self.store.registry
        accept = request.headers.get("Accept", "")
        if target.name == "apis" or (
            target.group == "" and target.version is None and request.path.startswith("/apis")
        ):
            if discovery.wants_aggregated(accept):
                return json_response(
                    discovery.aggregated(registry, core=False), content_type=discovery.AGGREGATED_V2
                )
            return json_response(discovery.api_group_list(registry))
        if target.group == "" and target.version is None:
            if discovery.wants_aggregated(accept):
                return json_response(
                    discovery.aggregated(registry, core=True), content_type=discovery.AGGREGATED_V2
                )
            return json_response(discovery.api_versions(self.server_address))
        if target.name == "group":
            versions = registry.groups().get(target.group)
            if not versions:
                raise errors.no_route()
            entries = [{"groupVersion": f"{target.group}/{v}", "version": v} for v in versions]
            return json_response(
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": target.group,
                    "versions": entries,
                    "preferredVersion": entries[0],
                }
            )
        assert target.version is not None
        resource_list = discovery.api_resource_list(registry, target.group, target.version)
        if resource_list is None:
            raise errors.no_route()
        return json_response(resource_list)

    # -- resources ------------------------------------------------------------------------------

    async def _resource(self, request: web.Request, target: Target) -> web.StreamResponse:
        assert target.version is not None and target.plural is not None
        resource_type = self.store.registry.by_plural(target.group, target.version, target.plural)
        if resource_type is None:
            raise errors.no_route()
        if target.namespace is not None and not resource_type.namespaced:
            raise errors.no_route()
        namespace = target.namespace if resource_type.namespaced else None
        version, method = target.version, request.method

        if target.subresource:
            return await self._subresource(request, target, resource_type, namespace)
        if target.name is None:
            if method == "GET":
                if target.legacy_watch or _flag(request.query.get("watch")):
                    return await self._watch(request, resource_type, version, namespace)
                return self._list(request, resource_type, version, namespace)
            if method == "POST":
                if resource_type.namespaced and namespace is None:
                    raise errors.method_not_allowed()
                options = self._options(request)
                body = await self._body(request)
                created = self.store.api_create(resource_type, version, namespace, body, options)
                return self._written(created, 201, options)
            if method == "DELETE":
                return self._delete_collection(request, resource_type, version, namespace)
            raise errors.method_not_allowed()

        name = target.name
        if method == "GET":
            if target.legacy_watch or _flag(request.query.get("watch")):
                return await self._watch(request, resource_type, version, namespace, name=name)
            obj = self.store.api_get(resource_type, version, namespace, name)
            if _wants_table(request):
                table = to_table(
                    resource_type,
                    version,
                    [obj],
                    {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    request.query.get("includeObject", "Metadata"),
                )
                return json_response(table)
            return json_response(obj)
        if method == "PUT":
            options = self._options(request)
            body = await self._body(request)
            replaced = self.store.api_replace(
                resource_type, version, namespace, name, body, options
            )
            return self._written(replaced, 200, options)
        if method == "PATCH":
            options = self._options(request)
            content_type = request.content_type
            patched = self.store.api_patch(
                resource_type, version, namespace, name, content_type, await request.read(), options
            )
            return self._written(patched, 201 if options.created else 200, options)
        if method == "DELETE":
            options_body = await self._delete_options(request)
            result = self.store.api_delete(
                resource_type,
                namespace,
                name,
                propagation=request.query.get("propagationPolicy")
                or options_body.get("propagationPolicy"),
                dry_run=self._dry_run(request, options_body),
                preconditions=options_body.get("preconditions"),
            )
            return json_response(result)
        raise errors.method_not_allowed()

    def _list(
        self, request: web.Request, resource_type: ResourceType, version: str, namespace: str | None
    ) -> web.Response:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        limit = int(request.query["limit"]) if request.query.get("limit", "").isdigit() else None
        result = self.store.api_list(
            resource_type,
            version,
            namespace,
            labels,
            fields,
            limit=limit,
            continue_token=request.query.get("continue"),
        )
        if _wants_table(request):
            items = [
                {
                    **item,
                    "apiVersion": resource_type.api_version(version),
                    "kind": resource_type.kind,
                }
                for item in result["items"]
            ]
            return json_response(
                to_table(
                    resource_type,
                    version,
                    items,
                    result["metadata"],
                    request.query.get("includeObject", "Metadata"),
                )
            )
        return json_response(result)

    def _delete_collection(
        self, request: web.Request, resource_type: ResourceType, version: str, namespace: str | None
    ) -> web.Response:
        if "deletecollection" not in resource_type.verbs:
            raise errors.method_not_allowed()
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        result = self.store.api_delete_collection(
            resource_type,
            version,
            namespace,
            labels,
            fields,
            dry_run=request.query.get("dryRun") == "All",
        )
        return json_response(result)

    # -- subresources ---------------------------------------------------------------------------

    async def _subresource(
        self,
        request: web.Request,
        target: Target,
        resource_type: ResourceType,
        namespace: str | None,
    ) -> web.StreamResponse:
        assert target.name is not None and target.version is not None
        name, sub, version = target.name, target.subresource or "", target.version
        if resource_type.subresource(sub) is None:
            raise errors.no_route()
        kind = (resource_type.group, resource_type.kind)
        if kind == ("", "Pod") and sub == "exec":
            return await serve_exec(request, self.store, namespace or "", name)
        if kind == ("", "Pod") and sub == "log":
            return self._pod_log(request, namespace or "", name)
        if kind == ("", "Service") and sub == "proxy":
            return await self._service_proxy(request, namespace or "", name, target.rest)
        if sub == "status":
            return await self._status(request, resource_type, version, namespace, name)
        if sub == "scale":
            return await self._scale(request, resource_type, version, namespace, name)
        raise errors.method_not_allowed()

    async def _status(
        self,
        request: web.Request,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
    ) -> web.Response:
        if request.method == "GET":
            return json_response(self.store.api_get(resource_type, version, namespace, name))
        options = self._options(request)
        if request.method == "PUT":
            body = await self._body(request)
            result = self.store.api_replace(
                resource_type, version, namespace, name, body, options, subresource="status"
            )
        elif request.method == "PATCH":
            result = self.store.api_patch(
                resource_type,
                version,
                namespace,
                name,
                request.content_type,
                await request.read(),
                options,
                subresource="status",
            )
        else:
            raise errors.method_not_allowed()
        return self._written(result, 200, options)

    async def _scale(
        self,
        request: web.Request,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
    ) -> web.Response:
        """The autoscaling/v1 Scale view of a workload's replicas (GET, PUT, PATCH)."""
        obj = self.store.api_get(resource_type, version, namespace, name)
        spec_path, status_path, selector_path = _replica_paths(resource_type, version)
        scale = _scale_of(obj, spec_path, status_path, selector_path)
        if request.method == "GET":
            return json_response(scale)
        options = self._options(request)
        if request.method == "PUT":
            body = await self._body(request)
        elif request.method == "PATCH":
            patch = await self._body(request)
            if request.content_type == JSON_PATCH:
                body = json_patch(scale, patch)
            elif request.content_type == MERGE_PATCH:
                body = merge_patch(scale, patch)
            elif request.content_type == STRATEGIC_MERGE_PATCH:
                body = strategic_merge_patch(scale, patch)
            else:
                raise errors.unsupported_media_type(
                    request.content_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH]
                )
        else:
            raise errors.method_not_allowed()
        replicas = ((body or {}).get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid(
                "Scale",
                "autoscaling",
                name,
                [
                    errors.Cause(
                        "FieldValueInvalid",
                        f"Invalid value: {replicas}: must be greater than or equal to 0",
                        "spec.replicas",
                    )
                ],
            )
        patch_body: dict[str, Any] = {}
        node = patch_body
        parts = spec_path.strip(".").split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = replicas
        updated = self.store.api_patch(
            resource_type,
            version,
            namespace,
            name,
            MERGE_PATCH,
            json.dumps(patch_body).encode(),
            options,
        )
        return json_response(_scale_of(updated, spec_path, status_path, selector_path))

    def _pod_log(self, request: web.Request, namespace: str, name: str) -> web.Response:
        pods = self.store.registry.get("", "pods")
        assert pods is not None
        pod = self.store.api_get(pods, "v1", namespace, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query.get("container")
        if not container:
            if len(containers) != 1:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        lines = self.store.read_log(namespace, name, container)
        tail = request.query.get("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :] if int(tail) else []
        text = "".join(f"{line}\n" for line in lines)
        return web.Response(text=text, content_type="text/plain")

    async def _service_proxy(
        self, request: web.Request, namespace: str, name: str, rest: str
    ) -> web.Response:
        """Pass a request to whichever proxy handler answers for the Service and port."""
        parts = name.split(":")
        if parts[0] in ("http", "https") and len(parts) > 1:
            parts = parts[1:]
        service_name, port = parts[0], parts[1] if len(parts) > 1 else ""
        services = self.store.registry.get("", "services")
        assert services is not None
        service = self.store.api_get(services, "v1", namespace, service_name)
        ports = (service.get("spec") or {}).get("ports") or []
        if not port and len(ports) == 1:
            port = str(ports[0].get("name") or ports[0].get("port"))
        # The proxied path is everything after `/proxy`, exactly as the client sent it.
        raw_path = request.raw_path.split("?", 1)[0]
        marker = f"/services/{name}/proxy"
        path = raw_path[raw_path.index(marker) + len(marker) :] if marker in raw_path else rest
        proxied = ProxyRequest(
            namespace=namespace,
            service=service_name,
            port=port,
            method=request.method,
            path=path or "/",
            query=request.query_string,
            headers={
                key: value
                for key, value in request.headers.items()
                if key.lower() not in ("authorization", "host")
            },
            body=await request.read(),
        )
        answer = await self.store.run_proxy(proxied)
        if answer is None:
            raise ApiError(
                503, "ServiceUnavailable", f'no endpoints available for service "{name}"'
            )
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    # -- watch ----------------------------------------------------------------------------------

    async def _watch(
        self,
        request: web.Request,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        *,
        name: str | None = None,
    ) -> web.StreamResponse:
        """A stream of `{"type", "object"}` lines: the backlog first, then changes as they come."""
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"))
        if name is not None:
            fields = [*fields, *parse_field_selector(f"metadata.name={name}")]
        timeout = float(request.query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        start = request.query.get("resourceVersion") or ""
        api_version = resource_type.api_version(version)

        def visible(obj: dict[str, Any] | None) -> bool:
            if obj is None:
                return False
            obj_namespace = obj["metadata"].get("namespace")
            return (
                (not namespace or obj_namespace == namespace)
                and labels_match(labels, obj["metadata"].get("labels"))
                and fields_match(fields, obj)
            )

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

        def on_event(event: WatchEvent) -> None:
            if event.group == resource_type.group and event.plural == resource_type.plural:
                loop.call_soon_threadsafe(queue.put_nowait, event)

        backlog: list[tuple[str, dict[str, Any]]] = []
        expired: ApiError | None = None
        with self.store.lock:
            self.store.add_watcher(on_event)
            if start in ("", "0"):
                backlog = [
                    ("ADDED", obj)
                    for obj in self.store.matching(resource_type, namespace, labels, fields)
                ]
            else:
                try:
                    history = self.store.history_since(int(start))
                except ValueError:
                    history = None
                if history is None:
                    expired = errors.expired(
                        f"too old resource version: {start} ({self.store.resource_version})"
                    )
                else:
                    for event in history:
                        if (
                            event.group == resource_type.group
                            and event.plural == resource_type.plural
                        ):
                            backlog += self._translate(event, visible)

        as_table = _wants_table(request)
        include_object = request.query.get("includeObject", "Metadata")
        first = True

        async def send(event_type: str, obj: dict[str, Any]) -> None:
            # kubectl get -w asks for Table rows; the columns come with the first event only.
            nonlocal first
            obj = self._as(obj, api_version, resource_type)
            if as_table and event_type != "ERROR":
                obj = to_table(
                    resource_type,
                    version,
                    [obj],
                    {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    include_object,
                )
                if not first:
                    obj["columnDefinitions"] = []
                first = False
            await self._send(response, event_type, obj)

        response = web.StreamResponse(headers={"Content-Type": JSON})
        self._watch_queues.add(queue)
        try:
            await response.prepare(request)
            if expired is not None:
                await self._send(response, "ERROR", expired.status())
                return response
            for event_type, obj in backlog:
                await send(event_type, obj)
            deadline = loop.time() + timeout
            while not _disconnected(request):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    # Wake up now and then to notice a client that went away.
                    event = await asyncio.wait_for(queue.get(), min(remaining, 1.0))
                except TimeoutError:
                    continue
                if event is None:
                    break
                for event_type, obj in self._translate(event, visible):
                    await send(event_type, obj)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watch_queues.discard(queue)
            self.store.remove_watcher(on_event)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    @staticmethod
    def _translate(event: WatchEvent, visible: Any) -> list[tuple[str, dict[str, Any]]]:
        """How one change looks through a watch's filters (entering or leaving its view)."""
        now_visible = visible(event.obj)
        if event.type == "MODIFIED":
            was_visible = visible(event.old)
            if now_visible and was_visible:
                return [("MODIFIED", event.obj)]
            if now_visible:
                return [("ADDED", event.obj)]
            if was_visible:
                return [("DELETED", event.obj)]
            return []
        return [(event.type, event.obj)] if now_visible else []

    @staticmethod
    def _as(obj: dict[str, Any], api_version: str, resource_type: ResourceType) -> dict:
        return {**obj, "apiVersion": api_version, "kind": resource_type.kind}

    @staticmethod
    async def _send(response: web.StreamResponse, event_type: str, obj: dict[str, Any]) -> None:
        line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
        await response.write(line.encode())

    # -- request details ------------------------------------------------------------------------

    def _options(self, request: web.Request) -> WriteOptions:
        manager = request.query.get("fieldManager") or ""
        if not manager and request.content_type != "application/apply-patch+yaml":
            agent = request.headers.get("User-Agent", "unknown")
            manager = agent.split("/", 1)[0][:MAX_MANAGER_LENGTH]
        validation = request.query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise errors.bad_request(
                f"fieldValidation parameter unsupported: {validation}, only Ignore, Warn and "
                "Strict are supported"
            )
        return WriteOptions(
            manager=manager,
            dry_run=request.query.get("dryRun") == "All",
            field_validation=validation,
            force=_flag(request.query.get("force")),
        )

    @staticmethod
    def _dry_run(request: web.Request, options_body: dict[str, Any]) -> bool:
        return request.query.get("dryRun") == "All" or "All" in (options_body.get("dryRun") or [])

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        content_type = request.content_type
        try:
            if content_type in ("application/yaml", "application/x-yaml"):
                return yaml.safe_load(raw)
            if content_type == protobuf.CONTENT_TYPE:
                return protobuf.decode(raw)
            return json.loads(raw or b"null")
        except protobuf.UnsupportedKind as error:
            raise errors.unsupported_media_type(
                content_type,
                [
                    JSON,
                    "application/yaml",
                    f"{protobuf.CONTENT_TYPE} (for "
                    "Namespace, ConfigMap, Secret and ServiceAccount only)",
                ],
            ) from error
        except (ValueError, yaml.YAMLError) as error:
            raise errors.bad_request(f"error decoding the request body: {error}") from error

    @staticmethod
    async def _delete_options(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise errors.bad_request(f"error decoding DeleteOptions: {error}") from error
        return body if isinstance(body, dict) else {}

    @staticmethod
    def _written(obj: dict[str, Any], status: int, options: WriteOptions) -> web.Response:
        headers = {}
        if options.warnings:
            # One Warning header per message, as the API server sends them.
            headers["Warning"] = ", ".join(
                f'299 - "{warning.replace(chr(34), chr(39))}"' for warning in options.warnings
            )
        return json_response(obj, status, headers=headers)


def _disconnected(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _replica_paths(resource_type: ResourceType, version: str) -> tuple[str, str, str]:
    if resource_type.is_custom:
        scale = ((resource_type.crd_version(version) or {}).get("subresources") or {}).get(
            "scale"
        ) or {}
        return (
            scale.get("specReplicasPath", ".spec.replicas"),
            scale.get("statusReplicasPath", ".status.replicas"),
            scale.get("labelSelectorPath", ""),
        )
    return ".spec.replicas", ".status.replicas", ""


def _scale_of(
    obj: dict[str, Any], spec_path: str, status_path: str, selector_path: str
) -> dict[str, Any]:
    def at(path: str) -> Any:
        return jsonpath_value(obj, path)

    selector = at(selector_path) if selector_path else None
    if selector is None:
        match_labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in match_labels.items())
    meta = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": at(spec_path) or 0},
        "status": {"replicas": at(status_path) or 0, "selector": selector},
    }
