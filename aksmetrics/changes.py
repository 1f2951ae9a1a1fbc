"""Change records: what one *ensure* step found and did, and how a run's changes are shown.

Every ensure task (and later every drift check, repair and teardown step) returns one
:class:`Change` per object it looked at. A change names the plane (``azure`` or ``kubernetes``), the
kind of object in Azure's or Kubernetes' own words, the resource id, the action, and the fields that
differed between the actual and the desired object. A plan run returns the same records with the
``would …`` actions, so that a plan and the apply run that follows can be compared record by record
(:meth:`Change.applied` turns one into the other).

Renderers turn a list of changes into a terminal table (:func:`render_table`), rows for a Prefect
table artifact (:func:`table_rows`), markdown (:func:`render_markdown`), and publish both
artifacts (:func:`publish_artifacts`). Values are shortened for display; secrets never reach a
change record in the first place (:func:`aksmetrics.desired.diff` redacts them).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Plane = Literal["azure", "kubernetes"]

Action = Literal[
    "unchanged",
    "created",
    "updated",
    "deleted",
    "adopted",
    "restarted",
    "refused",
    "would create",
    "would update",
    "would delete",
    "would adopt",
    "would restart",
]

# What an apply run does for each planned action, and the reverse.
_APPLIED: dict[str, str] = {
    "would create": "created",
    "would update": "updated",
    "would delete": "deleted",
    "would adopt": "adopted",
    "would restart": "restarted",
}
_PLANNED: dict[str, str] = {applied: planned for planned, applied in _APPLIED.items()}

# Actions that wrote (or, in a plan, would write) to a service. Adopting is taking an existing
# object as ours without writing it (a write that completes it is recorded as ``updated``).
WRITE_ACTIONS = frozenset({"created", "updated", "deleted", "restarted"})
PLANNED_WRITE_ACTIONS = frozenset({"would create", "would update", "would delete", "would restart"})

# The order in which a summary counts actions: what changed first, what did not last.
_SUMMARY_ORDER = (
    "created",
    "updated",
    "deleted",
    "restarted",
    "adopted",
    "would create",
    "would update",
    "would delete",
    "would restart",
    "would adopt",
    "refused",
    "unchanged",
)

# Longest value shown in a table cell; certificates and CA bundles are much longer.
_CELL_WIDTH = 60


class FieldDiff(BaseModel):
    """One field that differs: its path in the object (``properties.subnet.id``), both values."""

    model_config = ConfigDict(frozen=True)

    path: str
    actual: Any = None
    desired: Any = None

    def describe(self, width: int = _CELL_WIDTH) -> str:
        return f"{self.path}: {shorten(self.actual, width)} -> {shorten(self.desired, width)}"


class Change(BaseModel):
    """What one step found and did to one object.

    ``resource_id`` is the ARM id for Azure objects, and ``<apiVersion>/<kind>/<namespace>/<name>``
    (see :func:`kubernetes_id`) for Kubernetes objects. ``note`` says why, in a sentence, when the
    action alone does not (a refusal, an adoption, a restart's reason).
    """

    model_config = ConfigDict(frozen=True)

    action: Action
    plane: Plane
    kind: str
    resource_id: str
    fields: tuple[FieldDiff, ...] = Field(default=())
    note: str = ""

    @property
    def is_write(self) -> bool:
        """True when this change wrote to a service (created, updated, deleted, restarted)."""
        return self.action in WRITE_ACTIONS

    @property
    def is_planned_write(self) -> bool:
        """True for the ``would …`` actions of a plan run."""
        return self.action in PLANNED_WRITE_ACTIONS

    def applied(self) -> Change:
        """The record an apply run returns for this planned change (``would create`` → created)."""
        return self.model_copy(update={"action": _APPLIED.get(self.action, self.action)})

    def planned(self) -> Change:
        """The record a plan run returns for this applied change (created → ``would create``)."""
        return self.model_copy(update={"action": _PLANNED.get(self.action, self.action)})

    def line(self) -> str:
        """One log line: the action and the resource id, then the differing field paths."""
        text = f"{self.action}: {self.kind} {self.resource_id}"
        if self.fields:
            text += f" ({', '.join(field.path for field in self.fields)})"
        if self.note:
            text += f" — {self.note}"
        return text


def outcome(
    verb: Literal["create", "update", "delete", "adopt", "restart"], *, plan: bool
) -> Action:
    """The action to record for a write: ``created`` when applied, ``would create`` in a plan."""
    applied = {
        "create": "created",
        "update": "updated",
        "delete": "deleted",
        "adopt": "adopted",
        "restart": "restarted",
    }[verb]
    return _PLANNED[applied] if plan else applied  # type: ignore[return-value]


def kubernetes_id(api_version: str, kind: str, namespace: str | None, name: str) -> str:
    """A readable id for a Kubernetes object: ``apps/v1/Deployment/kube-system/ama-metrics``."""
    return "/".join(part for part in (api_version, kind, namespace, name) if part)


def writes(changes: Iterable[Change]) -> list[Change]:
    """The changes that wrote to a service."""
    return [change for change in changes if change.is_write]


def planned_writes(changes: Iterable[Change]) -> list[Change]:
    """The changes a plan run says an apply run would make."""
    return [change for change in changes if change.is_planned_write]


def summary(changes: Iterable[Change]) -> str:
    """A one-line count by action, e.g. ``3 created, 1 updated, 9 unchanged``."""
    counts = Counter(change.action for change in changes)
    if not counts:
        return "no changes"
    return ", ".join(f"{counts[action]} {action}" for action in _SUMMARY_ORDER if action in counts)


def shorten(value: Any, width: int = _CELL_WIDTH) -> str:
    """A value as compact text, cut to ``width`` characters with an ellipsis."""
    if value is None:
        text = "-"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def table_rows(changes: Sequence[Change]) -> list[dict[str, str]]:
    """Rows for :func:`prefect.artifacts.create_table_artifact`, one per change."""
    return [
        {
            "action": change.action,
            "plane": change.plane,
            "kind": change.kind,
            "resource": change.resource_id,
            "fields": "; ".join(field.describe() for field in change.fields),
            "note": change.note,
        }
        for change in changes
    ]


def render_table(changes: Sequence[Change], *, width: int = 120) -> str:
    """A plain-text table for the terminal: action, kind, resource id, then the differing fields."""
    if not changes:
        return "(no objects)"
    action_width = max(len("ACTION"), *(len(change.action) for change in changes))
    kind_width = max(len("KIND"), *(len(change.kind) for change in changes))
    lines = [f"{'ACTION':<{action_width}}  {'KIND':<{kind_width}}  RESOURCE"]
    for change in changes:
        lines.append(
            f"{change.action:<{action_width}}  {change.kind:<{kind_width}}  {change.resource_id}"
        )
        indent = " " * (action_width + kind_width + 4)
        for field in change.fields:
            lines.append(indent + "  " + field.describe(max(20, (width - len(indent)) // 2 - 4)))
        if change.note:
            lines.append(indent + "  " + change.note)
    lines.append(summary(changes))
    return "\n".join(lines)


def render_markdown(changes: Sequence[Change], *, title: str) -> str:
    """A markdown report: a heading, the summary, and a table of changes with their fields."""
    lines = [f"# {title}", "", summary(changes), ""]
    if changes:
        lines += [
            "| action | plane | kind | resource | fields | note |",
            "|---|---|---|---|---|---|",
        ]
        for row in table_rows(changes):
            cells = [_markdown_cell(row[key]) for key in ("action", "plane", "kind", "resource")]
            cells += [_markdown_cell(row["fields"]), _markdown_cell(row["note"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def publish_artifacts(changes: Sequence[Change], *, key: str, title: str) -> None:
    """Publish the changes as a Prefect table artifact (``key``) and markdown (``key``-report).

    Must be called inside a flow or task run. Prefect is imported here so that the rest of this
    module stays importable (and testable) without it.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(
        table=table_rows(changes), key=key, description=f"{title}: {summary(changes)}"
    )
    create_markdown_artifact(
        markdown=render_markdown(changes, title=title), key=f"{key}-report", description=title
    )
