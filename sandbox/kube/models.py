"""The state of the sandbox's Kubernetes API server: every object, every change, every hook.

`KubeStore` is both the object store (what etcd holds) and the API machinery around it (admission,
defaulting, validation, managed fields, resourceVersion and generation bookkeeping, cascading
deletion). The wire format lives in `responses.py`; this module never sees HTTP.

Two kinds of writers use it:
- the API (`api_create`, `api_replace`, `api_patch`, `api_delete`), which goes through admission,
  validation and field management exactly once per request;
- controllers and behaviour code (`put`, `delete`), which write "as a controller": no admission,
  status kept as given, still stamped and still announced to watchers and subscribers.

All methods are thread-safe (one re-entrant lock): tests drive the server from a client thread while
the server's loop runs in another. Subscribers are called synchronously after each commit, in commit
order; a write made from inside a subscriber is announced after the current one has been delivered
to everyone.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import inspect
import ipaddress
import json
import logging
import random
import threading
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.kube import errors
from sandbox.kube.defaults import apply_builtin_defaults
from sandbox.kube.errors import ApiError, Cause
from sandbox.kube.managedfields import (
    entries_of,
    finalize,
    now,
    record_update,
    server_side_apply,
)
from sandbox.kube.patches import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from sandbox.kube.resources import ResourceRegistry, ResourceType, types_of_crd
from sandbox.kube.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
)
from sandbox.kube.validation import (
    apply_defaults,
    builtin_causes,
    custom_causes,
    name_causes,
    prune_unknown,
    schema_of,
)

logger = logging.getLogger(__name__)

NODE_NAME = "aks-nodepool1-00000000-vmss000000"
# The characters Kubernetes uses for generated name suffixes and hashes (no vowels, no 0/1/3).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
HISTORY_LIMIT = 20_000


@dataclass
class ExecResult:
    """What a command run with `kubectl exec` produced."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0  # 0 → Status Success on channel 3; else NonZeroExitCode with the code
    error: str | None = None  # the runtime could not start it (e.g. executable file not found)


@dataclass
class ProxyRequest:
    """A request that reached a Service through the API server's service proxy."""

    namespace: str
    service: str
    port: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ProxyResponse:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class WatchEvent:
    """One committed change, as the watch history keeps it."""

    resource_version: int
    type: str  # ADDED | MODIFIED | DELETED
    group: str
    plural: str
    obj: dict[str, Any]
    old: dict[str, Any] | None


ExecHandler = Callable[[dict, str, list[str]], "ExecResult | Awaitable[ExecResult | None] | None"]
AdmissionHandler = Callable[[str, dict, "dict | None"], "str | None"]
ProxyHandler = Callable[[ProxyRequest], "ProxyResponse | Awaitable[ProxyResponse | None] | None"]
Subscriber = Callable[[str, dict], None]


@dataclass
class WriteOptions:
    """How an API write was asked for (query parameters of the request)."""

    manager: str = ""
    dry_run: bool = False
    field_validation: str = "Warn"  # Ignore | Warn | Strict
    force: bool = False
    warnings: list[str] = field(default_factory=list)
    created: bool = False  # set by the store when a server-side apply created the object


def clone(value: Any) -> Any:
    return copy.deepcopy(value)


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(NAME_ALPHABET) for _ in range(length))


