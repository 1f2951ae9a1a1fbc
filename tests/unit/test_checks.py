"""The verify checks' judgement, the DNS probe's parser, and the check report renderers.

Each check task is a read around a pure ``evaluate_*`` function; these tests feed those functions
the objects (ARM JSON, Kubernetes objects, exec output) a real service returns, without a server.
"""

from __future__ import annotations

from typing import Any

import pytest

from aksmetrics.checks import (
    CHECKS,
    CheckResult,
    Status,
    conclude,
    render_markdown,
    render_table,
    skipped,
    table_rows,
    with_diagnoses,
)
from aksmetrics.diagnosis import Evidence, Symptom
from aksmetrics.environment import Environment, load_environment
from tasks.ama_metrics import ExecResult
from tasks.canary import CANARY_LABEL, METRIC_NAME, collector_proxy_path, otlp_payload
from tasks.checks import (
    CHECK_IDS,
    CHECK_TASKS,
    classify_mdsd_err,
    describe_pod,
    evaluate_associations,
    evaluate_configuration_region,
    evaluate_limits,
    evaluate_mdsd_err,
    evaluate_pod_monitor,
    evaluate_pods,
    evaluate_private_endpoint,
    evaluate_process_list,
    evaluate_rules,
    evaluate_scope,
    evaluate_token_config,
    evaluate_zone_groups,
    evaluate_zone_links,
    expected_records,
    pick_agent_pod,
)
from tasks.probes import is_private_address, names_to_probe, parse_nslookup, split_host_port

SUBJECT = "kube-system/ama-metrics-abc mdsd.err"


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("rubicon-krc-01")


def symptoms(result: CheckResult) -> set[Symptom]:
    return result.symptoms


def pod(name: str, *, ready: bool = True, phase: str = "Running", **extra: Any) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    conditions += extra.pop("conditions", [])
    return {
        "metadata": {"name": name, "namespace": "ns", **extra.pop("metadata", {})},
        "spec": extra.pop("spec", {}),
        "status": {"phase": phase, "conditions": conditions, **extra},
    }


# -- the check list ------------------------------------------------------------------------------


def test_every_check_task_reports_a_known_check_id() -> None:
    assert len(CHECK_TASKS) == len(CHECK_IDS)
    assert set(CHECK_IDS.values()) | {"canary"} == set(CHECKS)


def test_the_runbook_checklist_comes_first_in_the_report() -> None:
    assert list(CHECKS)[:8] == [
        "operator_running",
        "collector_running",
        "ama_metrics_running",
        "mdsd_errors_free",
        "token_config_present",
        "metrics_extension_running",
        "names_resolve_privately",
        "cluster_associations",
    ]


# -- pods ----------------------------------------------------------------------------------------


def test_a_pod_pending_on_an_untolerated_taint_is_unschedulable() -> None:
    pending = pod(
        "otel-collector-collector-x",
        ready=False,
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) had untolerated taint "
                "{workload: general}.",
            }
        ],
    )
    text, unschedulable = describe_pod(pending)
    assert unschedulable
    assert "untolerated taint" in text

    result = evaluate_pods(
        "collector_running",
        [pending],
        what="collector",
        not_ready=Symptom.COLLECTOR_NOT_READY,
        none_found=Evidence(subject="x", observed="none", symptom=Symptom.COLLECTOR_MISSING),
    )
    assert result.failed
    assert symptoms(result) == {Symptom.POD_UNSCHEDULABLE_TAINT}


