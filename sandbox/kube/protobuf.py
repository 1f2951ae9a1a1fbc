"""Kubernetes' protobuf request bodies, for the few kinds kubectl's generators send that way.

`kubectl create namespace|configmap|secret|serviceaccount` post their object as
`application/vnd.kubernetes.protobuf`: the magic bytes `k8s\\0`, then a `runtime.Unknown` whose
`raw` field is the object in the field numbering of Kubernetes' generated.proto files. This module
decodes exactly those kinds into the JSON the rest of the server works with; any other kind is
answered 415, and the answers themselves are always JSON (which kubectl accepts).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# A schema maps a field number to (JSON name, how to read it). Readers: "string", "bytes" (base64,
# as JSON carries bytes), "int", "bool", "time", a nested schema, ("map", value reader) or
# ("repeated", reader).
Schema = dict[int, tuple[str, Any]]

TYPE_META: Schema = {1: ("apiVersion", "string"), 2: ("kind", "string")}
UNKNOWN: Schema = {
    1: ("typeMeta", TYPE_META),
    2: ("raw", "raw"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}
OWNER_REFERENCE: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", OWNER_REFERENCE)),
    14: ("finalizers", ("repeated", "string")),
}
LOCAL_REFERENCE: Schema = {1: ("name", "string")}
OBJECT_REFERENCE: Schema = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
}
KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: ("metadata", OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", OBJECT_META),
        2: ("secrets", ("repeated", OBJECT_REFERENCE)),
        3: ("imagePullSecrets", ("repeated", LOCAL_REFERENCE)),
        4: ("automountServiceAccountToken", "bool"),
    },
}


class UnsupportedKind(ValueError):
    """The body is protobuf of a kind this module has no schema for."""


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object; UnsupportedKind or ValueError otherwise."""
    if not body.startswith(MAGIC):
        raise ValueError("protobuf body without the k8s magic prefix")
    envelope = _message(body[len(MAGIC) :], UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    schema = KINDS.get((api_version, kind))
    if schema is None:
        raise UnsupportedKind(f"{api_version}/{kind}")
    obj = _message(envelope.get("raw", b""), schema)
    return {"apiVersion": api_version, "kind": kind, **obj}


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of one message; varints as int, others as bytes."""
    fields, position = [], 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(data, position)
            fields.append((number, value))
        elif wire_type == 2:
            length, position = _varint(data, position)
            fields.append((number, data[position : position + length]))
            position += length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            fields.append((number, data[position : position + size]))
            position += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
    return fields


def _message(data: bytes, schema: Schema) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue  # a field the sandbox does not need
        name, reader = schema[number]
        if isinstance(reader, tuple) and reader[0] == "map":
            entry = dict(_fields(value))  # type: ignore[arg-type]
            key = entry.get(1, b"").decode()  # type: ignore[union-attr]
            result.setdefault(name, {})[key] = _scalar(entry.get(2, b""), reader[1])
        elif isinstance(reader, tuple) and reader[0] == "repeated":
            result.setdefault(name, []).append(_scalar(value, reader[1]))
        else:
            result[name] = _scalar(value, reader)
    return result


def _scalar(value: int | bytes, reader: Any) -> Any:
    if isinstance(reader, dict):
        return _message(value, reader)  # type: ignore[arg-type]
    if reader == "raw":
        return value
    if reader == "string":
        return value.decode()  # type: ignore[union-attr]
    if reader == "bytes":
        return base64.b64encode(value).decode()  # type: ignore[arg-type]
    if reader == "bool":
        return bool(value)
    if reader == "int":
        return value
    if reader == "time":
        seconds = dict(_fields(value)).get(1, 0)  # type: ignore[arg-type]
        return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise AssertionError(f"unknown reader {reader!r}")
