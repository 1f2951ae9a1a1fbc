"""The diagnosis catalogue: what the checks observe is mapped to the right named cause and repair.

Pure: no server, no Prefect run. Tests assert on cause ids, symptoms and evidence, not on wording.
"""

from __future__ import annotations

import pytest

from aksmetrics.checks import CheckResult, Status, conclude, with_diagnoses
from aksmetrics.diagnosis import (
    CATALOGUE,
    CAUSES,
    REPAIR_STEPS,
    Diagnosis,
    Evidence,
    Symptom,
    diagnose,
)

SSL_LINE = (
    "2026-12-03T17:05:08.7036140Z: [HttpClient.cpp:248,SendRequest]Error in SSL handshake: "
    "certificate verify failed"
)
PRIVATE_LINK_403_LINE = (
    "2026-12-03T17:05:31.5031380Z: [McsManager.cpp:391,GetAgentConfigurations]Failed from MCS "
    "path: 403 Data collection endpoint must be used to access configuration over private link."
)


def seen(symptom: Symptom, observed: str = "seen", subject: str = "somewhere") -> Evidence:
    return Evidence(subject=subject, observed=observed, symptom=symptom)


def causes(evidence: list[Evidence]) -> list[str]:
    return [diagnosis.cause for diagnosis in diagnose(evidence)]


def only(diagnoses: list[Diagnosis], cause: str) -> Diagnosis:
    matching = [d for d in diagnoses if d.cause == cause]
    assert len(matching) == 1, [d.cause for d in diagnoses]
    return matching[0]


# -- the catalogue itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "cause",
    [
        "ssl_handshake_tls_inspection",
        "private_link_configuration_403",
        "podmonitor_port_mismatch",
        "rule_without_endpoint",
        "endpoint_not_in_scope",
        "zone_not_linked",
        "record_missing",
        "names_resolve_publicly",
        "token_config_missing",
        "configuration_endpoint_wrong_region",
        "ampls_limit_exceeded",
        "operator_not_running",
        "collector_unschedulable",
    ],
)
def test_the_catalogue_names_every_cause_the_issue_asks_for(cause: str) -> None:
    entry = CAUSES[cause]
    assert entry.title and entry.explanation and entry.fix
    assert entry.triggers


