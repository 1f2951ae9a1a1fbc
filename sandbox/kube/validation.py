"""What the API server checks before it stores an object.

Deliberately small: names (RFC 1123), the handful of built-in rules the project could trip over
(Deployment selector vs template labels, containers with name and image, CRD naming), and custom
resources against their CRD's `openAPIV3Schema` (`type`, `required`, `enum`, `pattern`, bounds),
with the API server's structural pruning of unknown fields and schema defaults.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

import jsonschema

from sandbox.kube.errors import Cause
from sandbox.kube.resources import ResourceType
from sandbox.kube.selectors import selector_matches

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RULE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
# Kinds whose names must be DNS labels (they become DNS names or label values).
_LABEL_NAMED = frozenset({"Namespace", "Service"})


def name_causes(resource_type: ResourceType, name: str | None) -> list[Cause]:
    """The problems with an object's name, if any."""
    if not name:
        return [
            Cause(
                "FieldValueRequired",
                "Required value: name or generateName is required",
                "metadata.name",
            )
        ]
    if resource_type.kind in _LABEL_NAMED:
        ok, rule, limit = DNS1123_LABEL.match(name), _LABEL_RULE, 63
    elif resource_type.group == "rbac.authorization.k8s.io":
        # RBAC names only need to be valid path segments (they often contain ':').
        ok, rule, limit = "/" not in name and name not in (".", ".."), "may not contain '/'", 253
    else:
        ok, rule, limit = DNS1123_SUBDOMAIN.match(name), _SUBDOMAIN_RULE, 253
    if not ok:
        return [Cause("FieldValueInvalid", f'Invalid value: "{name}": {rule}', "metadata.name")]
    if len(name) > limit:
        return [
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be no more than {limit} characters',
                "metadata.name",
            )
        ]
    return []


def builtin_causes(resource_type: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    """The built-in validation rules the sandbox enforces for one object."""
    kind, spec = resource_type.kind, obj.get("spec") or {}
    causes: list[Cause] = []
    if resource_type.group == "apps" and kind in (
        "Deployment",
        "DaemonSet",
        "ReplicaSet",
        "StatefulSet",
    ):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector:
            causes.append(Cause("FieldValueRequired", "Required value", "spec.selector"))
        elif not selector_matches(selector, labels):
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {_go_map(labels)}: "
                    "`selector` does not match template `labels`",
                    "spec.template.metadata.labels",
                )
            )
        causes += _pod_spec_causes((spec.get("template") or {}).get("spec"), "spec.template.spec")
        if (spec.get("replicas") or 0) < 0:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {spec['replicas']}: must be greater than or equal to 0",
                    "spec.replicas",
                )
            )
    elif kind == "Pod" and resource_type.group == "":
        causes += _pod_spec_causes(spec, "spec")
    elif kind == "Service" and resource_type.group == "":
        for index, port in enumerate(spec.get("ports") or []):
            if not isinstance(port.get("port"), int):
                causes.append(
                    Cause("FieldValueRequired", "Required value", f"spec.ports[{index}].port")
                )
    elif kind == "CustomResourceDefinition":
        causes += _crd_causes(obj)
    return causes


def _pod_spec_causes(spec: dict[str, Any] | None, where: str) -> list[Cause]:
    if not isinstance(spec, dict) or not spec.get("containers"):
        return [Cause("FieldValueRequired", "Required value", f"{where}.containers")]
    causes = []
    for index, container in enumerate(spec["containers"]):
        for required in ("name", "image"):
            if not container.get(required):
                causes.append(
                    Cause(
                        "FieldValueRequired",
                        "Required value",
                        f"{where}.containers[{index}].{required}",
                    )
                )
    return causes


def _crd_causes(crd: dict[str, Any]) -> list[Cause]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    for required in ("group", "names", "versions"):
        if not spec.get(required):
            causes.append(Cause("FieldValueRequired", "Required value", f"spec.{required}"))
    if causes:
        return causes
    expected = f"{names.get('plural')}.{spec['group']}"
    if crd["metadata"].get("name") != expected:
        causes.append(
            Cause(
                "FieldValueInvalid",
                f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."+'
                "spec.group",
                "metadata.name",
            )
        )
    if not names.get("kind"):
        causes.append(Cause("FieldValueRequired", "Required value", "spec.names.kind"))
    if sum(1 for version in spec["versions"] if version.get("storage")) != 1:
        causes.append(
            Cause(
                "FieldValueInvalid",
                "Invalid value: must have exactly one version marked as storage version",
                "spec.versions",
            )
        )
    return causes


