"""Verify check results, and how a run's results are shown to a person.

Each verify check returns one :class:`CheckResult`: a stable id (``token_config_present``), a
title, a status (pass, fail, warn, skip), a one-line summary, the evidence it saw, and, once the
whole run is in, the diagnoses that explain a failure (:func:`with_diagnoses`, which applies the
catalogue of :mod:`aksmetrics.diagnosis` to the evidence of every check together).

Renderers turn results into a terminal table (:func:`render_table`), rows for a Prefect table
artifact (:func:`table_rows`) and a markdown report (:func:`render_markdown`);
:func:`publish_artifacts` publishes both. Evidence never holds secrets, so neither do they.

This module is pure; Prefect is imported only inside :func:`publish_artifacts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from aksmetrics.diagnosis import Diagnosis, Evidence, Symptom, diagnose, triggered_by

__all__ = [
    "CHECKS",
    "CheckResult",
    "Evidence",
    "Status",
    "Symptom",
    "any_failed",
    "conclude",
    "publish_artifacts",
    "render_markdown",
    "render_table",
    "skipped",
    "summary",
    "table_rows",
    "with_diagnoses",
]


class Status(StrEnum):
    """A check's verdict. Only ``fail`` fails a run; ``warn`` is shown, ``skip`` explained."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


# Every check of a verify run, in the order they are reported: the runbook's checklist (section 5)
# first, then the checks its debugging history calls for, then the end-to-end canary.
CHECKS: dict[str, str] = {
    "operator_running": "OpenTelemetry operator running",
    "collector_running": "OpenTelemetry collector running",
    "ama_metrics_running": "ama-metrics running",
    "mdsd_errors_free": "mdsd.err free of errors",
    "token_config_present": "TokenConfig.json present",
    "metrics_extension_running": "MetricsExtension running",
    "names_resolve_privately": "Azure Monitor names resolve to private IPs",
    "cluster_associations": "Cluster associations include configurationAccessEndpoint",
    "configuration_endpoint_region": "Configuration endpoint in the cluster's region",
    "endpoints_in_scope": "Both endpoints are scoped resources of the AMPLS",
    "private_endpoint_approved": "Private endpoint approved",
    "zone_group_records": "DNS zone group holds the records",
    "zones_linked": "Private DNS zones linked to the VNet",
    "rules_name_endpoints": "Each rule names its endpoint",
    "pod_monitor_ports": "PodMonitor ports exist on the collector pods",
    "ampls_limits": "AMPLS limits hold",
    "canary": "Canary metric reaches the workspace",
}