def test_cause_ids_are_unique_and_snake_case() -> None:
    ids = [cause.id for cause in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert all(cause_id.replace("_", "").isalnum() and cause_id.islower() for cause_id in ids)


def test_every_symptom_a_check_can_report_leads_to_some_cause() -> None:
    triggering = set().union(*(cause.triggers for cause in CATALOGUE))
    assert set(Symptom) <= triggering, set(Symptom) - triggering


def test_every_repair_step_is_a_step_of_the_provision_flow() -> None:
    from aksmetrics.steps import STEPS

    assert set(REPAIR_STEPS) <= set(STEPS)
    for cause in CATALOGUE:
        assert set(cause.repair_steps) <= set(STEPS), cause.id


def test_a_cause_without_repair_steps_says_what_a_person_does_instead() -> None:
    for cause in CATALOGUE:
        if not cause.repair_steps:
            assert cause.fix, cause.id


# -- the runbook's three failures ---------------------------------------------------------------


def test_ssl_handshake_in_mdsd_err_is_tls_inspection_repaired_by_the_private_link_steps() -> None:
    evidence = [
        seen(Symptom.MDSD_SSL_HANDSHAKE, SSL_LINE, "kube-system/ama-metrics-x mdsd.err"),
        seen(Symptom.NAME_RESOLVES_PUBLIC, "20.222.143.65 (public)", "global.handler.control…"),
        seen(Symptom.PRIVATE_ENDPOINT_MISSING, "does not exist", "/…/privateEndpoints/pe"),
    ]

    diagnosis = only(diagnose(evidence), "ssl_handshake_tls_inspection")

    assert diagnosis.evidence[0].observed == SSL_LINE
    assert {e.symptom for e in diagnosis.evidence[1:]} == {
        Symptom.NAME_RESOLVES_PUBLIC,
        Symptom.PRIVATE_ENDPOINT_MISSING,
    }
    assert {"private-link-scope", "scoped-resources", "private-endpoint", "private-dns"} <= set(
        diagnosis.repair_steps
    )
    assert diagnosis.repair_steps[-1] == "restart"


def test_the_private_link_403_is_repaired_by_the_configuration_association() -> None:
    evidence = [
        seen(Symptom.MDSD_PRIVATE_LINK_403, PRIVATE_LINK_403_LINE),
        seen(Symptom.CONFIGURATION_ASSOCIATION_MISSING, "no configurationAccessEndpoint"),
    ]

    diagnoses = diagnose(evidence)

    diagnosis = only(diagnoses, "private_link_configuration_403")
    assert diagnosis.evidence[0].observed == PRIVATE_LINK_403_LINE
    assert Symptom.CONFIGURATION_ASSOCIATION_MISSING in {e.symptom for e in diagnosis.evidence}
    assert "configuration-association" in diagnosis.repair_steps
    assert "configuration_access_endpoint_missing" in [d.cause for d in diagnoses]
    assert "ssl_handshake_tls_inspection" not in [d.cause for d in diagnoses]


def test_a_podmonitor_port_no_container_has_is_the_port_mismatch() -> None:
    evidence = [seen(Symptom.PODMONITOR_PORT_UNKNOWN, "port 'prometheus-dev' is not a port")]

    diagnosis = only(diagnose(evidence), "podmonitor_port_mismatch")

    assert diagnosis.repair_steps == ("pod-monitor",)
    assert "prometheus-dev" in diagnosis.evidence[0].observed


# -- the other causes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symptom", "cause", "step"),
    [
        (Symptom.RULE_WITHOUT_ENDPOINT, "rule_without_endpoint", "rule-endpoints"),
        (Symptom.RULE_NAMES_OTHER_ENDPOINT, "rule_without_endpoint", "rule-endpoints"),
        (Symptom.ENDPOINT_NOT_IN_SCOPE, "endpoint_not_in_scope", "scoped-resources"),
        (Symptom.ZONE_NOT_LINKED, "zone_not_linked", "private-dns"),
        (Symptom.ZONE_MISSING, "zone_not_linked", "private-dns"),
        (Symptom.RECORD_MISSING, "record_missing", "private-dns"),
        (Symptom.ZONE_GROUP_MISSING, "record_missing", "private-dns"),
        (Symptom.NAME_RESOLVES_PUBLIC, "names_resolve_publicly", "private-dns"),
        (Symptom.OPERATOR_MISSING, "operator_not_running", "operator"),
        (Symptom.POD_UNSCHEDULABLE_TAINT, "collector_unschedulable", "collector"),
        (Symptom.PODMONITOR_MISSING, "podmonitor_missing", "pod-monitor"),
        (Symptom.PRIVATE_LINK_SCOPE_MISSING, "private_link_scope_missing", "private-link-scope"),
        (Symptom.PRIVATE_ENDPOINT_MISSING, "private_endpoint_missing", "private-endpoint"),
        (
            Symptom.CONFIGURATION_ENDPOINT_WRONG_REGION,
            "configuration_endpoint_wrong_region",
            "configuration-association",
        ),
        (
            Symptom.CONFIGURATION_ASSOCIATION_WRONG_ENDPOINT,
            "configuration_access_endpoint_missing",
            "configuration-association",
        ),
    ],
)
def test_each_symptom_names_its_cause_and_the_repairing_step(
    symptom: Symptom, cause: str, step: str
) -> None:
    diagnosis = only(diagnose([seen(symptom)]), cause)
    assert step in diagnosis.repair_steps


@pytest.mark.parametrize(
    "symptom",
    [
        Symptom.AMPLS_PER_VNET_EXCEEDED,
        Symptom.PRIVATE_ENDPOINTS_PER_AMPLS_EXCEEDED,
        Symptom.AMPLS_PER_RESOURCE_EXCEEDED,
    ],
)
def test_ampls_limits_are_one_cause_that_a_person_must_resolve(symptom: Symptom) -> None:
    diagnosis = only(diagnose([seen(symptom)]), "ampls_limit_exceeded")
    assert diagnosis.repair_steps == ()
    assert "person" in diagnosis.repair


def test_token_config_missing_with_metrics_extension_down_is_one_cause_not_two() -> None:
    evidence = [
        seen(Symptom.TOKEN_CONFIG_MISSING, "cat: can't open"),
        seen(Symptom.METRICS_EXTENSION_NOT_RUNNING, "no MetricsExtension process"),
    ]

    found = causes(evidence)

    assert "token_config_missing" in found
    assert "metrics_extension_down" not in found
    diagnosis = only(diagnose(evidence), "token_config_missing")
    assert {e.symptom for e in diagnosis.evidence} == {
        Symptom.TOKEN_CONFIG_MISSING,
        Symptom.METRICS_EXTENSION_NOT_RUNNING,
    }


