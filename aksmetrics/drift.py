"""Drift: where an environment's actual state has moved away from its desired state, and what
repairs it.

A drift check looks at three things (see ``flows/drift_check.py``): the provision steps, run as a
plan, compare the Azure plane and the Kubernetes plane with what the environment file asks for,
and the verify checks judge the runtime health. :func:`find_drift` turns both into one
:class:`DriftReport`: one :class:`DriftItem` per object a plan would write (with the fields that
differ) or refuses to touch, and one per failing check (with its diagnosed causes).

Each item names the provision step that repairs it, so that a repair runs only those steps
(:meth:`DriftReport.repair_steps`). Objects the project does not own are reported but never
repaired: the plan marks them ``refused`` and a person decides (provision with ``allow_adopt``).

Renderers give the terminal table, the Prefect table rows and the markdown report; the event
payload (:meth:`DriftReport.event_payload`) is what an automation sees. This module is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from aksmetrics.changes import Change, FieldDiff, shorten
from aksmetrics.checks import CheckResult, Status
from aksmetrics.steps import STEPS

Policy = Literal["report", "safe", "ask"]

# A repair always starts with the preflight and ends by restarting ama-metrics if its Azure side
# changed (or it is unhealthy) and waiting until it is healthy; the provision flow decides whether
# a restart is needed. The drift check runs verify itself afterwards (with the run's canary
# choice), so a repair never asks provision for its ``verify`` step.
_ALWAYS = ("preflight", "restart", "wait-healthy")

# Which provision step ensures an object of each kind (the kinds of aksmetrics.changes records).
_AZURE_KIND_STEPS = {
    "private link scope": "private-link-scope",
    "private link scoped resource": "scoped-resources",
    "private endpoint": "private-endpoint",
    "DNS zone group": "private-endpoint",
    "private DNS zone": "private-dns",
    "virtual network link": "private-dns",
    "data collection rule": "rule-endpoints",
    "data collection rule association": "configuration-association",
}
_KUBERNETES_KIND_STEPS = {"OpenTelemetryCollector": "collector", "PodMonitor": "pod-monitor"}

# Plan actions that mean "actual differs from desired".
_DRIFT_ACTIONS = frozenset({"would create", "would update", "would delete", "would adopt"})


class DriftItem(BaseModel):
    """One drifted object or one failing check, and the provision steps that repair it.

    ``plane`` is ``azure`` or ``kubernetes`` for objects and ``runtime`` for checks. ``action`` is
    the plan's action (``would create``, ``would update``, ``refused``) or ``failing``. ``steps``
    names the provision steps that ensure it, empty when none can (a person acts first);
    ``repairable`` is False for those, and for objects the project does not own.
    """

    model_config = ConfigDict(frozen=True)

    plane: Literal["azure", "kubernetes", "runtime"]
    kind: str
    resource_id: str
    action: str
    fields: tuple[FieldDiff, ...] = ()
    note: str = ""
    steps: tuple[str, ...] = ()
    repairable: bool = True

    def describe(self) -> str:
        """The differing fields, or what the check saw, as one line."""
        if self.fields:
            return "; ".join(field.describe() for field in self.fields)
        return self.note


class DriftReport(BaseModel):
    """What one drift check found in one environment."""

    model_config = ConfigDict(frozen=True)

    environment: str
    items: tuple[DriftItem, ...] = ()

    @property
    def drifted(self) -> bool:
        return bool(self.items)

    @property
    def objects(self) -> list[DriftItem]:
        return [item for item in self.items if item.plane != "runtime"]

    @property
    def checks(self) -> list[DriftItem]:
        return [item for item in self.items if item.plane == "runtime"]

    @property
    def unrepairable(self) -> list[DriftItem]:
        """Items no safe repair can fix: objects not ours, causes that need a person."""
        return [item for item in self.items if not item.repairable]

    def repair_steps(self) -> list[str]:
        """The provision steps a safe repair runs, in the provision flow's order; empty when
        nothing is repairable.

        A step that ensures an object the project may not touch is left out: provision would
        refuse that object again and fail the whole repair. Its other objects wait for a person.
        """
        blocked = {
            step
            for item in self.items
            if not item.repairable and item.plane != "runtime"
            for step in item.steps
        }
        wanted = {step for item in self.items if item.repairable for step in item.steps} - blocked
        if not wanted:
            return []
        wanted.update(_ALWAYS)
        return [step for step in STEPS if step in wanted]

    def left_for_a_person(self) -> list[DriftItem]:
        """Drifted objects a safe repair does not reach: not ours, no step ensures them, or their
        step is left out because it also ensures an object that is not ours."""
        steps = set(self.repair_steps())
        return [item for item in self.objects if not steps & set(item.steps)]

    def summary(self) -> str:
        """One line, e.g. ``2 drifted objects, 1 failing check``."""
        if not self.items:
            return f"{self.environment}: no drift"
        parts = []
        if self.objects:
            parts.append(_count(len(self.objects), "drifted object"))
        if self.checks:
            parts.append(_count(len(self.checks), "failing check"))
        if self.unrepairable:
            parts.append(f"{len(self.unrepairable)} not repairable by a safe repair")
        return f"{self.environment}: {', '.join(parts)}"

    def event_payload(self, *, policy: Policy) -> dict[str, Any]:
        """The payload of the ``aks-metrics.drift.detected`` event: plain JSON, values shortened,
        no secrets (change records never hold any)."""
        return {
            "environment": self.environment,
            "policy": policy,
            "summary": self.summary(),
            "objects": [
                {
                    "plane": item.plane,
                    "kind": item.kind,
                    "resource_id": item.resource_id,
                    "action": item.action,
                    "fields": [field.path for field in item.fields],
                    "differences": item.describe(),
                    "repair_steps": list(item.steps),
                }
                for item in self.objects
            ],
            "failing_checks": [
                {
                    "check": item.resource_id,
                    "summary": item.note,
                    "repair_steps": list(item.steps),
                }
                for item in self.checks
            ],
            "repair_steps": self.repair_steps(),
        }


def find_drift(
    environment: str, changes: Iterable[Change], results: Iterable[CheckResult]
) -> DriftReport:
    """The drift in a plan's change records and a verify run's results."""
    items = [_object_item(change) for change in changes if _is_drift(change)]
    items += [_check_item(result) for result in results if result.status is Status.FAIL]
    return DriftReport(environment=environment, items=tuple(items))


def _is_drift(change: Change) -> bool:
    # A restart is a consequence of drift, not drift itself; the checks judge the agent's health.
    if change.action in ("would restart", "restarted"):
        return False
    return change.action in _DRIFT_ACTIONS or change.action == "refused"


def _object_item(change: Change) -> DriftItem:
    step = step_for(change)
    refused = change.action == "refused"
    return DriftItem(
        plane=change.plane,
        kind=change.kind,
        resource_id=change.resource_id,
        action=change.action,
        fields=change.fields,
        note=change.note,
        steps=(step,) if step else (),
        repairable=not refused and step is not None,
    )


def _check_item(result: CheckResult) -> DriftItem:
    steps: list[str] = []
    for diagnosis in result.diagnoses:
        for name in diagnosis.repair_steps:
            if name not in steps:
                steps.append(name)
    causes = ", ".join(result.causes)
    return DriftItem(
        plane="runtime",
        kind="check",
        resource_id=result.id,
        action="failing",
        note=f"{result.summary} (cause: {causes})" if causes else result.summary,
        steps=tuple(steps),
        repairable=bool(steps),
    )


def step_for(change: Change) -> str | None:
    """The provision step that ensures the object of ``change``.

    Kubernetes objects other than the collector and the PodMonitor come from the operator's
    manifest (CRDs, RBAC, the Deployment, webhooks, the certificate Secret, the namespace).
    """
    if change.plane == "azure":
        return _AZURE_KIND_STEPS.get(change.kind)
    return _KUBERNETES_KIND_STEPS.get(change.kind, "operator")


# -- rendering ----------------------------------------------------------------------------------


def table_rows(report: DriftReport) -> list[dict[str, str]]:
    """Rows for a Prefect table artifact, one per drifted object or failing check."""
    return [
        {
            "plane": item.plane,
            "kind": item.kind,
            "resource": item.resource_id,
            "drift": item.action,
            "differences": item.describe(),
            "repair": ", ".join(item.steps) if item.repairable else "a person (not repairable)",
        }
        for item in report.items
    ]


def render_table(report: DriftReport, *, width: int = 120) -> str:
    """A plain-text table for the terminal: each item, then its differing fields or evidence."""
    if not report.items:
        return report.summary()
    action_width = max(len("DRIFT"), *(len(item.action) for item in report.items))
    kind_width = max(len("KIND"), *(len(item.kind) for item in report.items))
    lines = [f"{'DRIFT':<{action_width}}  {'KIND':<{kind_width}}  RESOURCE"]
    indent = " " * (action_width + kind_width + 6)
    for item in report.items:
        lines.append(
            f"{item.action:<{action_width}}  {item.kind:<{kind_width}}  {item.resource_id}"
        )
        details = [field.describe(max(20, (width - len(indent)) // 2 - 4)) for field in item.fields]
        if item.note and (not item.fields or item.plane == "runtime"):
            details.append(shorten(item.note, width - len(indent)))
        details.append(
            "repair: " + (", ".join(item.steps) if item.repairable else "a person decides")
        )
        lines += [indent + detail for detail in details]
    lines.append(report.summary())
    return "\n".join(lines)


def render_markdown(
    report: DriftReport,
    *,
    policy: Policy,
    repair: Sequence[Change] | None = None,
) -> str:
    """The drift report as markdown: the table, the repair plan, and what a repair changed."""
    lines = [f"# Drift check of {report.environment}", "", report.summary(), ""]
    lines += [f"Repair policy: `{policy}`.", ""]
    if report.items:
        lines += ["| drift | plane | kind | resource | differences | repair |"]
        lines += ["|---|---|---|---|---|---|"]
        for row in table_rows(report):
            cells = [row[key] for key in ("drift", "plane", "kind", "resource", "differences")]
            cells.append(row["repair"])
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        steps = report.repair_steps()
        lines += ["", "A safe repair runs the provision steps: " + (", ".join(steps) or "none")]
        if report.unrepairable:
            lines += ["", "Not repaired automatically (a person decides):", ""]
            lines += [
                f"- {item.kind} `{item.resource_id}`: {item.note}" for item in report.unrepairable
            ]
    if repair is not None:
        written = [change for change in repair if change.is_write]
        lines += ["", "## Repair", ""]
        lines += [f"- {change.line()}" for change in written] or ["- no write was needed"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