class KubeStore:
    """Objects of every served kind, with the API server's rules for reading and writing them."""

    def __init__(self, *, controllers: bool = True) -> None:
        self.registry = ResourceRegistry()
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._resource_version = 0
        self._history: deque[WatchEvent] = deque(maxlen=HISTORY_LIMIT)
        self._watchers: list[Callable[[WatchEvent], None]] = []
        self._subscribers: list[Subscriber] = []
        self._pending: deque[WatchEvent] = deque()
        self._dispatching = False
        self._exec_handlers: list[ExecHandler] = []
        self._admission_handlers: list[AdmissionHandler] = []
        self._proxy_handlers: list[ProxyHandler] = []
        self._logs: dict[tuple[str, str, str], list[str]] = {}
        self._cluster_ips: set[str] = set()
        self.changed = threading.Event()  # set after each commit; the persister clears it
        self.controllers: Any = None
        if controllers:
            from sandbox.kube.controllers import install_controllers

            self.controllers = install_controllers(self)

    # -- the contract's interface ---------------------------------------------------------------

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict | None:
        """One object as a GET would return it, or None (also when the kind is not served)."""
        with self._lock:
            resource_type = self.registry.by_api_version(api_version, kind)
            if resource_type is None:
                return None
            obj = self._bucket(resource_type).get(self._key(resource_type, namespace, name))
            return self._present(resource_type, obj, api_version) if obj else None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: dict[str, str] | None = None,
    ) -> list[dict]:
        """Objects of one kind (in one namespace, or all), optionally by equality on labels.

        Empty when the kind is not served (e.g. its CRD is not installed yet).
        """
        requirements = [Requirement(k, "=", (v,)) for k, v in (label_selector or {}).items()]
        with self._lock:
            resource_type = self.registry.by_api_version(api_version, kind)
            if resource_type is None:
                return []
            return [
                self._present(resource_type, obj, api_version)
                for obj in self._select(resource_type, namespace, requirements, [])
            ]

    def put(self, obj: dict) -> dict:
        """Create or replace an object as a controller: no admission, status kept as given.

        Raises KeyError when the kind is not served (a custom resource before its CRD).
        """
        with self._lock:
            resource_type = self._type_of(obj["apiVersion"], obj["kind"])
            new = clone(obj)
            meta = new.setdefault("metadata", {})
            if not resource_type.namespaced:
                meta.pop("namespace", None)
            key = self._key(resource_type, meta.get("namespace"), meta["name"])
            old = self._bucket(resource_type).get(key)
            self._default(resource_type, new)
            if old is None:
                self._stamp_new(resource_type, new)
                return clone(self._commit(resource_type, new, None))
            if "status" not in new and "status" in old:
                new["status"] = clone(old["status"])
            if "managedFields" not in meta and "managedFields" in old["metadata"]:
                meta["managedFields"] = clone(old["metadata"]["managedFields"])
            self._carry_server_fields(resource_type, old, new)
            return clone(self._commit_update(resource_type, old, new))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete an object (and what it owns) as a controller; nothing happens when it is gone."""
        with self._lock:
            resource_type = self.registry.by_api_version(api_version, kind)
            if resource_type is None:
                return
            obj = self._bucket(resource_type).get(self._key(resource_type, namespace, name))
            if obj is not None:
                self._delete_cascading(resource_type, obj, "Background")

    def subscribe(self, callback: Subscriber) -> None:
        """Call `callback(type, object)` after every committed change, from the API or not."""
        with self._lock:
            self._subscribers.append(callback)

    def register_exec(self, handler: ExecHandler) -> None:
        """Answer `exec` requests: handler(pod, container, argv) → ExecResult, None if not its."""
        with self._lock:
            self._exec_handlers.append(handler)

    def register_admission(self, handler: AdmissionHandler) -> None:
        """Admit API writes: handler(operation, new, old) → refusal message or None.

        The handler may change `new` in place (a mutating webhook). A refusal is answered 400
        with the message as given; raise an `ApiError` for another code.
        """
        with self._lock:
            self._admission_handlers.append(handler)

    def register_service_proxy(self, handler: ProxyHandler) -> None:
        """Answer requests to `/api/v1/namespaces/{ns}/services/{name}:{port}/proxy/...`."""
        with self._lock:
            self._proxy_handlers.append(handler)

    def append_log(self, namespace: str, pod: str, container: str, line: str) -> None:
        """Add one line to a container's log, as `kubectl logs` will show it."""
        with self._lock:
            self._logs.setdefault((namespace, pod, container), []).append(line.rstrip("\n"))

    # -- reads for the API ----------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._resource_version

    @property
    def lock(self) -> threading.RLock:
        """The store's lock, for callers that must read and subscribe atomically (watches)."""
        return self._lock

    def api_get(
        self, resource_type: ResourceType, version: str, namespace: str | None, name: str
    ) -> dict[str, Any]:
        with self._lock:
            obj = self._bucket(resource_type).get(self._key(resource_type, namespace, name))
            if obj is None:
                raise errors.not_found(resource_type.group, resource_type.plural, name)
            return self._present(resource_type, obj, resource_type.api_version(version))

    def api_list(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        """A `<Kind>List`, in namespace/name order, paged when `limit` is given."""
        with self._lock:
            api_version = resource_type.api_version(version)
            items = self._select(resource_type, namespace, labels, fields)
            list_rv = self._resource_version
            start = 0
            if continue_token:
                try:
                    token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                    start, list_rv = int(token["start"]), int(token["rv"])
                except (ValueError, KeyError, TypeError) as error:
                    raise errors.bad_request("continue key is not valid") from error
            metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
            if limit and limit > 0 and start + limit < len(items):
                following = {"start": start + limit, "rv": list_rv}
                metadata["continue"] = base64.urlsafe_b64encode(
                    json.dumps(following).encode()
                ).decode()
                metadata["remainingItemCount"] = len(items) - start - limit
                items = items[start : start + limit]
            else:
                items = items[start:]
            presented = [self._present(resource_type, obj, api_version) for obj in items]
            if not resource_type.is_custom:
                # Items of built-in lists carry no apiVersion/kind, as a real server sends them.
                for item in presented:
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
            return {
                "kind": resource_type.list_kind,
                "apiVersion": api_version,
                "metadata": metadata,
                "items": presented,
            }

    def namespace_exists(self, namespace: str) -> bool:
        with self._lock:
            return ("", namespace) in self._bucket(self.registry.by_kind("", "Namespace"))

    # -- writes for the API ---------------------------------------------------------------------

    def api_create(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        body: Any,
        options: WriteOptions,
    ) -> dict[str, Any]:
        """POST: admission, defaulting, validation, then an ADDED event (unless dry-run)."""
        with self._lock:
            obj = self._checked_body(resource_type, version, namespace, body)
            meta = obj["metadata"]
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(resource_type, namespace, meta["generateName"])
            self._require_name(resource_type, meta.get("name"))
            self._require_namespace(resource_type, namespace)
            if self._key(resource_type, namespace, meta["name"]) in self._bucket(resource_type):
                raise errors.already_exists(resource_type.group, resource_type.plural, meta["name"])
            if resource_type.has_status_subresource:
                obj.pop("status", None)
            entries = []
            record_update(
                entries,
                None,
                obj,
                manager=options.manager,
                api_version=obj["apiVersion"],
                associative=not resource_type.is_custom,
            )
            return self._create(resource_type, obj, entries, options)

    def api_replace(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """PUT: a full replacement, refused with 409 when its resourceVersion is stale."""
        with self._lock:
            old = self._existing(resource_type, namespace, name)
            obj = self._checked_body(resource_type, version, namespace, body)
            if obj["metadata"].get("name", name) != name:
                raise errors.bad_request(
                    f"the name of the object ({obj['metadata']['name']}) does not match the name "
                    f"on the URL ({name})"
                )
            obj["metadata"]["name"] = name
            self._check_precondition(resource_type, old, obj)
            return self._update(resource_type, old, obj, options, subresource=subresource)

    def api_patch(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        content_type: str,
        raw: bytes,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """PATCH in one of the four formats; server-side apply creates a missing object."""
        with self._lock:
            key = self._key(resource_type, namespace, name)
            old = self._bucket(resource_type).get(key)
            if content_type == APPLY_PATCH:
                return self._apply(
                    resource_type,
                    version,
                    namespace,
                    name,
                    old,
                    raw,
                    options,
                    subresource=subresource,
                )
            if old is None:
                raise errors.not_found(resource_type.group, resource_type.plural, name)
            patch = _parse_json(raw)
            current = self._present(resource_type, old, resource_type.api_version(version))
            if content_type == JSON_PATCH:
                new = json_patch(current, patch)
            elif content_type == MERGE_PATCH:
                new = merge_patch(current, patch)
            elif content_type == STRATEGIC_MERGE_PATCH:
                if resource_type.is_custom:
                    raise errors.unsupported_media_type(
                        content_type, [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
                    )
                new = strategic_merge_patch(current, patch)
            else:
                raise errors.unsupported_media_type(
                    content_type, [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]
                )
            if not isinstance(new, dict):
                raise errors.bad_request("the patch did not produce an object")
            new.setdefault("metadata", {})
            if isinstance(patch, dict) and (patch.get("metadata") or {}).get("resourceVersion"):
                self._check_precondition(resource_type, old, new)
            return self._update(resource_type, old, new, options, subresource=subresource)

    def api_delete(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        dry_run: bool = False,
        preconditions: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """DELETE: the deleted object for pods and custom resources, else a Success Status."""
        with self._lock:
            obj = self._existing(resource_type, namespace, name)
            if resource_type.kind == "Namespace" and name in PROTECTED_NAMESPACES:
                raise errors.forbidden(
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    plural="namespaces",
                    name=name,
                )
            preconditions = preconditions or {}
            if preconditions.get("uid") and preconditions["uid"] != obj["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: "
                    f"{preconditions['uid']}, UID in object meta: "
                    f"{obj['metadata']['uid']}",
                    name=name,
                )
            if not dry_run:
                self._delete_cascading(resource_type, obj, propagation or "Background")
            if resource_type.kind == "Pod" or resource_type.is_custom:
                return self._present(resource_type, obj, obj["apiVersion"])
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {
                    "name": name,
                    **({"group": resource_type.group} if resource_type.group else {}),
                    "kind": resource_type.plural,
                    "uid": obj["metadata"]["uid"],
                },
            }

    def api_delete_collection(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        with self._lock:
            result = self.api_list(resource_type, version, namespace, labels, fields)
            if not dry_run:
                for obj in self._select(resource_type, namespace, labels, fields):
                    self._delete_cascading(resource_type, obj, "Background")
            return result

    # -- watch ----------------------------------------------------------------------------------

    def add_watcher(self, callback: Callable[[WatchEvent], None]) -> None:
        with self._lock:
            self._watchers.append(callback)

    def remove_watcher(self, callback: Callable[[WatchEvent], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._watchers.remove(callback)

    def history_since(self, resource_version: int) -> list[WatchEvent] | None:
        """Events after a resourceVersion, or None when the history no longer reaches back."""
        with self._lock:
            if resource_version >= self._resource_version:
                return []
            if self._history and self._history[0].resource_version > resource_version + 1:
                return None
            if not self._history and resource_version < self._resource_version:
                return None
            return [event for event in self._history if event.resource_version > resource_version]

    def matching(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
    ) -> list[dict]:
        """Current objects matching a watch's filters (the initial ADDED events of a watch)."""
        with self._lock:
            return clone(self._select(resource_type, namespace, labels, fields))

    # -- exec, proxy, logs ----------------------------------------------------------------------

    async def run_exec(self, pod: dict, container: str, argv: list[str]) -> ExecResult:
        """Ask the exec handlers (latest first, defaults last) to run a command in a container."""
        from sandbox.kube.controllers import default_exec

        with self._lock:
            handlers = [*reversed(self._exec_handlers), default_exec]
        for handler in handlers:
            result = handler(clone(pod), container, list(argv))
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        raise AssertionError("default_exec always answers")

    async def run_proxy(self, request: ProxyRequest) -> ProxyResponse | None:
        with self._lock:
            handlers = list(reversed(self._proxy_handlers))
        for handler in handlers:
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    def read_log(self, namespace: str, pod: str, container: str) -> list[str]:
        with self._lock:
            return list(self._logs.get((namespace, pod, container), []))

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write every object and the resourceVersion counter to a JSON file (atomically)."""
        with self._lock:
            state = {
                "resourceVersion": self._resource_version,
                "objects": [obj for bucket in self._objects.values() for obj in bucket.values()],
            }
            text = json.dumps(state, separators=(",", ":"))
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)

    def load(self, path: Path) -> None:
        """Replace the store's objects with those saved by `save` (CRDs first, so CRs resolve)."""
        state = json.loads(path.read_text())
        objects = state["objects"]
        crds = [o for o in objects if o.get("kind") == "CustomResourceDefinition"]
        with self._lock:
            self._objects.clear()
            self._cluster_ips.clear()
            for crd in crds:
                self.registry.add(types_of_crd(crd))
            for obj in objects:
                resource_type = self._type_of(obj["apiVersion"], obj["kind"])
                meta = obj["metadata"]
                self._bucket(resource_type)[
                    self._key(resource_type, meta.get("namespace"), meta["name"])
                ] = obj
                if obj.get("kind") == "Service" and obj["spec"].get("clusterIP"):
                    self._cluster_ips.add(obj["spec"]["clusterIP"])
            self._resource_version = max(self._resource_version, int(state["resourceVersion"]))
            self._history.clear()
            if self.controllers is not None:
                self.controllers.bootstrap()

    # -- internals: lookups ---------------------------------------------------------------------

    def _type_of(self, api_version: str, kind: str) -> ResourceType:
        resource_type = self.registry.by_api_version(api_version, kind)
        if resource_type is None:
            raise KeyError(f"no kind {kind!r} is served in {api_version!r}")
        return resource_type

    def _bucket(self, resource_type: ResourceType | None) -> dict[tuple[str, str], dict]:
        assert resource_type is not None
        return self._objects.setdefault((resource_type.group, resource_type.plural), {})

    @staticmethod
    def _key(resource_type: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return ((namespace or "") if resource_type.namespaced else "", name)

    def _existing(
        self, resource_type: ResourceType, namespace: str | None, name: str
    ) -> dict[str, Any]:
        obj = self._bucket(resource_type).get(self._key(resource_type, namespace, name))
        if obj is None:
            raise errors.not_found(resource_type.group, resource_type.plural, name)
        return obj

    def _select(
        self,
        resource_type: ResourceType,
        namespace: str | None,
        labels: list[Requirement],
        fields: list[FieldRequirement],
    ) -> list[dict]:
        found = [
            obj
            for (obj_namespace, _), obj in sorted(self._bucket(resource_type).items())
            if (not namespace or not resource_type.namespaced or obj_namespace == namespace)
            and labels_match(labels, obj["metadata"].get("labels"))
            and fields_match(fields, obj)
        ]
        return found

    def _present(self, resource_type: ResourceType, obj: dict, api_version: str) -> dict:
        """A copy of a stored object as read in one of its type's versions."""
        presented = clone(obj)
        presented["apiVersion"] = api_version
        presented["kind"] = resource_type.kind
        return presented

    def objects_owned_by(self, uid: str) -> Iterator[tuple[ResourceType, dict]]:
        """Every object whose ownerReferences name this uid."""
        with self._lock:
            for (group, plural), bucket in list(self._objects.items()):
                resource_type = self.registry.get(group, plural)
                if resource_type is None:
                    continue
                for obj in list(bucket.values()):
                    owners = obj["metadata"].get("ownerReferences") or []
                    if any(owner.get("uid") == uid for owner in owners):
                        yield resource_type, obj

    # -- internals: writing ---------------------------------------------------------------------

    def _checked_body(
        self, resource_type: ResourceType, version: str, namespace: str | None, body: Any
    ) -> dict[str, Any]:
        """The request body as an object of the URL's type, version and namespace; 400 if not."""
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = clone(body)
        expected = resource_type.api_version(version)
        if obj.get("apiVersion") and obj["apiVersion"] != expected:
            raise errors.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({expected})"
            )
        if obj.get("kind") and obj["kind"] != resource_type.kind:
            raise errors.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind "
                f"({resource_type.kind})"
            )
        obj["apiVersion"], obj["kind"] = expected, resource_type.kind
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if resource_type.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _require_name(self, resource_type: ResourceType, name: str | None) -> None:
        causes = name_causes(resource_type, name)
        if causes:
            raise errors.invalid(resource_type.kind, resource_type.group, name or "", causes)

    def _require_namespace(self, resource_type: ResourceType, namespace: str | None) -> None:
        if resource_type.namespaced and not self.namespace_exists(namespace or ""):
            raise errors.not_found("", "namespaces", namespace or "")

    def _generate_name(
        self, resource_type: ResourceType, namespace: str | None, prefix: str
    ) -> str:
        for _ in range(100):
            name = f"{prefix}{random_suffix()}"
            if self._key(resource_type, namespace, name) not in self._bucket(resource_type):
                return name
        raise errors.ApiError(500, "AlreadyExists", "could not generate a unique name")

    def _check_precondition(self, resource_type: ResourceType, old: dict, new: dict) -> None:
        wanted = new["metadata"].get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise errors.stale(resource_type.group, resource_type.plural, old["metadata"]["name"])

    def _default(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        if resource_type.is_custom:
            schema = schema_of(resource_type, obj["apiVersion"].rpartition("/")[2])
            if schema is not None:
                apply_defaults(schema, obj)
        else:
            apply_builtin_defaults(resource_type, obj)
        if resource_type.kind == "Service" and resource_type.group == "":
            self._allocate_cluster_ip(obj)

    def _prune(
        self, resource_type: ResourceType, obj: dict[str, Any], options: WriteOptions
    ) -> None:
        """Structural pruning of a custom resource: unknown fields warn, or fail when Strict."""
        if not resource_type.is_custom:
            return
        schema = schema_of(resource_type, obj["apiVersion"].rpartition("/")[2])
        if schema is None:
            return
        unknown = prune_unknown(schema, obj)
        if unknown and options.field_validation == "Strict":
            raise errors.bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown)
            )
        if options.field_validation != "Ignore":
            options.warnings += [f'unknown field "{path}"' for path in unknown]

    def _validate(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        causes = builtin_causes(resource_type, obj)
        if resource_type.is_custom:
            schema = schema_of(resource_type, obj["apiVersion"].rpartition("/")[2])
            if schema is not None:
                causes += custom_causes(schema, obj)
        if causes:
            raise errors.invalid(
                resource_type.kind, resource_type.group, obj["metadata"].get("name", ""), causes
            )

    def _admit(self, operation: str, new: dict, old: dict | None) -> None:
        for handler in list(self._admission_handlers):
            refusal = handler(operation, new, clone(old) if old else None)
            if refusal:
                raise ApiError(400, "BadRequest", refusal)

    def _stamp_new(self, resource_type: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if resource_type.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)

    def _carry_server_fields(self, resource_type: ResourceType, old: dict, new: dict) -> None:
        """Keep what clients cannot change (uid, creation time) and bump generation on spec."""
        meta, old_meta = new["metadata"], old["metadata"]
        for key in ("uid", "creationTimestamp", "name"):
            meta[key] = old_meta[key]
        if resource_type.namespaced:
            meta["namespace"] = old_meta.get("namespace")
        if resource_type.has_generation:
            generation = old_meta.get("generation", 1)
            if _content(old) != _content(new):
                generation += 1
            meta["generation"] = generation
        else:
            meta.pop("generation", None)

    def _create(
        self, resource_type: ResourceType, obj: dict[str, Any], entries: list, options: WriteOptions
    ) -> dict[str, Any]:
        self._default(resource_type, obj)
        self._prune(resource_type, obj, options)
        self._stamp_new(resource_type, obj)
        obj["metadata"]["managedFields"] = finalize(entries, obj)
        if not obj["metadata"]["managedFields"]:
            del obj["metadata"]["managedFields"]
        self._admit("CREATE", obj, None)
        self._validate(resource_type, obj)
        if options.dry_run:
            return clone(obj)
        return clone(self._commit(resource_type, obj, None))

    def _update(
        self,
        resource_type: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        options: WriteOptions,
        *,
        subresource: str = "",
        entries: list | None = None,
    ) -> dict[str, Any]:
        """The shared tail of PUT and PATCH: status rules, defaults, fields, admission, commit."""
        if subresource == "status":
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif subresource:
            raise errors.method_not_allowed()
        else:
            if resource_type.has_status_subresource:
                if "status" in old:
                    new["status"] = clone(old["status"])
                else:
                    new.pop("status", None)
            self._default(resource_type, new)
            self._prune(resource_type, new, options)
        self._carry_server_fields(resource_type, old, new)

        if entries is None:
            entries = entries_of(old)
            record_update(
                entries,
                old,
                new,
                manager=options.manager,
                api_version=new["apiVersion"],
                associative=not resource_type.is_custom,
                subresource=subresource,
            )
        new["metadata"]["managedFields"] = finalize(entries, new)
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if not subresource:
            self._admit("UPDATE", new, old)
        self._validate(resource_type, new)
        if options.dry_run or _same(old, new):
            return self._present(resource_type, new if options.dry_run else old, new["apiVersion"])
        return clone(self._commit(resource_type, new, old))

    def _apply(
        self,
        resource_type: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        old: dict | None,
        raw: bytes,
        options: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Server-side apply: merge the configuration as its field manager, or create."""
        if not options.manager:
            raise errors.invalid(
                resource_type.kind,
                resource_type.group,
                name,
                [
                    Cause(
                        "FieldValueRequired",
                        "Required value: is required for apply patch",
                        "fieldManager",
                    )
                ],
            )
        try:
            config = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise errors.bad_request(f"error decoding YAML: {error}") from error
        if not isinstance(config, dict):
            raise errors.bad_request("apply configuration must be an object")
        for required in ("apiVersion", "kind"):
            if not config.get(required):
                raise errors.bad_request(f"{required} must be set in an apply configuration")
        config = self._checked_body(resource_type, version, namespace, config)
        if config["metadata"].get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({config['metadata']['name']}) does not match the name "
                f"on the URL ({name})"
            )
        config["metadata"]["name"] = name
        config["metadata"].pop("managedFields", None)
        include_status = subresource == "status" or not resource_type.has_status_subresource
        associative = not resource_type.is_custom

        if old is None:
            if subresource:
                raise errors.not_found(resource_type.group, resource_type.plural, name)
            self._require_name(resource_type, name)
            self._require_namespace(resource_type, namespace)
            entries: list = []
            obj = server_side_apply(
                None,
                config,
                entries,
                manager=options.manager,
                api_version=config["apiVersion"],
                force=options.force,
                associative=associative,
                include_status=include_status,
            )
            if resource_type.has_status_subresource:
                obj.pop("status", None)
            options.created = True
            return self._create(resource_type, obj, entries, options)

        current = self._present(resource_type, old, config["apiVersion"])
        entries = entries_of(old)
        merged = server_side_apply(
            current,
            config,
            entries,
            manager=options.manager,
            api_version=config["apiVersion"],
            force=options.force,
            associative=associative,
            include_status=include_status,
            subresource=subresource,
        )
        return self._update(
            resource_type, old, merged, options, subresource=subresource, entries=entries
        )

    def _allocate_cluster_ip(self, service: dict[str, Any]) -> None:
        spec = service.setdefault("spec", {})
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            return
        if spec.get("clusterIP"):
            self._cluster_ips.add(spec["clusterIP"])
        else:
            network = ipaddress.ip_network("10.0.0.0/16")
            for offset in range(10, network.num_addresses - 1):
                candidate = str(network.network_address + offset)
                if candidate not in self._cluster_ips:
                    spec["clusterIP"] = candidate
                    self._cluster_ips.add(candidate)
                    break
        spec["clusterIPs"] = [spec["clusterIP"]]

    def _commit_update(self, resource_type: ResourceType, old: dict, new: dict) -> dict:
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if _same(old, new):
            return old
        return self._commit(resource_type, new, old)

    def _commit(
        self,
        resource_type: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        event_type: str | None = None,
    ) -> dict[str, Any]:
        """Store (or remove) an object under a new resourceVersion and announce the change."""
        self._resource_version += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._resource_version)
        key = self._key(resource_type, meta.get("namespace"), meta["name"])
        event_type = event_type or ("ADDED" if old is None else "MODIFIED")
        if event_type == "DELETED":
            self._bucket(resource_type).pop(key, None)
            if resource_type.kind == "Service" and resource_type.group == "":
                self._cluster_ips.discard((obj.get("spec") or {}).get("clusterIP", ""))
        else:
            self._bucket(resource_type)[key] = obj
        event = WatchEvent(
            self._resource_version,
            event_type,
            resource_type.group,
            resource_type.plural,
            clone(obj),
            clone(old) if old else None,
        )
        self._history.append(event)
        self.changed.set()
        for watcher in list(self._watchers):
            try:
                watcher(event)
            except Exception:  # a broken watch stream must not fail the write
                logger.exception("watcher failed on %s", key)
        self._dispatch(event)
        return obj

    def _dispatch(self, event: WatchEvent) -> None:
        self._pending.append(event)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                current = self._pending.popleft()
                for subscriber in list(self._subscribers):
                    try:
                        subscriber(current.type, clone(current.obj))
                    except Exception:
                        # A failing controller is a bug to see in the log, not a failed write.
                        logger.exception(
                            "subscriber %r failed on %s %s/%s",
                            subscriber,
                            current.type,
                            current.plural,
                            current.obj["metadata"].get("name"),
                        )
        finally:
            self._dispatching = False

    def _delete_cascading(self, resource_type: ResourceType, obj: dict, propagation: str) -> None:
        """Delete an object; unless orphaning, delete what it owns (and a namespace's contents)."""
        meta = obj["metadata"]
        key = self._key(resource_type, meta.get("namespace"), meta["name"])
        if self._bucket(resource_type).get(key) is not obj:
            return  # already gone through another owner
        if resource_type.kind == "CustomResourceDefinition":
            # The CRD's objects go first, then the resource leaves discovery.
            spec = obj["spec"]
            custom = self.registry.get(spec["group"], spec["names"]["plural"])
            if custom is not None:
                for child in list(self._bucket(custom).values()):
                    self._delete_cascading(custom, child, "Background")
                self.registry.remove(custom.group, custom.plural)
        if resource_type.kind == "Namespace" and resource_type.group == "":
            for other in self.registry.all():
                if other.namespaced:
                    for child in list(self._bucket(other).values()):
                        if child["metadata"].get("namespace") == meta["name"]:
                            self._delete_cascading(other, child, "Background")
        deleted = clone(obj)
        self._commit(resource_type, deleted, obj, "DELETED")
        if resource_type.kind == "Pod":
            for log_key in [
                k for k in self._logs if k[:2] == (meta.get("namespace"), meta["name"])
            ]:
                del self._logs[log_key]
        if propagation != "Orphan":
            for child_type, child in list(self.objects_owned_by(meta["uid"])):
                self._delete_cascading(child_type, child, propagation)


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """What bumps metadata.generation: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a write changes nothing (then no new resourceVersion, as on a real server)."""

    def comparable(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion",)}
        if "managedFields" in meta:
            meta["managedFields"] = [
                {k: v for k, v in entry.items() if k != "time"} for entry in meta["managedFields"]
            ]
        return {
            **{k: v for k, v in obj.items() if k not in ("metadata", "apiVersion")},
            "metadata": meta,
        }

    return comparable(old) == comparable(new)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError as error:
        raise errors.bad_request(f"error decoding patch: {error}") from error
