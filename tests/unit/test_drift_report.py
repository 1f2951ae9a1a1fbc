"""Drift: from a plan's change records and a verify run's results to drifted objects and repairs.

Pure: the change records and check results are built here as provision and verify would return
them, without any server.
"""

from __future__ import annotations

import json

import pytest

from aksmetrics.changes import Change, FieldDiff
from aksmetrics.checks import CheckResult, Status, conclude, with_diagnoses
from aksmetrics.diagnosis import Evidence, Symptom
from aksmetrics.drift import (
    DriftReport,
    find_drift,
    render_markdown,
    render_table,
    step_for,
    table_rows,
)

CLUSTER = (
    "/subscriptions/f752aff6-b20c-4973-b32b-0a60ba2c6764/resourceGroups/rg-rubicon-koreacentral-01"
    "/providers/Microsoft.ContainerService/managedClusters/aks-rubicon-koreacentral-01"
)
ASSOCIATION = (
    f"{CLUSTER}/providers/Microsoft.Insights/dataCollectionRuleAssociations/"
    "configurationAccessEndpoint"
)
POD_MONITOR = (
    "azmonitoring.coreos.com/v1/PodMonitor/opentelemetry-operator-system/otel-collector-metrics"
)


def change(action: str, plane: str, kind: str, resource_id: str, **extra: object) -> Change:
    return Change(action=action, plane=plane, kind=kind, resource_id=resource_id, **extra)  # type: ignore[arg-type]


def unchanged_plan() -> list[Change]:
    return [
        change(
            "unchanged", "azure", "private link scope", "/…/privateLinkScopes/ampls-rubicon-krc-01"
        ),
        change("unchanged", "kubernetes", "PodMonitor", POD_MONITOR),
    ]


def the_seeds_two_drifts() -> list[Change]:
    """The association deleted and the PodMonitor's port changed, as a plan reports them."""
    return [
        change("would create", "azure", "data collection rule association", ASSOCIATION),
        change(
            "would update",
            "kubernetes",
            "PodMonitor",
            POD_MONITOR,
            fields=(
                FieldDiff(
                    path="spec.podMetricsEndpoints[0].port",
                    actual="prometheus-dev",
                    desired="prometheus",
                ),
            ),
        ),
        change(
            "would restart",
            "kubernetes",
            "Deployment",
            "apps/v1/Deployment/kube-system/ama-metrics",
            note="its Azure side changed",
        ),
        *unchanged_plan(),
    ]


def failing(check_id: str, symptom: Symptom, observed: str) -> CheckResult:
    return conclude(
        check_id, [Evidence(subject=check_id, observed=observed, symptom=symptom)], passed="ok"
    )


def passing(check_id: str) -> CheckResult:
    return conclude(check_id, [Evidence(subject=check_id, observed="fine")], passed="ok")


def test_a_plan_with_nothing_to_write_and_passing_checks_is_no_drift() -> None:
    found = find_drift("rubicon-krc-01", unchanged_plan(), [passing("token_config_present")])

    assert not found.drifted
    assert found.repair_steps() == []
    assert found.summary() == "rubicon-krc-01: no drift"


def test_objects_a_plan_would_write_are_drift_with_their_differing_fields() -> None:
    found = find_drift("rubicon-krc-01", the_seeds_two_drifts(), [])

    assert [(item.kind, item.action) for item in found.objects] == [
        ("data collection rule association", "would create"),
        ("PodMonitor", "would update"),
    ]
    pod_monitor = found.objects[1]
    assert [field.path for field in pod_monitor.fields] == ["spec.podMetricsEndpoints[0].port"]
    assert "prometheus-dev -> prometheus" in pod_monitor.describe()


def test_a_planned_restart_is_a_consequence_not_drift() -> None:
    found = find_drift("rubicon-krc-01", the_seeds_two_drifts(), [])

    assert "Deployment" not in {item.kind for item in found.items}


def test_the_repair_runs_the_steps_that_own_the_drifted_objects_in_provision_order() -> None:
    found = find_drift("rubicon-krc-01", the_seeds_two_drifts(), [])

    assert found.repair_steps() == [
        "preflight",
        "pod-monitor",
        "configuration-association",
        "restart",
        "wait-healthy",
    ]


def test_failing_checks_are_drift_repaired_by_the_steps_their_diagnoses_name() -> None:
    results = with_diagnoses(
        [
            failing(
                "cluster_associations",
                Symptom.CONFIGURATION_ASSOCIATION_MISSING,
                "no configurationAccessEndpoint association",
            ),
            passing("operator_running"),
        ]
    )
    found = find_drift("rubicon-krc-01", unchanged_plan(), results)

    assert [item.resource_id for item in found.checks] == ["cluster_associations"]
    assert "configuration-association" in found.checks[0].steps
    assert "configuration_access_endpoint_missing" in found.checks[0].note
    assert found.repair_steps()[-2:] == ["restart", "wait-healthy"]


def test_a_check_whose_cause_needs_a_person_is_reported_but_not_repairable() -> None:
    results = with_diagnoses(
        [failing("ampls_limits", Symptom.AMPLS_PER_VNET_EXCEEDED, "2 AMPLS serve this VNet")]
    )
    found = find_drift("rubicon-krc-01", unchanged_plan(), results)

    assert found.drifted
    assert [item.resource_id for item in found.unrepairable] == ["ampls_limits"]
    assert found.repair_steps() == []


