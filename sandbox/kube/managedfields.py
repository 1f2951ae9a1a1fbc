"""Field ownership: `metadata.managedFields` and server-side apply.

Every write records which fields its field manager set: an *Apply* (server-side apply) owns exactly
the fields of its configuration; an *Update* (create, PUT, the other patches) takes the fields it
changed away from everyone else. An apply that would change a field another manager owns is a
conflict (409) unless forced; a field an applier owned and no longer applies is removed unless
someone else still owns it. This is the behaviour of Kubernetes' structured-merge-diff in the shape
the project relies on (drift checks, `force_conflicts`, rollout restarts coexisting with SSA), not a
port of it: associative lists are recognised by their merge key, every other list is atomic.

A field path is a tuple of fieldsV1 path elements: `f:<field>`, `k:<json key>` (an item of an
associative list, keyed by its merge key), `v:<json value>` (an item of a set list).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.kube.errors import ApiError, Cause
from sandbox.kube.patches import SET_LISTS, merge_key_of

Path = tuple[str, ...]

# Metadata the server owns; no field manager ever owns these.
SERVER_METADATA = frozenset(
    {
        "name",
        "namespace",
        "generateName",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass
class ManagedEntry:
    """One `metadata.managedFields[]` entry: a manager, how it wrote, and the fields it owns."""

    manager: str
    operation: str  # "Apply" | "Update"
    api_version: str
    time: str
    subresource: str = ""
    fields: set[Path] = field(default_factory=set)

    def identity(self) -> tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> dict[str, Any]:
        entry = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(self.fields),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ManagedEntry:
        return cls(
            manager=entry.get("manager", ""),
            operation=entry.get("operation", "Update"),
            api_version=entry.get("apiVersion", ""),
            time=entry.get("time", ""),
            subresource=entry.get("subresource", ""),
            fields=from_fields_v1(entry.get("fieldsV1") or {}),
        )


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entries_of(obj: dict[str, Any] | None) -> list[ManagedEntry]:
    if not obj:
        return []
    return [ManagedEntry.from_json(e) for e in obj.get("metadata", {}).get("managedFields") or []]


# -- field sets -------------------------------------------------------------------------------


def field_set(obj: dict[str, Any], *, associative: bool, include_status: bool) -> set[Path]:
    """The paths of every field an object (or an apply configuration) sets.

    `associative` says whether lists with a known merge key are associative (built-in kinds) or
    atomic (custom resources without list-type markers). Metadata always follows built-in rules.
    """
    paths: set[Path] = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and not include_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            for meta_key, meta_value in value.items():
                if meta_key not in SERVER_METADATA:
                    _walk(meta_key, meta_value, ("f:metadata", f"f:{meta_key}"), paths, True)
            continue
        _walk(key, value, (f"f:{key}",), paths, associative)
    return paths


def _walk(name: str, value: Any, path: Path, paths: set[Path], associative: bool) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _walk(key, item, (*path, f"f:{key}"), paths, associative)
        return
    if isinstance(value, list) and value and associative:
        key = merge_key_of(name, value)
        if key is not None and all(isinstance(item, dict) and key in item for item in value):
            for item in value:
                item_path = (*path, _item_key(key, item))
                paths.add(item_path)
                for item_field, item_value in item.items():
                    _walk(item_field, item_value, (*item_path, f"f:{item_field}"), paths, True)
            return
        if name in SET_LISTS and not any(isinstance(item, dict | list) for item in value):
            paths.update((*path, f"v:{_json(item)}") for item in value)
            return
    paths.add(path)


def _item_key(key: str, item: dict[str, Any]) -> str:
    return f"k:{_json({key: item[key]})}"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def value_at(obj: Any, path: Path) -> Any:
    """The value at a field path, or MISSING."""
    current = obj
    for element in path:
        kind, _, argument = element.partition(":")
        if kind == "f":
            if not isinstance(current, dict) or argument not in current:
                return MISSING
            current = current[argument]
        elif kind == "k":
            wanted = json.loads(argument)
            if not isinstance(current, list):
                return MISSING
            current = next(
                (
                    item
                    for item in current
                    if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())
                ),
                MISSING,
            )
            if current is MISSING:
                return MISSING
        elif kind == "v":
            wanted = json.loads(argument)
            if not isinstance(current, list) or wanted not in current:
                return MISSING
            current = wanted
        else:
            return MISSING
    return current


def remove_at(obj: Any, path: Path) -> None:
    """Remove the field or list item at a path, if it is there."""
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    kind, _, argument = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(argument, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        target = value_at(obj, path)
        if target is not MISSING:
            parent[:] = [item for item in parent if item is not target and item != target]


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """The nested fieldsV1 map of a set of paths; `.` marks an owned node that has children."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in paths:
        node = root
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return root


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for element, child in tree.items():
        if element == ".":
            continue
        path = (*prefix, element)
        if not child or "." in child:
            paths.add(path)
        if child:
            paths |= from_fields_v1(child, path)
    return paths