def test_ready_pods_pass_and_a_waiting_container_says_why_it_is_not_ready() -> None:
    waiting = pod(
        "op-2",
        ready=False,
        phase="Pending",
        containerStatuses=[
            {"name": "manager", "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    )
    result = evaluate_pods(
        "operator_running",
        [pod("op-1"), waiting],
        what="operator",
        not_ready=Symptom.OPERATOR_NOT_READY,
        none_found=Evidence(subject="x", observed="none", symptom=Symptom.OPERATOR_MISSING),
    )
    assert symptoms(result) == {Symptom.OPERATOR_NOT_READY}
    assert any("ContainerCreating" in item.observed for item in result.evidence)

    assert (
        evaluate_pods(
            "operator_running",
            [pod("op-1")],
            what="operator",
            not_ready=Symptom.OPERATOR_NOT_READY,
            none_found=Evidence(subject="x", observed="none", symptom=Symptom.OPERATOR_MISSING),
        ).status
        is Status.PASS
    )


def test_no_pod_at_all_reports_the_given_missing_evidence() -> None:
    missing = Evidence(subject="ns", observed="no operator pod", symptom=Symptom.OPERATOR_MISSING)
    result = evaluate_pods(
        "operator_running",
        [],
        what="operator",
        not_ready=Symptom.OPERATOR_NOT_READY,
        none_found=missing,
    )
    assert result.evidence == (missing,)


def test_the_agent_pod_looked_into_is_the_newest_ready_one() -> None:
    old = pod("ama-metrics-old", metadata={"creationTimestamp": "2026-01-01T00:00:00Z"})
    new = pod("ama-metrics-new", metadata={"creationTimestamp": "2026-01-02T00:00:00Z"})
    starting = pod(
        "ama-metrics-newest", ready=False, metadata={"creationTimestamp": "2026-01-03T00:00:00Z"}
    )
    assert pick_agent_pod([old, starting, new]) == "ama-metrics-new"
    assert pick_agent_pod([pod("p", phase="Pending", ready=False)]) is None


# -- inside the agent ----------------------------------------------------------------------------


SSL = "2026-12-03T17:05:08Z: [HttpClient.cpp:248,SendRequest]Error in SSL handshake: cert"
FORBIDDEN = (
    "2026-12-03T17:05:31Z: [McsManager.cpp:391]Failed from MCS path: 403 Data collection "
    "endpoint must be used to access configuration over private link."
)
CONSEQUENCE = "2026-12-03T17:05:08Z: [McsManager.cpp:543]Could not obtain configuration from x"


def test_mdsd_err_ssl_lines_are_one_piece_of_evidence_quoting_the_latest_line() -> None:
    text = "\n".join([SSL.replace("17:05:08", "17:04:00"), CONSEQUENCE, SSL, ""])
    evidence = classify_mdsd_err(text, subject=SUBJECT)
    assert [e.symptom for e in evidence] == [Symptom.MDSD_SSL_HANDSHAKE]
    assert evidence[0].observed.startswith(SSL)
    assert "2 such lines" in evidence[0].observed


def test_after_the_ssl_fix_only_the_later_403_is_the_current_problem() -> None:
    evidence = classify_mdsd_err(f"{SSL}\n{SSL}\n{FORBIDDEN}\n", subject=SUBJECT)
    assert [e.symptom for e in evidence if e.symptom] == [Symptom.MDSD_PRIVATE_LINK_403]
    history = [e for e in evidence if e.symptom is None]
    assert len(history) == 1 and history[0].observed.startswith("earlier: ")
    assert "SSL handshake" in history[0].observed


def test_mdsd_err_403_is_recognised() -> None:
    evidence = classify_mdsd_err(FORBIDDEN + "\n", subject=SUBJECT)
    assert [e.symptom for e in evidence] == [Symptom.MDSD_PRIVATE_LINK_403]


def test_a_long_line_is_quoted_with_its_start_and_the_telling_part() -> None:
    long_line = (
        "2026-12-03T17:15:37Z: [McsManager.cpp:391,GetAgentConfigurations]Failed from MCS path "
        + "https://global.handler.control.monitor.azure.com/"
        + "x" * 400
        + " 403: Data collection endpoint must be used to access configuration over private link."
    )
    observed = classify_mdsd_err(long_line, subject=SUBJECT)[0].observed
    assert observed.startswith("2026-12-03T17:15:37Z")
    assert "Data collection endpoint must be used" in observed
    assert len(observed) < 320


def test_mdsd_err_lines_the_catalogue_does_not_know_are_still_errors() -> None:
    evidence = classify_mdsd_err(CONSEQUENCE + "\nsomething else broke\n", subject=SUBJECT)
    assert {e.symptom for e in evidence} == {Symptom.MDSD_OTHER_ERROR}
    assert {e.observed for e in evidence} == {CONSEQUENCE, "something else broke"}


def test_an_empty_or_absent_mdsd_err_passes() -> None:
    assert evaluate_mdsd_err(ExecResult("", "", 0), subject=SUBJECT).status is Status.PASS
    absent = ExecResult("", "cat: can't open 'mdsd.err': No such file or directory\n", 1)
    assert evaluate_mdsd_err(absent, subject=SUBJECT).status is Status.PASS
    assert evaluate_mdsd_err(ExecResult(SSL, "", 0), subject=SUBJECT).failed


def test_an_exec_that_could_not_run_is_a_failed_observation_not_a_pass() -> None:
    broken = ExecResult("", "", None, 'exec: "cat": executable file not found in $PATH')
    result = evaluate_mdsd_err(broken, subject=SUBJECT)
    assert result.failed
    assert symptoms(result) == {Symptom.CHECK_ERROR}


def test_token_config_content_is_measured_never_quoted() -> None:
    secret_looking = '{"token": "s3cr3t-value-never-shown"}'
    result = evaluate_token_config(ExecResult(secret_looking, "", 0), subject="TokenConfig.json")
    assert result.status is Status.PASS
    assert "s3cr3t" not in result.model_dump_json()
    assert "valid JSON" in result.evidence[0].observed


def test_a_missing_token_config_is_the_token_config_symptom() -> None:
    missing = ExecResult("", "cat: can't open 'TokenConfig.json': No such file or directory\n", 1)
    result = evaluate_token_config(missing, subject="TokenConfig.json")
    assert symptoms(result) == {Symptom.TOKEN_CONFIG_MISSING}
    assert "No such file" in result.evidence[0].observed


PS = """PID   USER     TIME  COMMAND
    1 root      0:00 /bin/sh /opt/main.sh
   31 root      0:07 /usr/sbin/mdsd -a -A -e /opt/microsoft/linuxmonagent/mdsd.err
   47 root      0:11 /opt/microsoft/otelcollector/otelcollector --config x.yml
   64 root      0:05 /usr/sbin/MetricsExtension -Logger File -TokenSource AMCS
"""


def test_metrics_extension_in_the_process_list_passes_and_is_quoted() -> None:
    result = evaluate_process_list(ExecResult(PS, "", 0), subject="ps")
    assert result.status is Status.PASS
    assert any("/usr/sbin/MetricsExtension" in e.observed for e in result.evidence)


def test_processes_are_matched_by_executable_not_by_arguments() -> None:
    only_me = "  64 root  0:05 /usr/sbin/MetricsExtension -DataDirectory /etc/mdsd.d/config-cache\n"
    result = evaluate_process_list(ExecResult(only_me, "", 0), subject="ps")
    assert result.status is Status.PASS
    assert any(e.observed == "no mdsd process" for e in result.evidence)


def test_no_metrics_extension_process_is_its_symptom() -> None:
    without = "\n".join(line for line in PS.splitlines() if "MetricsExtension" not in line)
    result = evaluate_process_list(ExecResult(without, "", 0), subject="ps")
    assert symptoms(result) == {Symptom.METRICS_EXTENSION_NOT_RUNNING}


# -- DNS -----------------------------------------------------------------------------------------


BUSYBOX_136 = (
    "Server:\t\t10.0.0.10\n"
    "Address:\t10.0.0.10:53\n"
    "\n"
    "Non-authoritative answer:\n"
    "global.handler.control.monitor.azure.com\tcanonical name = "
    "global.handler.control.privatelink.monitor.azure.com\n"
    "Name:\tglobal.handler.control.privatelink.monitor.azure.com\n"
    "Address: 10.2.0.14\n"
    "\n"
)

BUSYBOX_128 = """Server:    10.0.0.10
Address 1: 10.0.0.10 kube-dns.kube-system.svc.cluster.local

Name:      global.handler.control.monitor.azure.com
Address 1: 20.222.143.65
"""


def test_nslookup_output_gives_the_answer_not_the_server_address() -> None:
    resolution = parse_nslookup(
        "global.handler.control.monitor.azure.com", BUSYBOX_136, exit_code=0, vantage="pod x"
    )
    assert resolution.addresses == ("10.2.0.14",)
    assert resolution.cnames == ("global.handler.control.privatelink.monitor.azure.com",)
    assert resolution.private
    assert resolution.evidence().symptom is None


def test_older_busybox_output_and_a_public_answer() -> None:
    resolution = parse_nslookup(
        "global.handler.control.monitor.azure.com", BUSYBOX_128, exit_code=0, vantage="pod x"
    )
    assert resolution.addresses == ("20.222.143.65",)
    assert resolution.evidence().symptom is Symptom.NAME_RESOLVES_PUBLIC
    assert "20.222.143.65" in resolution.evidence().observed


def test_a_name_that_does_not_exist_is_not_found() -> None:
    output = (
        "Server:\t\t10.0.0.10\nAddress:\t10.0.0.10:53\n\n** server can't find x.example: NXDOMAIN\n"
    )
    resolution = parse_nslookup("x.example", output, exit_code=1, vantage="pod x")
    assert resolution.nxdomain
    assert resolution.evidence().symptom is Symptom.NAME_NOT_FOUND


@pytest.mark.parametrize(
    ("address", "private"),
    [
        ("10.2.0.6", True),
        ("172.16.0.1", True),
        ("192.168.1.1", True),
        ("20.222.143.65", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),
        ("not-an-ip", False),
    ],
)
def test_private_addresses_are_the_ones_a_private_endpoint_can_have(
    address: str, private: bool
) -> None:
    assert is_private_address(address) is private


def test_resolver_addresses_default_to_port_53() -> None:
    assert split_host_port("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert split_host_port("10.0.0.10") == ("10.0.0.10", 53)


def dce(unique: str) -> dict[str, Any]:
    host = f"{unique}.koreacentral-1"
    return {
        "properties": {
            "configurationAccess": {
                "endpoint": f"https://{host}.handler.control.monitor.azure.com"
            },
            "logsIngestion": {"endpoint": f"https://{host}.ingest.monitor.azure.com"},
            "metricsIngestion": {"endpoint": f"https://{host}.metrics.ingest.monitor.azure.com"},
        }
    }


def test_the_names_to_probe_are_the_global_one_then_each_endpoints_configuration_and_metrics() -> (
    None
):
    names = names_to_probe([dce("msprom-ruja"), dce("workspace-bhls")])
    assert names == [
        "global.handler.control.monitor.azure.com",
        "msprom-ruja.koreacentral-1.handler.control.monitor.azure.com",
        "msprom-ruja.koreacentral-1.metrics.ingest.monitor.azure.com",
        "workspace-bhls.koreacentral-1.handler.control.monitor.azure.com",
        "workspace-bhls.koreacentral-1.metrics.ingest.monitor.azure.com",
    ]


# -- Azure ---------------------------------------------------------------------------------------


def association(name: str, **properties: str) -> dict[str, Any]:
    return {
        "id": f"/x/dataCollectionRuleAssociations/{name}",
        "name": name,
        "properties": properties,
    }


def test_associations_pass_with_configuration_access_endpoint_and_a_rule(env: Environment) -> None:
    found = [
        association(
            "configurationAccessEndpoint",
            dataCollectionEndpointId=env.endpoint_id("configuration").lower(),
        ),
        association(
            "ContainerInsightsMetricsExtension",
            dataCollectionRuleId=env.rule_id(env.data_collection_rules[0]),
        ),
    ]
    assert evaluate_associations(env, found).status is Status.PASS


def test_associations_without_configuration_access_endpoint_fail(env: Environment) -> None:
    found = [
        association(
            "ContainerInsightsMetricsExtension",
            dataCollectionRuleId=env.rule_id(env.data_collection_rules[0]),
        )
    ]
    result = evaluate_associations(env, found)
    assert symptoms(result) == {Symptom.CONFIGURATION_ASSOCIATION_MISSING}


def test_configuration_access_endpoint_naming_another_endpoint_fails(env: Environment) -> None:
    found = [
        association("configurationAccessEndpoint", dataCollectionEndpointId="/x/other-dce"),
        association(
            "ContainerInsightsMetricsExtension",
            dataCollectionRuleId=env.rule_id(env.data_collection_rules[0]),
        ),
    ]
    result = evaluate_associations(env, found)
    assert symptoms(result) == {Symptom.CONFIGURATION_ASSOCIATION_WRONG_ENDPOINT}
    assert any("/x/other-dce" in e.observed for e in result.evidence)


def test_no_association_to_any_rule_fails(env: Environment) -> None:
    found = [
        association(
            "configurationAccessEndpoint", dataCollectionEndpointId=env.endpoint_id("configuration")
        )
    ]
    assert symptoms(evaluate_associations(env, found)) == {Symptom.RULE_ASSOCIATION_MISSING}


def test_a_configuration_endpoint_in_another_region_fails(env: Environment) -> None:
    result = evaluate_configuration_region(
        env, {"location": "japaneast"}, {"location": "Korea Central"}
    )
    assert symptoms(result) == {Symptom.CONFIGURATION_ENDPOINT_WRONG_REGION}
    assert (
        evaluate_configuration_region(
            env, {"location": "koreacentral"}, {"location": "Korea Central"}
        ).status
        is Status.PASS
    )


def test_rules_must_name_the_endpoint_of_their_role(env: Environment) -> None:
    first, second = env.data_collection_rules
    result = evaluate_rules(
        env,
        [
            {"properties": {}},
            {"properties": {"dataCollectionEndpointId": env.endpoint_id("configuration")}},
        ],
    )
    assert [e.symptom for e in result.evidence] == [
        Symptom.RULE_WITHOUT_ENDPOINT,
        Symptom.RULE_NAMES_OTHER_ENDPOINT,
    ]
    assert result.evidence[0].subject == env.rule_id(first)
    assert result.evidence[1].subject == env.rule_id(second)
    assert symptoms(evaluate_rules(env, [None, None])) == {Symptom.RULE_MISSING}


def test_both_endpoints_must_be_scoped_resources_of_the_ampls(env: Environment) -> None:
    scoped = [
        {
            "id": "/x/scopedResources/a",
            "properties": {"linkedResourceId": env.endpoint_id("configuration").upper()},
        }
    ]
    result = evaluate_scope(env, {"id": env.private_link_scope_id}, scoped)
    assert symptoms(result) == {Symptom.ENDPOINT_NOT_IN_SCOPE}
    assert [e.subject for e in result.evidence if e.symptom] == [env.endpoint_id("ingestion")]
    assert symptoms(evaluate_scope(env, None, [])) == {Symptom.PRIVATE_LINK_SCOPE_MISSING}


def private_endpoint(env: Environment, status: str) -> dict[str, Any]:
    return {
        "properties": {
            "privateLinkServiceConnections": [
                {
                    "name": "c",
                    "properties": {
                        "privateLinkServiceId": env.private_link_scope_id,
                        "groupIds": ["azuremonitor"],
                        "privateLinkServiceConnectionState": {"status": status},
                    },
                }
            ]
        }
    }


def test_the_private_endpoint_must_exist_and_be_approved(env: Environment) -> None:
    assert evaluate_private_endpoint(env, private_endpoint(env, "Approved")).status is Status.PASS
    pending = evaluate_private_endpoint(env, private_endpoint(env, "Pending"))
    assert symptoms(pending) == {Symptom.PRIVATE_ENDPOINT_NOT_APPROVED}
    assert "Pending" in pending.evidence[0].observed
    assert symptoms(evaluate_private_endpoint(env, None)) == {Symptom.PRIVATE_ENDPOINT_MISSING}


def zone_group(zones: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "id": "/x/privateDnsZoneGroups/default",
        "properties": {
            "privateDnsZoneConfigs": [
                {
                    "properties": {
                        "privateDnsZoneId": f"/x/privateDnsZones/{zone}",
                        "recordSets": [
                            {"recordSetName": name, "ipAddresses": ["10.2.0.4"]} for name in names
                        ],
                    }
                }
                for zone, names in zones.items()
            ]
        },
    }


def test_the_zone_group_must_cover_every_zone_and_hold_each_endpoints_records(
    env: Environment,
) -> None:
    expected = expected_records([dce("msprom-ruja")])
    assert expected["privatelink.monitor.azure.com"] == {
        "global.handler.control",
        "msprom-ruja.koreacentral-1.handler.control",
        "msprom-ruja.koreacentral-1.ingest",
        "msprom-ruja.koreacentral-1.metrics.ingest",
    }
    complete = {zone: [] for zone in env.private_dns.zones}
    complete["privatelink.monitor.azure.com"] = sorted(expected["privatelink.monitor.azure.com"])
    assert evaluate_zone_groups(env, True, [zone_group(complete)], expected).status is Status.PASS

    partial = dict(complete)
    del partial["privatelink.blob.core.windows.net"]
    partial["privatelink.monitor.azure.com"] = ["global.handler.control"]
    result = evaluate_zone_groups(env, True, [zone_group(partial)], expected)
    assert symptoms(result) == {Symptom.ZONE_NOT_IN_ZONE_GROUP, Symptom.RECORD_MISSING}
    missing = {e.subject for e in result.evidence if e.symptom is Symptom.RECORD_MISSING}
    assert "msprom-ruja.koreacentral-1.metrics.ingest.privatelink.monitor.azure.com" in missing


def test_no_zone_group_or_no_private_endpoint(env: Environment) -> None:
    assert symptoms(evaluate_zone_groups(env, True, [], {})) == {Symptom.ZONE_GROUP_MISSING}
    assert symptoms(evaluate_zone_groups(env, False, [], {})) == {Symptom.PRIVATE_ENDPOINT_MISSING}


def link(vnet_id: str, state: str = "Completed") -> dict[str, Any]:
    return {
        "id": "/x/virtualNetworkLinks/l",
        "properties": {"virtualNetwork": {"id": vnet_id}, "virtualNetworkLinkState": state},
    }


def test_each_zone_must_exist_and_be_linked_to_the_clusters_vnet(env: Environment) -> None:
    zones: dict[str, list[dict[str, Any]] | None] = {
        zone: [link(env.vnet_id.upper())] for zone in env.private_dns.zones
    }
    assert evaluate_zone_links(env, zones).status is Status.PASS

    zones["privatelink.monitor.azure.com"] = [link("/x/virtualNetworks/hub")]
    zones["privatelink.blob.core.windows.net"] = None
    result = evaluate_zone_links(env, zones)
    assert symptoms(result) == {Symptom.ZONE_NOT_LINKED, Symptom.ZONE_MISSING}


def test_a_second_ampls_reached_from_the_vnet_exceeds_the_limit(env: Environment) -> None:
    other = env.private_link_scope_id.replace("ampls-rubicon-krc-01", "ampls-other")
    result = evaluate_limits(
        env,
        scopes_in_vnet={env.private_link_scope_id: ["pe-ampls"], other: ["pe-other"]},
        scope={"properties": {"privateEndpointConnections": []}},
        endpoints=[],
    )
    assert symptoms(result) == {Symptom.AMPLS_PER_VNET_EXCEEDED}
    assert any(other in e.observed for e in result.evidence)


def test_a_full_ampls_without_our_private_endpoint_exceeds_the_limit(env: Environment) -> None:
    connections = [
        {"properties": {"privateEndpoint": {"id": f"/x/privateEndpoints/pe-{i}"}}}
        for i in range(10)
    ]
    result = evaluate_limits(
        env,
        scopes_in_vnet={},
        scope={"properties": {"privateEndpointConnections": connections}},
        endpoints=[],
    )
    assert symptoms(result) == {Symptom.PRIVATE_ENDPOINTS_PER_AMPLS_EXCEEDED}


def test_an_endpoint_in_six_ampls_exceeds_the_per_resource_limit(env: Environment) -> None:
    memberships = [{"scopeId": f"scope-{i}"} for i in range(6)]
    result = evaluate_limits(
        env,
        scopes_in_vnet={},
        scope=None,
        endpoints=[
            (
                "configuration",
                env.endpoint_id("configuration"),
                {"properties": {"privateLinkScopedResources": memberships}},
            )
        ],
    )
    assert symptoms(result) == {Symptom.AMPLS_PER_RESOURCE_EXCEEDED}


# -- PodMonitor ----------------------------------------------------------------------------------


def collector_pod(*port_names: str) -> dict[str, Any]:
    ports = [{"name": name, "containerPort": 4000 + i} for i, name in enumerate(port_names)]
    return pod(
        "otel-collector-collector-x",
        spec={"containers": [{"name": "otc-container", "ports": ports}]},
    )


def pod_monitor(*ports: str) -> dict[str, Any]:
    return {
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/component": "opentelemetry-collector"}},
            "podMetricsEndpoints": [{"port": port, "path": "/metrics"} for port in ports],
        }
    }


def test_every_podmonitor_port_must_be_a_container_port_name(env: Environment) -> None:
    pods = [collector_pod("otlp-grpc", "otlp-http", "prometheus", "metrics")]
    assert evaluate_pod_monitor(env, pod_monitor("prometheus", "metrics"), pods).status is (
        Status.PASS
    )

    result = evaluate_pod_monitor(env, pod_monitor("prometheus-dev", "metrics"), pods)
    assert symptoms(result) == {Symptom.PODMONITOR_PORT_UNKNOWN}
    bad = next(e for e in result.evidence if e.symptom)
    assert "podMetricsEndpoints[0]" in bad.subject
    assert "'prometheus-dev'" in bad.observed and "prometheus" in bad.observed


def test_a_missing_podmonitor_or_one_selecting_nothing(env: Environment) -> None:
    assert symptoms(evaluate_pod_monitor(env, None, [])) == {Symptom.PODMONITOR_MISSING}
    assert symptoms(evaluate_pod_monitor(env, pod_monitor("prometheus"), [])) == {
        Symptom.PODMONITOR_SELECTS_NO_POD
    }


# -- the canary's request ------------------------------------------------------------------------


def test_the_canary_is_one_labelled_gauge_sent_to_the_otlp_http_port(env: Environment) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest.FromString(otlp_payload("abc123", now_ns=1))
    metric = request.resource_metrics[0].scope_metrics[0].metrics[0]
    assert metric.name == METRIC_NAME
    point = metric.gauge.data_points[0]
    assert {a.key: a.value.string_value for a in point.attributes} == {CANARY_LABEL: "abc123"}
    assert collector_proxy_path(env) == (
        "/api/v1/namespaces/opentelemetry-operator-system/services/otel-collector-collector:4318"
        "/proxy/v1/metrics"
    )


# -- renderers -----------------------------------------------------------------------------------


def sample_results() -> list[CheckResult]:
    failing = conclude(
        "pod_monitor_ports",
        [
            Evidence(
                subject="PodMonitor | endpoints[0]",
                observed="port 'prometheus-dev'",
                symptom=Symptom.PODMONITOR_PORT_UNKNOWN,
            )
        ],
        passed="fine",
    )
    passing = conclude(
        "operator_running", [Evidence(subject="pod", observed="ready")], passed="1/1 ready"
    )
    return with_diagnoses([passing, failing, skipped("canary", "turned off")])


def test_the_terminal_table_shows_status_cause_evidence_and_repair() -> None:
    text = render_table(sample_results())
    assert "FAIL" in text and "PASS" in text and "SKIP" in text
    assert "podmonitor_port_mismatch" in text
    assert "prometheus-dev" in text
    assert "pod-monitor" in text
    assert text.splitlines()[-1] == "1 passed, 1 failed, 1 skipped"


def test_table_rows_carry_check_status_cause_and_repair() -> None:
    rows = {row["check"]: row for row in table_rows(sample_results())}
    assert rows["pod_monitor_ports"]["status"] == "fail"
    assert rows["pod_monitor_ports"]["cause"] == "podmonitor_port_mismatch"
    assert rows["pod_monitor_ports"]["repair"] == "pod-monitor"
    assert rows["operator_running"]["cause"] == ""


def test_the_markdown_report_escapes_table_cells_and_details_failures() -> None:
    text = render_markdown(sample_results(), title="verify rubicon-krc-01")
    assert text.startswith("# verify rubicon-krc-01")
    assert "`podmonitor_port_mismatch`" in text
    assert "PodMonitor | endpoints[0]" in text  # in the details list, where a pipe is harmless
    for line in text.splitlines():
        if line.startswith("| fail"):
            assert line.count(" | ") == 3
