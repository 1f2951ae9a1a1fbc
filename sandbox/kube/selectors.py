"""Label and field selectors, in their query-string form and their object form.

The query form is what `?labelSelector=` carries (`app=x,tier!=db,env in (a,b),!legacy`); the
object form is a `LabelSelector` (`matchLabels` + `matchExpressions`) inside a Deployment,
DaemonSet or PodMonitor. Both compile to a list of `Requirement`s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.kube.errors import bad_request


@dataclass(frozen=True)
class Requirement:
    """One condition on one label: `key op values` (op: =, !=, in, notin, exists, !)."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        match self.op:
            case "=" | "==" | "in":
                return present and value in self.values
            case "!=" | "notin":
                return not present or value not in self.values
            case "exists":
                return present
            case "!":
                return not present
        raise AssertionError(f"unknown selector operator {self.op}")


# One requirement of the query form; `in`/`notin` need a space before the parenthesis.
_SET_REQ = re.compile(r"^\s*(!?)\s*([\w./-]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_REQ = re.compile(r"^\s*([\w./-]+)\s*(==|!=|=)\s*([\w.-]*)\s*$")
_EXISTS_REQ = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


def _split_requirements(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` value lists."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """The requirements of a `labelSelector` query value; 400 BadRequest when malformed."""
    if not text:
        return []
    requirements = []
    for part in _split_requirements(text):
        if match := _SET_REQ.match(part):
            bang, key, op, values = match.groups()
            if bang:
                raise bad_request(f"unable to parse requirement: {part!r}")
            items = tuple(v.strip() for v in values.split(",") if v.strip())
            requirements.append(Requirement(key, op, items))
        elif match := _EQ_REQ.match(part):
            key, op, value = match.groups()
            requirements.append(Requirement(key, op, (value,)))
        elif match := _EXISTS_REQ.match(part):
            bang, key = match.groups()
            requirements.append(Requirement(key, "!" if bang else "exists"))
        else:
            raise bad_request(f"unable to parse requirement: found '{part.strip()}'")
    return requirements


def selector_requirements(selector: Mapping[str, Any] | None) -> list[Requirement]:
    """The requirements of a `LabelSelector` object (matchLabels and matchExpressions)."""
    if not selector:
        return []
    requirements = [
        Requirement(key, "=", (str(value),))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in selector.get("matchExpressions") or []:
        op = operators.get(expression.get("operator", ""))
        if op is None:
            raise bad_request(
                f"{expression.get('operator')!r} is not a valid label selector operator"
            )
        requirements.append(
            Requirement(expression["key"], op, tuple(expression.get("values") or ()))
        )
    return requirements


def labels_match(requirements: list[Requirement], labels: Mapping[str, str] | None) -> bool:
    labels = labels or {}
    return all(requirement.matches(labels) for requirement in requirements)


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a `LabelSelector` object selects these labels. An empty selector selects all."""
    return labels_match(selector_requirements(selector), labels)


def equality_selector_matches(
    selector: Mapping[str, str] | None, labels: Mapping[str, str]
) -> bool:
    """A Service's plain `spec.selector` map; an empty one selects nothing (as for Services)."""
    if not selector:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class FieldRequirement:
    """One `fieldSelector` term: a dotted field path, = or !=, and a value."""

    path: str
    op: str
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        current: Any = obj
        for part in self.path.split("."):
            current = current.get(part) if isinstance(current, Mapping) else None
        actual = "" if current is None else str(current)
        if isinstance(current, bool):
            actual = str(current).lower()
        return (actual == self.value) == (self.op in ("=", "=="))


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """The terms of a `fieldSelector` query value (metadata.name=x,status.phase!=Running)."""
    if not text:
        return []
    requirements = []
    for part in _split_requirements(text):
        match = re.match(r"^\s*([\w.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if match is None:
            raise bad_request(f"invalid field selector: {part!r}")
        requirements.append(FieldRequirement(*match.groups()))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(requirement.matches(obj) for requirement in requirements)