def render_path(path: Path) -> str:
    """A path as conflict messages print it: `.spec.containers[name="app"].image`."""
    text = ""
    for element in path:
        kind, _, argument = element.partition(":")
        if kind == "f":
            text += f".{argument}"
        elif kind == "k":
            text += (
                "["
                + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(argument).items())
                + "]"
            )
        else:
            text += f"[={argument}]"
    return text


# -- writes -----------------------------------------------------------------------------------


def record_update(
    entries: list[ManagedEntry],
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    api_version: str,
    associative: bool,
    subresource: str = "",
) -> None:
    """Record a non-apply write: the manager takes every field it changed from the others."""
    include_status = subresource == "status"
    changed = {
        path
        for path in field_set(new, associative=associative, include_status=include_status)
        if old is None or value_at(old, path) != value_at(new, path)
    }
    if not changed:
        return
    for entry in entries:
        entry.fields -= changed
    mine = _entry(entries, manager, "Update", api_version, subresource)
    mine.fields |= changed


def server_side_apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    entries: list[ManagedEntry],
    *,
    manager: str,
    api_version: str,
    force: bool,
    associative: bool,
    include_status: bool,
    subresource: str = "",
) -> dict[str, Any]:
    """Merge an apply configuration into the live object, as `manager`; return the new object.

    Updates `entries` in place. Raises 409 Conflict naming each field and its other manager when
    the configuration would change a field someone else owns and `force` is not set.
    """
    config = _without_nulls(config)
    applied = field_set(config, associative=associative, include_status=include_status)
    current = live or {}

    conflicts: list[tuple[ManagedEntry, Path]] = []
    for entry in entries:
        if entry.manager == manager and entry.operation == "Apply":
            continue
        for path in applied & entry.fields:
            if path[-1].startswith(("k:", "v:")):
                continue
            if value_at(current, path) != value_at(config, path):
                conflicts.append((entry, path))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for entry, path in conflicts:
        entry.fields.discard(path)

    merged = _apply_merge(current, config, associative, "")
    mine = _entry(entries, manager, "Apply", api_version, subresource)
    others: set[Path] = set()
    for entry in entries:
        if entry is not mine:
            others |= entry.fields
    # Fields this manager applied before and no longer applies go, unless another manager
    # still owns them (or owns something inside them).
    for path in sorted(mine.fields - applied, key=len, reverse=True):
        if path in others or any(other[: len(path)] == path for other in others):
            continue
        remove_at(merged, path)
    mine.fields = applied
    mine.time = now()
    mine.api_version = api_version
    return merged


def finalize(entries: list[ManagedEntry], obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The managedFields to store with `obj`: each entry pruned to fields that still exist."""
    result = []
    for entry in entries:
        entry.fields = {path for path in entry.fields if value_at(obj, path) is not MISSING}
        if entry.fields:
            result.append(entry.to_json())
    return result


def _entry(
    entries: list[ManagedEntry], manager: str, operation: str, api_version: str, subresource: str
) -> ManagedEntry:
    for entry in entries:
        if entry.identity() == (manager, operation, subresource):
            entry.time = now()
            entry.api_version = api_version
            return entry
    entry = ManagedEntry(manager, operation, api_version, now(), subresource)
    entries.append(entry)
    return entry


def _apply_merge(live: Any, config: Any, associative: bool, name: str) -> Any:
    if isinstance(config, dict) and isinstance(live, dict):
        result = dict(live)
        for key, value in config.items():
            result[key] = _apply_merge(live.get(key), value, associative or key == "metadata", key)
        return result
    if isinstance(config, list) and isinstance(live, list) and associative:
        key = merge_key_of(name, config)
        if key is not None and all(isinstance(i, dict) and key in i for i in config + live):
            result = copy.deepcopy(live)
            for item in config:
                index = next((i for i, old in enumerate(result) if old[key] == item[key]), None)
                if index is None:
                    result.append(copy.deepcopy(item))
                else:
                    result[index] = _apply_merge(result[index], item, True, "")
            return result
        if name in SET_LISTS:
            return live + [item for item in config if item not in live]
    return copy.deepcopy(config)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _conflict_error(conflicts: list[tuple[ManagedEntry, Path]]) -> ApiError:
    causes = [
        Cause(
            "FieldManagerConflict",
            f'conflict with "{entry.manager}"'
            + (f" using {entry.api_version}" if entry.api_version else ""),
            render_path(path),
        )
        for entry, path in sorted(conflicts, key=lambda c: (c[0].manager, c[1]))
    ]
    count = len(causes)
    if count == 1:
        message = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        lines = "\n".join(f"{cause.message}: {cause.field}" for cause in causes)
        message = f"Apply failed with {count} conflicts: {lines}"
    return ApiError(409, "Conflict", message, causes=causes)