def test_an_object_the_project_does_not_own_is_drift_but_never_repaired() -> None:
    refused = change(
        "refused",
        "azure",
        "private endpoint",
        "/…/privateEndpoints/pe-ampls-rubicon-krc-01",
        note="exists without the tag managed-by: aks-metrics-pipeline",
    )
    found = find_drift("rubicon-krc-01", [refused], [])

    assert found.objects[0].action == "refused"
    assert not found.objects[0].repairable
    assert found.repair_steps() == []


def test_a_repair_leaves_out_the_step_of_an_object_it_may_not_touch_and_repairs_the_rest() -> None:
    refused_zone = change(
        "refused",
        "azure",
        "private DNS zone",
        "/…/privateDnsZones/privatelink.blob.core.windows.net",
        note="not created by this project",
    )
    missing_link = change("would create", "azure", "virtual network link", "/…/links/x")
    found = find_drift("rubicon-krc-01", [refused_zone, missing_link, *the_seeds_two_drifts()], [])

    steps = found.repair_steps()

    assert "private-dns" not in steps
    assert {"pod-monitor", "configuration-association"} <= set(steps)
    assert [item.kind for item in found.unrepairable] == ["private DNS zone"]
    assert [item.kind for item in found.left_for_a_person()] == [
        "private DNS zone",
        "virtual network link",
    ]


def test_warnings_and_skipped_checks_are_not_drift() -> None:
    skipped = CheckResult(id="canary", title="Canary", status=Status.SKIP, summary="off")
    warned = CheckResult(id="mdsd_errors_free", title="mdsd", status=Status.WARN, summary="old")

    assert not find_drift("rubicon-krc-01", [], [skipped, warned]).drifted


@pytest.mark.parametrize(
    ("kind", "plane", "step"),
    [
        ("private link scope", "azure", "private-link-scope"),
        ("private link scoped resource", "azure", "scoped-resources"),
        ("private endpoint", "azure", "private-endpoint"),
        ("DNS zone group", "azure", "private-endpoint"),
        ("private DNS zone", "azure", "private-dns"),
        ("virtual network link", "azure", "private-dns"),
        ("data collection rule", "azure", "rule-endpoints"),
        ("data collection rule association", "azure", "configuration-association"),
        ("OpenTelemetryCollector", "kubernetes", "collector"),
        ("PodMonitor", "kubernetes", "pod-monitor"),
        ("CustomResourceDefinition", "kubernetes", "operator"),
        ("Secret", "kubernetes", "operator"),
    ],
)
def test_each_kind_of_object_is_repaired_by_the_step_that_ensures_it(
    kind: str, plane: str, step: str
) -> None:
    assert step_for(change("would update", plane, kind, "x")) == step


def test_an_azure_kind_no_step_ensures_is_reported_but_not_repairable() -> None:
    found = find_drift("e", [change("would update", "azure", "storage account", "/…/sa")], [])

    assert not found.objects[0].repairable


def test_the_event_payload_is_plain_json_naming_objects_fields_and_checks() -> None:
    results = with_diagnoses(
        [
            failing(
                "pod_monitor_ports", Symptom.PODMONITOR_PORT_UNKNOWN, "prometheus-dev: no such port"
            )
        ]
    )
    found = find_drift("rubicon-krc-01", the_seeds_two_drifts(), results)

    payload = json.loads(json.dumps(found.event_payload(policy="safe")))

    assert payload["environment"] == "rubicon-krc-01"
    assert payload["policy"] == "safe"
    assert {item["resource_id"] for item in payload["objects"]} == {ASSOCIATION, POD_MONITOR}
    pod_monitor = next(item for item in payload["objects"] if item["kind"] == "PodMonitor")
    assert pod_monitor["fields"] == ["spec.podMetricsEndpoints[0].port"]
    assert [item["check"] for item in payload["failing_checks"]] == ["pod_monitor_ports"]
    assert "pod-monitor" in payload["repair_steps"]


def test_the_table_names_each_drifted_object_its_differences_and_repair() -> None:
    found = find_drift("rubicon-krc-01", the_seeds_two_drifts(), [])

    rows = table_rows(found)
    text = render_table(found)

    assert [row["drift"] for row in rows] == ["would create", "would update"]
    assert (
        rows[1]["differences"] == "spec.podMetricsEndpoints[0].port: prometheus-dev -> prometheus"
    )
    assert rows[1]["repair"] == "pod-monitor"
    assert ASSOCIATION in text and "prometheus-dev -> prometheus" in text
    assert text.splitlines()[-1] == "rubicon-krc-01: 2 drifted objects"


def test_the_markdown_report_lists_the_repairs_writes_after_a_repair() -> None:
    found = find_drift("rubicon-krc-01", the_seeds_two_drifts(), [])
    repair = [
        change("created", "azure", "data collection rule association", ASSOCIATION),
        change("unchanged", "azure", "private link scope", "/…/ampls"),
    ]

    before = render_markdown(found, policy="ask")
    after = render_markdown(found, policy="safe", repair=repair)

    assert "## Repair" not in before
    assert "preflight, pod-monitor, configuration-association" in before
    assert f"- created: data collection rule association {ASSOCIATION}" in after
    assert "ampls" not in after.split("## Repair", 1)[1]


def test_an_empty_report_renders_as_no_drift() -> None:
    found = DriftReport(environment="rubicon-krc-01")

    assert render_table(found) == "rubicon-krc-01: no drift"
    assert table_rows(found) == []