class CheckResult(BaseModel):
    """What one check concluded, the evidence it saw, and the diagnoses of a failure."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    status: Status
    summary: str
    evidence: tuple[Evidence, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL

    @property
    def symptoms(self) -> set[Symptom]:
        """The symptoms this check observed."""
        return {item.symptom for item in self.evidence if item.symptom is not None}

    @property
    def causes(self) -> list[str]:
        """The ids of the causes diagnosed for this check."""
        return [diagnosis.cause for diagnosis in self.diagnoses]


def conclude(
    check_id: str,
    evidence: Iterable[Evidence],
    *,
    passed: str,
    failed: str | None = None,
    warn_only: Iterable[Symptom] = (),
) -> CheckResult:
    """The result of a check from its evidence: it fails when any evidence shows a symptom.

    ``passed`` summarises a clean result. A failing summary is ``failed`` when given, otherwise the
    first symptom's evidence. Symptoms in ``warn_only`` give ``warn`` instead of ``fail``.
    """
    evidence = tuple(evidence)
    warn_symptoms = set(warn_only)
    troubles = [item for item in evidence if item.symptom is not None]
    if not troubles:
        status, text = Status.PASS, passed
    else:
        serious = [item for item in troubles if item.symptom not in warn_symptoms]
        status = Status.FAIL if serious else Status.WARN
        text = failed or (serious or troubles)[0].line()
    return CheckResult(
        id=check_id,
        title=CHECKS.get(check_id, check_id),
        status=status,
        summary=text,
        evidence=evidence,
    )


def skipped(check_id: str, reason: str) -> CheckResult:
    """A check that was not run, and why (e.g. the canary turned off for this environment)."""
    return CheckResult(
        id=check_id, title=CHECKS.get(check_id, check_id), status=Status.SKIP, summary=reason
    )


def with_diagnoses(results: Sequence[CheckResult]) -> list[CheckResult]:
    """The results with their diagnoses attached, judged on the evidence of all checks together.

    A result gets the causes its own evidence triggered; a failing result whose evidence only
    corroborates causes triggered elsewhere (MetricsExtension down because TokenConfig.json is
    missing) gets those, so that every failure points at what to repair.
    """
    everything = [item for result in results for item in result.evidence]
    diagnoses = diagnose(everything)

    attached = []
    for result in results:
        mine = set(result.evidence)
        own = [d for d in diagnoses if triggered_by(d, mine)]
        if not own and result.status in (Status.FAIL, Status.WARN):
            own = [d for d in diagnoses if mine & set(d.evidence)]
        attached.append(result.model_copy(update={"diagnoses": tuple(own)}))
    return attached


def any_failed(results: Iterable[CheckResult]) -> bool:
    return any(result.failed for result in results)


def summary(results: Iterable[CheckResult]) -> str:
    """A one-line count by status, e.g. ``14 passed, 2 failed, 1 skipped``."""
    counts = Counter(result.status for result in results)
    words = {
        Status.PASS: "passed",
        Status.FAIL: "failed",
        Status.WARN: "warned",
        Status.SKIP: "skipped",
    }
    parts = [f"{counts[status]} {words[status]}" for status in Status if counts[status]]
    return ", ".join(parts) or "no checks"


def table_rows(results: Sequence[CheckResult]) -> list[dict[str, str]]:
    """Rows for :func:`prefect.artifacts.create_table_artifact`, one per check."""
    return [
        {
            "check": result.id,
            "status": result.status.value,
            "title": result.title,
            "summary": result.summary,
            "cause": ", ".join(result.causes),
            "repair": "; ".join(
                d.repair_note or ", ".join(d.repair_steps) or "manual" for d in result.diagnoses
            ),
        }
        for result in results
    ]


def render_table(results: Sequence[CheckResult], *, width: int = 120) -> str:
    """A plain-text table for the terminal; failing checks show cause, evidence and repair."""
    if not results:
        return "(no checks)"
    title_width = min(48, max(len("CHECK"), *(len(result.title) for result in results)))
    lines = [f"{'STATUS':<6}  {'CHECK':<{title_width}}  SUMMARY"]
    indent = " " * 8
    for result in results:
        head = (
            f"{result.status.value.upper():<6}  {_cut(result.title, title_width):<{title_width}}  "
        )
        lines.append(head + _cut(result.summary, max(20, width - len(head))))
        if result.status in (Status.FAIL, Status.WARN):
            for diagnosis in result.diagnoses:
                lines.append(f"{indent}cause: {diagnosis.cause} ({diagnosis.title})")
                for item in diagnosis.evidence[:4]:
                    lines.append(f"{indent}  seen: {_cut(item.line(), width - len(indent) - 8)}")
                lines.append(f"{indent}  repair: {diagnosis.repair}")
            if not result.diagnoses:
                for item in [e for e in result.evidence if e.symptom][:4]:
                    lines.append(f"{indent}seen: {_cut(item.line(), width - len(indent) - 6)}")
    lines.append(summary(results))
    return "\n".join(lines)


def render_markdown(results: Sequence[CheckResult], *, title: str) -> str:
    """A markdown report: the table, then each failing check with its evidence and diagnoses."""
    lines = [f"# {title}", "", summary(results), ""]
    lines += ["| status | check | summary | cause |", "|---|---|---|---|"]
    for result in results:
        cells = [result.status.value, result.title, result.summary, ", ".join(result.causes)]
        lines.append("| " + " | ".join(_markdown_cell(cell) for cell in cells) + " |")

    troubled = [result for result in results if result.status in (Status.FAIL, Status.WARN)]
    for result in troubled:
        lines += ["", f"## {result.status.value}: {result.title} (`{result.id}`)", ""]
        lines += ["Evidence:", ""]
        lines += [f"- {item.subject}: `{_inline_code(item.observed)}`" for item in result.evidence]
        for diagnosis in result.diagnoses:
            lines += [
                "",
                f"### Cause: {diagnosis.title} (`{diagnosis.cause}`)",
                "",
                diagnosis.explanation,
                "",
                f"**Fix:** {diagnosis.fix}",
                "",
                f"**Repair:** {diagnosis.repair}",
            ]
    return "\n".join(lines) + "\n"


def publish_artifacts(results: Sequence[CheckResult], *, key: str, title: str) -> None:
    """Publish the results as a Prefect table artifact (``key``) and markdown (``key``-report).

    Must be called inside a flow or task run; Prefect is imported here so that the rest of this
    module stays importable without it.
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(
        table=table_rows(results), key=key, description=f"{title}: {summary(results)}"
    )
    create_markdown_artifact(
        markdown=render_markdown(results, title=title), key=f"{key}-report", description=title
    )


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def _inline_code(text: str) -> str:
    return " ".join(text.split()).replace("`", "'")