def test_metrics_extension_down_with_its_configuration_present_is_its_own_cause() -> None:
    assert causes([seen(Symptom.METRICS_EXTENSION_NOT_RUNNING)]) == ["metrics_extension_down"]


def test_an_unschedulable_collector_is_not_also_reported_as_merely_not_running() -> None:
    found = causes(
        [seen(Symptom.POD_UNSCHEDULABLE_TAINT), seen(Symptom.COLLECTOR_NOT_READY, "Pending")]
    )
    assert "collector_unschedulable" in found
    assert "collector_not_running" not in found


def test_a_podmonitor_selecting_nothing_because_no_collector_runs_blames_the_collector() -> None:
    found = causes([seen(Symptom.PODMONITOR_SELECTS_NO_POD), seen(Symptom.COLLECTOR_MISSING)])
    assert "collector_not_running" in found
    assert "podmonitor_selects_no_pod" not in found


def test_a_canary_that_never_arrived_quotes_what_the_other_checks_saw() -> None:
    port = seen(Symptom.PODMONITOR_PORT_UNKNOWN, "port 'prometheus-dev'")
    missing = seen(Symptom.CANARY_NOT_INGESTED, "not returned within 8 s")

    diagnosis = only(diagnose([missing, port]), "canary_not_ingested")

    assert diagnosis.evidence == (missing, port)
    assert diagnosis.repair_note


def test_no_symptom_means_no_diagnosis() -> None:
    assert diagnose([Evidence(subject="pod", observed="Running, ready")]) == []


def test_the_same_observation_made_by_two_checks_is_quoted_once() -> None:
    twice = [seen(Symptom.PRIVATE_ENDPOINT_MISSING, "does not exist", "/…/pe")] * 2
    diagnosis = only(diagnose(twice), "private_endpoint_missing")
    assert len(diagnosis.evidence) == 1


def test_root_causes_come_before_their_consequences() -> None:
    found = causes(
        [
            seen(Symptom.TOKEN_CONFIG_MISSING),
            seen(Symptom.MDSD_SSL_HANDSHAKE, SSL_LINE),
            seen(Symptom.NAME_RESOLVES_PUBLIC),
        ]
    )
    assert found.index("ssl_handshake_tls_inspection") < found.index("token_config_missing")


# -- attaching diagnoses to check results -------------------------------------------------------


def result(check_id: str, *evidence: Evidence) -> CheckResult:
    return conclude(check_id, evidence, passed="fine")


def test_each_failing_check_gets_the_causes_its_own_evidence_triggered() -> None:
    mdsd = result("mdsd_errors_free", seen(Symptom.MDSD_SSL_HANDSHAKE, SSL_LINE))
    names = result("names_resolve_privately", seen(Symptom.NAME_RESOLVES_PUBLIC, "20.1.2.3"))
    operator = result("operator_running", Evidence(subject="pod", observed="Running, ready"))

    attached = {r.id: r for r in with_diagnoses([mdsd, names, operator])}

    assert attached["mdsd_errors_free"].causes == ["ssl_handshake_tls_inspection"]
    assert attached["names_resolve_privately"].causes == ["names_resolve_publicly"]
    assert attached["operator_running"].status is Status.PASS
    assert attached["operator_running"].diagnoses == ()


def test_a_check_whose_symptom_is_explained_elsewhere_gets_that_explanation() -> None:
    token = result("token_config_present", seen(Symptom.TOKEN_CONFIG_MISSING))
    extension = result("metrics_extension_running", seen(Symptom.METRICS_EXTENSION_NOT_RUNNING))

    attached = {r.id: r for r in with_diagnoses([token, extension])}

    assert attached["metrics_extension_running"].causes == ["token_config_missing"]


def test_a_symptom_given_as_warn_only_warns_and_does_not_fail() -> None:
    warned = conclude(
        "ampls_limits",
        [seen(Symptom.AMPLS_PER_RESOURCE_EXCEEDED)],
        passed="fine",
        warn_only=[Symptom.AMPLS_PER_RESOURCE_EXCEEDED],
    )
    assert warned.status is Status.WARN
    assert not warned.failed