def _go_map(labels: dict[str, str]) -> str:
    inner = ", ".join(f'"{key}":"{value}"' for key, value in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


# -- custom resources ---------------------------------------------------------------------------


def schema_of(resource_type: ResourceType, version: str) -> dict[str, Any] | None:
    """The openAPIV3Schema a CRD declares for one version, or None."""
    crd_version = resource_type.crd_version(version)
    if crd_version is None:
        return None
    return ((crd_version.get("schema") or {}).get("openAPIV3Schema")) or None


def custom_causes(schema: dict[str, Any], obj: dict[str, Any]) -> list[Cause]:
    """A custom resource's schema violations, each with its field path, in the server's words."""
    body = {key: value for key, value in obj.items() if key != "metadata"}
    validator = _validator(_freeze(schema))
    causes = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = _render(list(error.absolute_path))
        if error.validator == "required":
            for missing in error.validator_value:
                if isinstance(error.instance, dict) and missing not in error.instance:
                    field = f"{path}.{missing}" if path else missing
                    causes.append(Cause("FieldValueRequired", "Required value", field))
        elif error.validator == "enum":
            supported = ", ".join(_quote(value) for value in error.validator_value)
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f"Unsupported value: {_quote(error.instance)}: supported values: {supported}",
                    path,
                )
            )
        elif error.validator == "type":
            causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    f'Invalid value: "{_type_name(error.instance)}": {path} in body '
                    f"must be of type {error.validator_value}: {_quote(error.instance)}",
                    path,
                )
            )
        elif error.validator == "pattern":
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {_quote(error.instance)}: {path} in body should "
                    f"match '{error.validator_value}'",
                    path,
                )
            )
        else:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {_quote(error.instance)}: {error.message}",
                    path,
                )
            )
    return causes


def prune_unknown(schema: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """Drop fields the schema does not declare (structural pruning); return their paths."""
    unknown: list[str] = []
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        _prune(schema, obj, key, key, unknown)
    return unknown


def _prune(
    schema: dict[str, Any], parent: dict[str, Any], key: str, path: str, unknown: list[str]
) -> None:
    properties = schema.get("properties")
    if schema.get("x-kubernetes-preserve-unknown-fields") and properties is None:
        return
    if (
        properties is not None
        and key not in properties
        and not schema.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in schema
    ):
        unknown.append(path)
        del parent[key]
        return
    child_schema = (properties or {}).get(key)
    if child_schema is None and isinstance(schema.get("additionalProperties"), dict):
        child_schema = schema["additionalProperties"]
    if child_schema is None:
        return
    value = parent[key]
    if isinstance(value, dict):
        for child in list(value):
            _prune(child_schema, value, child, f"{path}.{child}", unknown)
    elif isinstance(value, list) and isinstance(child_schema.get("items"), dict):
        for index, item in enumerate(value):
            if isinstance(item, dict):
                for child in list(item):
                    _prune(child_schema["items"], item, child, f"{path}[{index}].{child}", unknown)


def apply_defaults(schema: dict[str, Any], value: Any) -> None:
    """Fill in `default`s of absent properties, as the API server does when it stores a CR."""
    if isinstance(value, dict):
        for key, child in (schema.get("properties") or {}).items():
            if key not in value and "default" in child:
                value[key] = copy.deepcopy(child["default"])
            if key in value:
                apply_defaults(child, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


def _freeze(schema: dict[str, Any]) -> str:
    import json

    return json.dumps(schema, sort_keys=True)


@lru_cache(maxsize=64)
def _validator(frozen: str) -> jsonschema.Draft7Validator:
    import json

    return jsonschema.Draft7Validator(_to_json_schema(json.loads(frozen)))


def _to_json_schema(schema: Any) -> Any:
    """OpenAPI v3 schema → JSON schema: `nullable` becomes a null type; the rest maps as is."""
    if isinstance(schema, list):
        return [_to_json_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {
        key: _to_json_schema(value)
        for key, value in schema.items()
        if key not in ("nullable", "default", "format")
    }
    if isinstance(schema.get("properties"), dict):
        result["properties"] = {k: _to_json_schema(v) for k, v in schema["properties"].items()}
    if schema.get("nullable") and isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    return result


def _render(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _quote(value: Any) -> str:
    return (
        f'"{value}"'
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), "null")
