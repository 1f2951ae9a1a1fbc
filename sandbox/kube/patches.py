"""The three classic PATCH formats: JSON patch, JSON merge patch and strategic merge patch.

Server-side apply, the fourth, lives in `managedfields.py` because it is about ownership as much as
about merging. Every function here is pure: it takes the live object and the patch and returns the
patched copy, or raises an `ApiError` the server answers with.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from sandbox.kube.errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"

# The `patchMergeKey` of the built-in kinds' lists that merge item by item rather than being
# replaced whole. `ports` is special: container ports merge by containerPort, Service ports by port.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "secrets": "name",
    "webhooks": "name",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
}
# Lists of scalars that merge as sets.
SET_LISTS = frozenset({"finalizers"})


def merge_key_of(field: str, items: list[Any]) -> str | None:
    """The key that identifies items of the list `field` of a built-in kind, or None (atomic)."""
    if not items or not all(isinstance(item, dict) for item in items):
        return MERGE_KEYS.get(field) if field != "ports" else None
    if field == "ports":
        return "containerPort" if any("containerPort" in item for item in items) else "port"
    key = MERGE_KEYS.get(field)
    if key is not None and all(key in item for item in items):
        return key
    return None


def json_patch(obj: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902: a list of add/remove/replace/move/copy/test operations."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(obj, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: {error}",
        ) from error


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge key by key, `null` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A strategic merge patch on a built-in kind: maps merge, keyed lists merge item by item.

    Honours the directives kubectl sends: `$patch: replace|delete`, `$retainKeys`,
    `$deleteFromPrimitiveList/<field>`; `$setElementOrder/<field>` only orders, so it is dropped.
    """
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    merged = _merge_map(original, patch)
    return merged if merged is not None else {}


def _merge_map(original: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any] | None:
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _merge_map(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    if isinstance(patch.get("$retainKeys"), list):
        keep = set(patch["$retainKeys"])
        result = {key: value for key, value in result.items() if key in keep}
    return result


def _merge_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    original = original if isinstance(original, list) else []
    if field in SET_LISTS:
        return original + [item for item in patch if item not in original]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [_strip(item) for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    key = merge_key_of(field, [item for item in patch if isinstance(item, dict)] or original)
    if key is None:
        return [_strip(item) for item in patch]

    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next((i for i, old in enumerate(result) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_strip(item))
        else:
            result[index] = _merge_map(result[index], item) or {}
    return result


def _strip(value: Any) -> Any:
    """A patch value with its directives and nulls removed, as stored when nothing merges in."""
    if isinstance(value, dict):
        return {
            key: _strip(item)
            for key, item in value.items()
            if not key.startswith("$") and item is not None
        }
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value
