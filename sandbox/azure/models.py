"""The emulated Azure's state: resources, long-running operations, DNS views and persistence.

This module knows nothing about HTTP. ``responses.py`` turns requests into calls on
:class:`AzureState` and its results back into ARM's wire format; ``resource_types.py`` holds what
each resource type accepts, refuses and does to others when it is written.

Every public method is safe to call from any thread: the ARM server runs on its own event loop
while tests and the behaviour code may read the state from elsewhere.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox.azure import dnsview
from sandbox.azure.ids import ArmPath, normalize, parse_path
from sandbox.azure.resource_types import KINDS, ResourceKind, kind_for

logger = logging.getLogger(__name__)

STATE_FILE = "azure-state.json"
# Finished operations kept for late pollers.
_KEPT_OPERATIONS = 2000
_STATE_VERSION = 1


class ArmError(Exception):
    """A refusal in ARM's words: the HTTP status, the error code and the message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"({code}) {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


@dataclass
class Resolution:
    """How one virtual network sees one DNS name."""

    name: str
    cname_chain: list[str]
    addresses: list[str]
    private: bool
    nxdomain: bool
    ttl: int = 60


@dataclass
class Operation:
    """A long-running ARM operation: accepted now, finished once ``due`` has passed."""

    id: str
    action: str  # "put" or "delete"
    resource_id: str
    style: str  # "network", "privatedns" or "insights": decides the status URLs and bodies
    subscription: str
    resource_group: str | None
    location: str
    start_time: str
    due: float
    status: str = "InProgress"
    end_time: str | None = None
    error: dict[str, Any] | None = None


@dataclass
class WriteResult:
    """What a PUT, PATCH or DELETE did, for the wire layer to render."""

    status: int
    body: dict[str, Any] | None
    operation: Operation | None = None
    resource_id: str | None = None


@dataclass
class _Meta:
    """Internal bookkeeping that ARM does not show on the wire."""

    type_key: str
    parent: str
    extra: dict[str, Any] = field(default_factory=dict)


def _bare_etag(value: str | None) -> str:
    """An etag without the weak marker and quotes: clients quote them in If-Match, ARM may not."""
    text = (value or "").strip()
    text = text.removeprefix("W/")
    return text.strip('"')


def utc_now() -> str:
    """ARM's timestamp format (``systemData``, operation start and end times)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AzureState:
    """All emulated Azure resources of a sandbox, for every subscription it holds.

    Resources are kept as the JSON a GET returns (before per-read computed fields are added),
    keyed by lower-cased id. Writes made through ARM and through the scenario builders go through
    the same validation, so a pre-built scenario looks exactly as if the project had made it.
    """

    def __init__(
        self,
        *,
        state_dir: Path | None = None,
        tenant_id: str = "72f988bf-0000-4000-8000-00000000a4b1",
        lro_delay: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tenant_id = tenant_id
        self.lro_delay = lro_delay
        # The ARM server's base URL once it listens (the workspace's query endpoint lives there).
        self.arm_url = "https://127.0.0.1"
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        self._dirty = False
        # Save after every write; a running server turns this off and saves on a short timer
        # instead, so that a large (fleet) state is not rewritten for each of many writes.
        self.autosave = True
        self._events: list[tuple[str, str]] = []
        self._subscribers: list[Callable[[str, str], None]] = []
        self._resources: dict[str, dict[str, Any]] = {}
        self._meta: dict[str, _Meta] = {}
        self._children: dict[str, set[str]] = {}
        self._by_type: dict[str, set[str]] = {}
        self._operations: dict[str, Operation] = {}
        self._pending: set[str] = set()
        # Principals and issued tokens (hashes only), kept across restarts; see identity.py.
        self.identity: dict[str, Any] = {"principals": {}, "tokens": {}}
        self.write_count = 0
        if self.state_dir is not None and (self.state_dir / STATE_FILE).is_file():
            self.load()

    # ------------------------------------------------------------------ contract for engineer C

    def get(self, resource_id: str) -> dict[str, Any] | None:
        """The resource as a GET would return it, or ``None``; ids are case-insensitive."""
        with self._transaction():
            stored = self._resources.get(normalize(resource_id))
            if stored is None:
                return None
            return self._render(normalize(resource_id))

    def list_prefix(self, prefix_id: str) -> list[dict[str, Any]]:
        """Every resource whose id starts with ``prefix_id`` (case-insensitive), sorted by id."""
        prefix = normalize(prefix_id)
        with self._transaction():
            keys = sorted(key for key in self._resources if key.startswith(prefix))
            return [self._render(key) for key in keys]

    def associations_of(self, resource_id: str) -> list[dict[str, Any]]:
        """The data collection rule associations on a resource (e.g. the managed cluster)."""
        with self._transaction():
            return self._list_children(
                resource_id, "microsoft.insights/datacollectionruleassociations"
            )

    def scopes_of(self, dce_id: str) -> list[str]:
        """Ids of the AMPLS that hold the resource as a (finished) scoped resource."""
        with self._transaction():
            scopes = []
            for key in self._by_type.get(
                "microsoft.insights/privatelinkscopes/scopedresources", ()
            ):
                scoped = self._resources[key]
                properties = scoped.get("properties", {})
                if properties.get("provisioningState") != "Succeeded":
                    continue
                if normalize(properties.get("linkedResourceId", "")) == normalize(dce_id):
                    scopes.append(self._resources[self._meta[key].parent]["id"])
            return sorted(set(scopes), key=str.lower)

    def resolve(self, name: str, vnet_id: str) -> Resolution:
        """How the virtual network ``vnet_id`` sees ``name`` (the DNS server answers with this)."""
        with self._transaction():
            return dnsview.resolve(self, name, vnet_id)

    def subscribe(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(method, resource_id)`` after every committed write.

        Writes made by a finishing long-running operation are reported too (with the method of
        the request that started it), as are the DNS records a zone group writes.
        """
        with self._lock:
            self._subscribers.append(callback)

    # -------------------------------------------------------------- reads used by the wire layer

    def exists(self, resource_id: str) -> bool:
        with self._transaction():
            return normalize(resource_id) in self._resources

    def stored(self, resource_id: str) -> dict[str, Any] | None:
        """The stored JSON without per-read computed fields (for resource type code)."""
        return self._resources.get(normalize(resource_id))

    def meta(self, resource_id: str) -> dict[str, Any]:
        """Internal per-resource data that the wire does not show (created on demand)."""
        return self._meta[normalize(resource_id)].extra

    def children(self, parent_id: str, type_key: str) -> list[dict[str, Any]]:
        """Stored children of ``parent_id`` of one type, by id (for resource type code)."""
        keys = self._children.get(normalize(parent_id), set())
        return [
            self._resources[key] for key in sorted(keys) if self._meta[key].type_key == type_key
        ]

    def of_type(self, type_key: str) -> list[dict[str, Any]]:
        """Every stored resource of one type, in any subscription, by id."""
        return [self._resources[key] for key in sorted(self._by_type.get(type_key, ()))]

    def operation(self, operation_id: str) -> Operation | None:
        with self._transaction():
            return self._operations.get(operation_id.lower())

    def read(self, path: ArmPath) -> dict[str, Any]:
        """A GET on a single resource; raises :class:`ArmError` the way ARM refuses it."""
        with self._transaction():
            kind = self._kind(path)
            self._check_scope(path, kind)
            key = normalize(path.resource_id())
            if key not in self._resources or self._meta[key].type_key != kind.type_key:
                raise kind.not_found(path)
            return self._render(key)

    def list(self, path: ArmPath) -> list[dict[str, Any]]:
        """A GET on a collection: the children of a parent, or all of one type in a scope."""
        with self._transaction():
            kind = self._kind(path)
            self._check_scope(path, kind)
            if kind.list_handler is not None:
                return kind.list_handler(self, path)
            if len(path.types) > 1 or path.is_extension:
                parent = path.parent_id() if len(path.types) > 1 else path.scope
                assert parent is not None
                return self._list_children(parent, kind.type_key)
            keys = self._by_type.get(kind.type_key, set())
            prefix = normalize(path.scope) + "/"
            return [self._render(key) for key in sorted(keys) if key.startswith(prefix)]

    def resource_groups(self, subscription: str) -> list[dict[str, Any]]:
        with self._transaction():
            self._require_subscription(subscription)
            return self._list_children(f"/subscriptions/{subscription}", "resourcegroups")

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._transaction():
            return [self._render(key) for key in sorted(self._by_type.get("subscriptions", ()))]

    def subscription(self, subscription: str) -> dict[str, Any]:
        with self._transaction():
            self._require_subscription(subscription)
            return self._render(normalize(f"/subscriptions/{subscription}"))

    def resource_group(self, subscription: str, name: str) -> dict[str, Any]:
        with self._transaction():
            self._require_subscription(subscription)
            key = normalize(f"/subscriptions/{subscription}/resourceGroups/{name}")
            if key not in self._resources:
                raise ArmError(
                    404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found."
                )
            return self._render(key)

    def generic_resources(
        self, subscription: str, resource_group: str | None
    ) -> list[dict[str, Any]]:
        """Top-level resources of a subscription or group in the generic ``/resources`` shape."""
        with self._transaction():
            self._require_subscription(subscription)
            scope = f"/subscriptions/{subscription}"
            if resource_group is not None:
                self.resource_group(subscription, resource_group)
                scope += f"/resourceGroups/{resource_group}"
            prefix = normalize(scope) + "/"
            rows = []
            for key in sorted(self._resources):
                kind = KINDS.get(self._meta[key].type_key)
                if kind is None or not kind.tracked or not key.startswith(prefix):
                    continue
                stored = self._resources[key]
                row = {k: stored[k] for k in ("id", "name", "type", "location", "tags", "kind")}
                rows.append({k: v for k, v in row.items() if v is not None})
            return rows

    # ------------------------------------------------------------- writes used by the wire layer

    def put(
        self,
        path: ArmPath,
        body: dict[str, Any],
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
        principal: str = "sandbox",
    ) -> WriteResult:
        """Create or replace a resource; long-running types come back with an operation."""
        with self._transaction():
            kind = self._kind(path)
            if not kind.writable:
                raise ArmError(
                    405,
                    "MethodNotAllowed",
                    f"The sandbox emulates resources of type '{kind.type_name}' as read-only.",
                )
            self._check_scope(path, kind)
            if not isinstance(body, dict):
                raise ArmError(
                    400, "InvalidRequestContent", "The request content is not a JSON object."
                )
            key = normalize(path.resource_id())
            existing = self._resources.get(key)
            self._check_preconditions(existing, if_match, if_none_match)
            if existing is not None and self._running(key) is not None:
                raise ArmError(
                    409,
                    "AnotherOperationInProgress",
                    f"Another operation on '{existing['id']}' is in progress; retry when it "
                    "finishes.",
                )
            resource_id = existing["id"] if existing else self._canonical_id(path, kind)
            stored = kind.build(self, path, resource_id, copy.deepcopy(body), existing)
            stored["id"] = resource_id
            stored["name"] = resource_id.rsplit("/", 1)[1]
            stored["type"] = kind.type_name
            self._stamp(stored, kind, existing, principal)

            created = existing is None
            if kind.put_lro is None:
                kind.set_state(stored, "Succeeded")
                self._store(key, stored, kind, path)
                kind.on_committed(self, resource_id, existing)
                self._event("PUT", resource_id)
                return WriteResult(201 if created else 200, self._render(key), None, resource_id)

            kind.set_state(stored, "Creating" if created else "Updating")
            self._store(key, stored, kind, path)
            self._event("PUT", resource_id)
            operation = self._start_operation("put", resource_id, kind, path, stored)
            return WriteResult(
                kind.put_accepted_status(created), self._render(key), operation, resource_id
            )

    def patch(
        self, path: ArmPath, body: dict[str, Any], *, principal: str = "sandbox"
    ) -> WriteResult:
        """ARM's tags-only update (the PATCH of DCE, DCR, AMPLS, zones and links)."""
        with self._transaction():
            kind = self._kind(path)
            if not kind.writable:
                raise ArmError(405, "MethodNotAllowed", f"'{kind.type_name}' is read-only here.")
            key = normalize(path.resource_id())
            stored = self._resources.get(key)
            if stored is None or self._meta[key].type_key != kind.type_key:
                raise kind.not_found(path)
            if not isinstance(body, dict):
                raise ArmError(
                    400, "InvalidRequestContent", "The request content is not a JSON object."
                )
            updated = copy.deepcopy(stored)
            if "tags" in body:
                if not isinstance(body["tags"], dict):
                    raise ArmError(400, "InvalidRequestContent", "'tags' must be an object.")
                updated["tags"] = body["tags"]
            if "identity" in body:
                updated["identity"] = body["identity"]
            self._stamp(updated, kind, stored, principal)
            self._store(key, updated, kind, path)
            self._event("PATCH", stored["id"])
            return WriteResult(200, self._render(key), None, stored["id"])

    def delete(
        self,
        path: ArmPath,
        *,
        if_match: str | None = None,
        options: dict[str, str] | None = None,
    ) -> WriteResult:
        """Delete a resource: 200/202 when it existed, 204 when there was nothing to delete."""
        with self._transaction():
            kind = self._kind(path)
            if not kind.writable:
                raise ArmError(405, "MethodNotAllowed", f"'{kind.type_name}' is read-only here.")
            self._check_scope(path, kind)
            key = normalize(path.resource_id())
            stored = self._resources.get(key)
            if stored is None or self._meta[key].type_key != kind.type_key:
                if if_match not in (None, "*"):
                    raise ArmError(412, "PreconditionFailed", "The resource does not exist.")
                return WriteResult(204, None)
            self._check_preconditions(stored, if_match, None)
            kind.check_delete(self, stored["id"], options or {})
            if kind.delete_lro is None:
                self._remove(key, kind, options or {})
                return WriteResult(kind.delete_status, None, None, stored["id"])
            running = self._running(key, action="delete")
            if running is not None:
                # A repeated DELETE joins the one already under way.
                return WriteResult(202, None, running, stored["id"])
            kind.set_state(stored, "Deleting")
            self._event("DELETE", stored["id"])
            operation = self._start_operation("delete", stored["id"], kind, path, stored)
            self._meta[key].extra["delete_options"] = options or {}
            return WriteResult(202, None, operation, stored["id"])

    # ------------------------------------------------------------------ writes used by builders

    def ensure(
        self, resource_id: str, body: dict[str, Any], *, principal: str = "sandbox"
    ) -> dict[str, Any]:
        """Create or replace a resource through the same checks as ARM, finishing it at once.

        Scenario builders use this, so it accepts the read-only types (clusters, networks,
        workspaces) that ARM callers cannot write.
        """
        path = parse_path(resource_id)
        if path is None:
            raise ValueError(f"not an ARM id: {resource_id}")
        with self._transaction():
            if path.namespace is None:
                return self._ensure_container(path, body)
            kind = self._kind(path)
            self._check_scope(path, kind)
            key = normalize(resource_id)
            existing = self._resources.get(key)
            rid = existing["id"] if existing else self._canonical_id(path, kind)
            stored = kind.build(self, path, rid, copy.deepcopy(body), existing)
            stored["id"], stored["name"], stored["type"] = (
                rid,
                rid.rsplit("/", 1)[1],
                kind.type_name,
            )
            self._stamp(stored, kind, existing, principal)
            kind.set_state(stored, "Succeeded")
            self._store(key, stored, kind, path)
            kind.on_committed(self, rid, existing)
            self._event("PUT", rid)
            return self._render(key)

    def remove(self, resource_id: str) -> None:
        """Delete a resource at once, with its children, skipping ARM's refusals (builders only)."""
        with self._transaction():
            key = normalize(resource_id)
            if key in self._resources:
                self._remove(key, KINDS[self._meta[key].type_key], {})

    def put_internal(
        self, resource_id: str, stored: dict[str, Any], type_key: str, parent: str
    ) -> None:
        """Store JSON as is, for side effects of other writes (zone group records, NICs)."""
        key = normalize(resource_id)
        kind = KINDS[type_key]
        previous = self._resources.get(key)
        if previous is not None:
            unchanged = {k: v for k, v in previous.items() if k != "etag"}
            if unchanged == {k: v for k, v in stored.items() if k != "etag"}:
                return
        if kind.etag_style is not None:
            stored["etag"] = kind.new_etag()
        self._index(key, type_key, parent)
        self._resources[key] = stored
        self._dirty = True
        self._event("PUT", resource_id)

    def touch(self) -> None:
        """Note that internal bookkeeping changed, so the state is saved with this write."""
        self._dirty = True

    def remove_internal(self, resource_id: str) -> None:
        key = normalize(resource_id)
        if key in self._resources:
            self._remove(key, KINDS[self._meta[key].type_key], {}, cascade_hooks=False)

    # ------------------------------------------------------------------ long-running operations

    def advance(self) -> None:
        """Finish every operation whose delay has passed (called on every access and by a timer)."""
        with self._transaction():
            pass

    def _advance_locked(self) -> None:
        now = self._clock()
        for operation_id in sorted(self._pending, key=lambda i: self._operations[i].due):
            operation = self._operations[operation_id]
            if operation.due <= now:
                self._pending.discard(operation_id)
                self._finish(operation)
        # Clients poll an operation for a while after it ends; keep only the recent ones.
        finished = len(self._operations) - len(self._pending)
        if finished > _KEPT_OPERATIONS:
            for operation_id in list(self._operations)[: finished - _KEPT_OPERATIONS]:
                if operation_id not in self._pending:
                    del self._operations[operation_id]

    def _finish(self, operation: Operation) -> None:
        key = normalize(operation.resource_id)
        operation.end_time = utc_now()
        stored = self._resources.get(key)
        if stored is None:
            operation.status = "Succeeded"
            return
        kind = KINDS[self._meta[key].type_key]
        if operation.action == "delete":
            options = self._meta[key].extra.pop("delete_options", {})
            self._remove(key, kind, options)
            operation.status = "Succeeded"
            return
        try:
            kind.set_state(stored, "Succeeded")
            kind.on_committed(self, stored["id"], self._meta[key].extra.pop("previous", None))
            operation.status = "Succeeded"
        except ArmError as error:
            # A side effect refused at the end: the resource stays, marked Failed, as on ARM.
            kind.set_state(stored, "Failed")
            operation.status = "Failed"
            operation.error = {"code": error.code, "message": error.message}
        self._dirty = True
        self._event("PUT", stored["id"])

    def _start_operation(
        self,
        action: str,
        resource_id: str,
        kind: ResourceKind,
        path: ArmPath,
        stored: dict[str, Any],
    ) -> Operation:
        operation = Operation(
            id=str(uuid.uuid4()),
            action=action,
            resource_id=resource_id,
            style=kind.put_lro if action == "put" else kind.delete_lro,  # type: ignore[arg-type]
            subscription=path.subscription or "",
            resource_group=path.resource_group,
            location=str(stored.get("location") or "global").replace(" ", "").lower(),
            start_time=utc_now(),
            due=self._clock() + self.lro_delay,
        )
        self._operations[operation.id] = operation
        self._pending.add(operation.id)
        self._dirty = True
        return operation

    def _running(self, key: str, action: str | None = None) -> Operation | None:
        """The operation still running on a resource, if any."""
        for operation_id in self._pending:
            operation = self._operations[operation_id]
            if normalize(operation.resource_id) == key and action in (None, operation.action):
                return operation
        return None

    # ------------------------------------------------------------------ persistence

    def save(self) -> None:
        """Write the state atomically (temporary file, then rename) into the state directory."""
        if self.state_dir is None:
            return
        with self._lock:
            document = {
                "version": _STATE_VERSION,
                "tenant_id": self.tenant_id,
                "resources": self._resources,
                "meta": {key: asdict(meta) for key, meta in self._meta.items()},
                "operations": {key: asdict(op) for key, op in self._operations.items()},
                "identity": self.identity,
            }
            self.state_dir.mkdir(parents=True, exist_ok=True)
            target = self.state_dir / STATE_FILE
            temporary = target.with_suffix(".tmp")
            temporary.write_text(json.dumps(document, separators=(",", ":")))
            os.replace(temporary, target)
            self._dirty = False

    def save_if_dirty(self) -> None:
        """Save when something changed since the last save (the server's timer calls this)."""
        with self._lock:
            if self._dirty:
                self.save()

    def load(self) -> None:
        """Read the state written by :meth:`save`; operations still running then finish now."""
        assert self.state_dir is not None
        document = json.loads((self.state_dir / STATE_FILE).read_text())
        with self._lock:
            self.tenant_id = document.get("tenant_id", self.tenant_id)
            self._resources = document["resources"]
            self._meta = {key: _Meta(**value) for key, value in document["meta"].items()}
            self._children, self._by_type = {}, {}
            for key, meta in self._meta.items():
                self._index(key, meta.type_key, meta.parent)
            self._operations = {}
            self._pending = set()
            for key, value in document.get("operations", {}).items():
                operation = Operation(**value)
                # The clock of the process that saved this is gone: finish what was running.
                operation.due = 0.0
                self._operations[key] = operation
                if operation.status == "InProgress":
                    self._pending.add(key)
            self.identity = document.get("identity", {"principals": {}, "tokens": {}})
        self.advance()

    def dump(self) -> dict[str, Any]:
        """Everything, rendered, for ``GET /_sandbox/state``."""
        with self._transaction():
            return {
                "tenant_id": self.tenant_id,
                "resources": [self._render(key) for key in sorted(self._resources)],
                "operations": [asdict(op) for op in self._operations.values()],
            }

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group many writes (a scenario build) into one save and one round of notifications."""
        with self._transaction():
            yield

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """Hold the lock; on the way out finish due operations, save, and tell subscribers."""
        with self._lock:
            self._depth += 1
            try:
                if self._depth == 1:
                    self._advance_locked()
                yield
            finally:
                self._depth -= 1
                events: list[tuple[str, str]] = []
                subscribers: list[Callable[[str, str], None]] = []
                if self._depth == 0:
                    if self._dirty:
                        self.write_count += 1
                        if self.autosave:
                            self.save()
                    events, self._events = self._events, []
                    subscribers = list(self._subscribers)
        for method, resource_id in events:
            for callback in subscribers:
                try:
                    callback(method, resource_id)
                except Exception:
                    logger.exception("A subscriber failed on %s %s", method, resource_id)

    def _event(self, method: str, resource_id: str) -> None:
        self._events.append((method, resource_id))
        self._dirty = True

    def _kind(self, path: ArmPath) -> ResourceKind:
        kind = kind_for(path.type_key, extension=path.is_extension)
        if kind is None:
            namespace = path.namespace or ""
            raise ArmError(
                404 if namespace else 400,
                "InvalidResourceType" if namespace else "InvalidResourceNamespace",
                f"The resource type '{'/'.join(path.types)}' could not be found in the namespace "
                f"'{namespace}' for api version in the sandbox.",
            )
        return kind

    def _require_subscription(self, subscription: str | None) -> None:
        if (
            subscription is None
            or normalize(f"/subscriptions/{subscription}") not in self._resources
        ):
            raise ArmError(
                404,
                "SubscriptionNotFound",
                f"The subscription '{subscription}' could not be found.",
            )

    def _check_scope(self, path: ArmPath, kind: ResourceKind) -> None:
        """Refuse like ARM when the subscription, group, parent or extended resource is missing."""
        self._require_subscription(path.subscription)
        if path.resource_group is not None:
            group = normalize(
                f"/subscriptions/{path.subscription}/resourceGroups/{path.resource_group}"
            )
            if group not in self._resources:
                raise ArmError(
                    404,
                    "ResourceGroupNotFound",
                    f"Resource group '{path.resource_group}' could not be found.",
                )
        if path.is_extension and normalize(path.scope) not in self._resources:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{path.scope}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        if len(path.types) > 1 and not kind.virtual_parent:
            parent = path.parent_id()
            if parent is not None and normalize(parent) not in self._resources:
                parent_path = ArmPath(
                    path.subscription,
                    path.resource_group,
                    path.scope,
                    path.namespace,
                    path.types[:1],
                    path.names[:1],
                )
                raise ArmError(
                    404,
                    "ParentResourceNotFound",
                    "Can not perform requested operation on nested resource. Parent resource "
                    f"'{'/'.join(parent_path.names)}' not found.",
                )

    def _canonical_id(self, path: ArmPath, kind: ResourceKind) -> str:
        """The id ARM would give a new resource: canonical type names, the caller's name."""
        name = path.names[-1]
        if len(path.types) > 1:
            parent = self._resources[normalize(path.parent_id() or "")]["id"]
            return f"{parent}/{kind.type_name.rsplit('/', 1)[1]}/{name}"
        scope = path.scope
        stored_scope = self._resources.get(normalize(scope))
        if stored_scope is not None:
            scope = stored_scope["id"]
        return f"{scope}/providers/{kind.type_name}/{name}"

    def _check_preconditions(
        self, existing: dict[str, Any] | None, if_match: str | None, if_none_match: str | None
    ) -> None:
        if if_none_match == "*" and existing is not None:
            raise ArmError(
                412,
                "PreconditionFailed",
                f"The resource '{existing['id']}' already exists (If-None-Match: *).",
            )
        if if_match is not None and if_match != "*":
            if existing is None:
                raise ArmError(412, "PreconditionFailed", "The resource does not exist (If-Match).")
            if _bare_etag(existing.get("etag")) != _bare_etag(if_match):
                raise ArmError(
                    412,
                    "PreconditionFailed",
                    f"The etag '{if_match}' does not match the current etag of '{existing['id']}'.",
                )
        if if_match == "*" and existing is None:
            raise ArmError(412, "PreconditionFailed", "The resource does not exist (If-Match: *).")

    def _stamp(
        self,
        stored: dict[str, Any],
        kind: ResourceKind,
        existing: dict[str, Any] | None,
        principal: str,
    ) -> None:
        """Give the resource a fresh etag and ``systemData`` as ARM does on every write."""
        now = utc_now()
        if kind.etag_style is not None:
            stored["etag"] = kind.new_etag()
        if kind.system_data:
            created = (existing or {}).get("systemData", {})
            stored["systemData"] = {
                "createdBy": created.get("createdBy", principal),
                "createdByType": created.get("createdByType", "Application"),
                "createdAt": created.get("createdAt", now),
                "lastModifiedBy": principal,
                "lastModifiedByType": "Application",
                "lastModifiedAt": now,
            }

    def _store(self, key: str, stored: dict[str, Any], kind: ResourceKind, path: ArmPath) -> None:
        parent = normalize((path.parent_id() or "") if len(path.types) > 1 else path.scope)
        previous = self._resources.get(key)
        self._index(key, kind.type_key, parent)
        if previous is not None and kind.put_lro is not None:
            self._meta[key].extra["previous"] = previous
        self._resources[key] = stored
        self._dirty = True

    def _index(self, key: str, type_key: str, parent: str) -> None:
        if key not in self._meta:
            self._meta[key] = _Meta(type_key=type_key, parent=parent)
        self._children.setdefault(parent, set()).add(key)
        self._by_type.setdefault(type_key, set()).add(key)

    def _remove(
        self, key: str, kind: ResourceKind, options: dict[str, str], *, cascade_hooks: bool = True
    ) -> None:
        stored = self._resources.get(key)
        if stored is None:
            return
        # Children go first (record sets, links, zone groups, scoped resources, associations).
        for child in sorted(self._children.get(key, set())):
            if child in self._resources:
                self._remove(
                    child, KINDS[self._meta[child].type_key], {}, cascade_hooks=cascade_hooks
                )
        meta = self._meta.pop(key)
        del self._resources[key]
        self._children.get(meta.parent, set()).discard(key)
        self._by_type.get(meta.type_key, set()).discard(key)
        self._children.pop(key, None)
        self._dirty = True
        self._event("DELETE", stored["id"])
        if cascade_hooks:
            kind.on_deleted(self, stored, options, meta.extra)

    def _list_children(self, parent_id: str, type_key: str) -> list[dict[str, Any]]:
        keys = self._children.get(normalize(parent_id), set())
        return [self._render(key) for key in sorted(keys) if self._meta[key].type_key == type_key]

    def _render(self, key: str) -> dict[str, Any]:
        stored = self._resources[key]
        kind = KINDS.get(self._meta[key].type_key)
        rendered = copy.deepcopy(stored)
        if kind is not None:
            rendered = kind.render(self, rendered)
        return rendered

    def _ensure_container(self, path: ArmPath, body: dict[str, Any]) -> dict[str, Any]:
        """Create a subscription or resource group (builders only; ARM callers cannot)."""
        if path.types == ("subscriptions",):
            resource_id = f"/subscriptions/{path.names[0]}"
            stored = {
                "id": resource_id,
                "subscriptionId": path.names[0],
                "tenantId": self.tenant_id,
                "displayName": body.get("displayName", f"sandbox-{path.names[0][:8]}"),
                "state": "Enabled",
                "authorizationSource": "RoleBased",
                "subscriptionPolicies": {
                    "locationPlacementId": "Public_2014-09-01",
                    "quotaId": "PayAsYouGo_2014-09-01",
                    "spendingLimit": "Off",
                },
            }
            key = normalize(resource_id)
            self._index(key, "subscriptions", "")
            self._resources[key] = stored
        else:
            self._require_subscription(path.subscription)
            existing = self._resources.get(normalize(path.resource_id()))
            resource_id = (
                existing["id"]
                if existing
                else (f"/subscriptions/{path.subscription}/resourceGroups/{path.names[0]}")
            )
            stored = {
                "id": resource_id,
                "name": resource_id.rsplit("/", 1)[1],
                "type": "Microsoft.Resources/resourceGroups",
                "location": body["location"],
                "tags": body.get("tags", {}),
                "properties": {"provisioningState": "Succeeded"},
            }
            if body.get("managedBy"):
                stored["managedBy"] = body["managedBy"]
            key = normalize(resource_id)
            self._index(key, "resourcegroups", normalize(f"/subscriptions/{path.subscription}"))
            self._resources[key] = stored
        self._event("PUT", resource_id)
        return copy.deepcopy(stored)
