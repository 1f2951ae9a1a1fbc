"""Desired state: the bodies and manifests built from the example environment, and the diff."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from aksmetrics import desired
from aksmetrics.environment import Environment, load_environment

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_MANIFEST = ROOT / "sandbox" / "data" / "opentelemetry-operator.yaml"

# The runbook's otel-collector.yaml (section 3.2), with the environment's second toleration.
RUNBOOK_COLLECTOR_CONFIG = {
    "receivers": {
        "otlp": {
            "protocols": {
                "grpc": {"endpoint": "0.0.0.0:4317"},
                "http": {"endpoint": "0.0.0.0:4318"},
            }
        }
    },
    "processors": {"batch": {"send_batch_size": 1024, "timeout": "5s"}},
    "exporters": {
        "prometheus": {
            "endpoint": "0.0.0.0:8889",
            "resource_to_telemetry_conversion": {"enabled": True},
        }
    },
    "service": {
        "pipelines": {
            "metrics": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["prometheus"]}
        }
    },
}


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("rubicon-krc-01")


def with_mirror(env: Environment, mirror: str | None) -> Environment:
    operator = env.opentelemetry_operator.model_copy(update={"mirror_registry": mirror})
    return env.model_copy(update={"opentelemetry_operator": operator})


def operator_documents() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(OPERATOR_MANIFEST.read_text()) if doc]


# -- Azure bodies ----------------------------------------------------------------------------


def test_private_link_scope_is_global_tagged_and_carries_the_access_modes(env: Environment) -> None:
    body = desired.private_link_scope(env)

    assert body["location"] == "global"
    assert body["tags"] == {"managed-by": "aks-metrics-pipeline"}
    assert body["properties"]["accessModeSettings"] == {
        "ingestionAccessMode": "Open",
        "queryAccessMode": "Open",
    }


def test_both_endpoints_are_scoped_each_under_its_own_name(env: Environment) -> None:
    scoped = desired.scoped_endpoints(env)

    assert [endpoint for _, endpoint in scoped] == [
        env.endpoint_id("configuration"),
        env.endpoint_id("ingestion"),
    ]
    assert all(
        scoped_id.startswith(env.private_link_scope_id + "/scopedResources/")
        for scoped_id, _ in scoped
    )
    assert len({scoped_id for scoped_id, _ in scoped}) == 2


def test_one_endpoint_playing_both_roles_is_scoped_once(env: Environment) -> None:
    single = env.model_copy(
        update={
            "data_collection_endpoints": env.data_collection_endpoints.model_copy(
                update={"ingestion": None}
            )
        }
    )

    assert len(desired.scoped_endpoints(single)) == 1


def test_private_endpoint_sits_in_the_pe_subnet_and_connects_to_the_ampls_group(
    env: Environment,
) -> None:
    body = desired.private_endpoint(env)
    connection = body["properties"]["privateLinkServiceConnections"][0]["properties"]

    assert body["properties"]["subnet"]["id"].endswith("/subnets/pe-subnet")
    assert connection == {
        "privateLinkServiceId": env.private_link_scope_id,
        "groupIds": ["azuremonitor"],
    }
    assert desired.private_endpoint_differences(body, env) == []


def test_a_portal_made_endpoint_with_another_connection_name_counts_as_the_same(
    env: Environment,
) -> None:
    actual = desired.private_endpoint(env)
    actual["properties"]["privateLinkServiceConnections"][0]["name"] = (
        "pe-ampls-rubicon-krc-01_1234"
    )
    actual["properties"]["subnet"]["id"] = actual["properties"]["subnet"]["id"].upper()

    assert desired.private_endpoint_differences(actual, env) == []


def test_an_endpoint_to_another_service_or_subnet_differs(env: Environment) -> None:
    actual = desired.private_endpoint(env)
    actual["properties"]["subnet"]["id"] = env.aks_subnet_id
    actual["properties"]["privateLinkServiceConnections"][0]["properties"]["groupIds"] = ["blob"]

    paths = [field.path for field in desired.private_endpoint_differences(actual, env)]

    assert paths == [
        "properties.subnet.id",
        "properties.privateLinkServiceConnections[].privateLinkServiceId",
    ]


def test_zone_group_names_all_five_zones_by_id(env: Environment) -> None:
    body = desired.zone_group(env)
    configs = body["properties"]["privateDnsZoneConfigs"]

    assert [config["properties"]["privateDnsZoneId"] for config in configs] == [
        env.zone_id(zone) for zone in env.private_dns.zones
    ]
    assert configs[0]["name"] == "privatelink-monitor-azure-com"
    assert desired.zone_group_missing_zones(body, env) == []


def test_adopting_a_zone_group_keeps_its_other_zones_and_adds_the_missing_ones(
    env: Environment,
) -> None:
    foreign = {"name": "privatelink-vaultcore", "properties": {"privateDnsZoneId": "/x/vault"}}
    monitor = {
        "name": "monitor",
        "properties": {"privateDnsZoneId": env.zone_id("privatelink.monitor.azure.com").lower()},
    }
    policy_group = {"properties": {"privateDnsZoneConfigs": [foreign, monitor]}}

    missing = desired.zone_group_missing_zones(policy_group, env)
    body = desired.zone_group(env, keep=[foreign, monitor])
    zone_ids = [
        config["properties"]["privateDnsZoneId"]
        for config in body["properties"]["privateDnsZoneConfigs"]
    ]

    assert len(missing) == 4 and env.zone_id("privatelink.monitor.azure.com") not in missing
    assert zone_ids[:2] == ["/x/vault", monitor["properties"]["privateDnsZoneId"]]
    assert len(zone_ids) == 6


def test_vnet_link_links_the_cluster_vnet_without_registration(env: Environment) -> None:
    link = desired.virtual_network_link(env)

    assert link["properties"] == {
        "virtualNetwork": {"id": env.vnet_id},
        "registrationEnabled": False,
    }
    assert desired.links_vnet(
        {"properties": {"virtualNetwork": {"id": env.vnet_id.upper()}}}, env.vnet_id
    )


def test_configuration_association_carries_only_the_configuration_endpoint(
    env: Environment,
) -> None:
    body = desired.configuration_association(env)

    assert set(body["properties"]) == {"description", "dataCollectionEndpointId"}
    assert body["properties"]["dataCollectionEndpointId"] == env.endpoint_id("configuration")
    assert desired.is_project_association(body)
    assert not desired.is_project_association({"properties": {"dataCollectionEndpointId": "x"}})


def test_a_rule_is_written_back_whole_with_only_its_endpoint_changed() -> None:
    rule = {
        "id": "/subscriptions/s/.../dataCollectionRules/r",
        "name": "r",
        "type": "Microsoft.Insights/dataCollectionRules",
        "etag": '"1"',
        "location": "koreacentral",
        "kind": "Linux",
        "tags": {"owner": "aks"},
        "systemData": {"createdBy": "someone"},
        "properties": {
            "immutableId": "dcr-1",
            "provisioningState": "Succeeded",
            "dataSources": {"prometheusForwarder": [{"name": "PrometheusDataSource"}]},
            "destinations": {"monitoringAccounts": [{"name": "MonitoringAccount1"}]},
            "dataFlows": [{"streams": ["Microsoft-PrometheusMetrics"]}],
            "futureProperty": {"kept": True},
        },
    }

    body = desired.rule_with_endpoint(rule, "/subscriptions/s/dce")

    assert set(body) == {"location", "kind", "tags", "properties"}
    assert body["properties"]["dataCollectionEndpointId"] == "/subscriptions/s/dce"
    assert body["properties"]["futureProperty"] == {"kept": True}
    assert "immutableId" not in body["properties"] and "provisioningState" not in body["properties"]
    assert "dataCollectionEndpointId" not in rule["properties"], "the rule read must not be changed"


# -- Kubernetes manifests ------------------------------------------------------------------


def test_collector_is_the_runbooks_config_with_the_environments_tolerations(
    env: Environment,
) -> None:
    manifest = desired.collector(env)

    assert manifest["apiVersion"] == "opentelemetry.io/v1beta1"
    assert manifest["metadata"]["labels"] == {"aks-metrics-pipeline/environment": "rubicon-krc-01"}
    assert manifest["spec"]["config"] == RUNBOOK_COLLECTOR_CONFIG
    assert manifest["spec"]["mode"] == "deployment" and manifest["spec"]["replicas"] == 1
    assert manifest["spec"]["tolerations"] == [
        {"key": "workload", "operator": "Equal", "value": "general", "effect": "NoSchedule"},
        {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    ]
    assert "image" not in manifest["spec"]


def test_collector_follows_the_environments_ports_and_batch(env: Environment) -> None:
    collector = env.collector.model_copy(
        update={
            "otlp_grpc_port": 14317,
            "batch": env.collector.batch.model_copy(
                update={"send_batch_size": 10, "timeout": "1s"}
            ),
            "prometheus_exporter": env.collector.prometheus_exporter.model_copy(
                update={"port": 9999}
            ),
            "image": "acr.io/otel/collector:1",
        }
    )
    config = desired.collector(env.model_copy(update={"collector": collector}), image="ignored")[
        "spec"
    ]

    assert config["config"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:14317"
    assert config["config"]["processors"]["batch"] == {"send_batch_size": 10, "timeout": "1s"}
    assert config["config"]["exporters"]["prometheus"]["endpoint"] == "0.0.0.0:9999"
    assert config["image"] == "acr.io/otel/collector:1", "the environment's image wins"


def test_pod_monitor_is_the_runbooks_in_the_azure_group(env: Environment) -> None:
    manifest = desired.pod_monitor(env)

    assert manifest["apiVersion"] == "azmonitoring.coreos.com/v1"
    assert manifest["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "opentelemetry-collector",
        "app.kubernetes.io/instance": "opentelemetry-operator-system.otel-collector",
        "app.kubernetes.io/managed-by": "opentelemetry-operator",
    }
    assert manifest["spec"]["podMetricsEndpoints"] == [
        {"port": "prometheus", "path": "/metrics", "interval": "30s"},
        {
            "port": "metrics",
            "path": "/metrics",
            "interval": "30s",
            "metricRelabelings": [
                {"targetLabel": "source", "replacement": "otel-collector", "action": "replace"}
            ],
        },
    ]
    assert "namespaceSelector" not in manifest["spec"]


def test_a_pod_monitor_port_that_names_no_container_port_is_reported(env: Environment) -> None:
    manifest = desired.pod_monitor(env)
    manifest["spec"]["podMetricsEndpoints"][0]["port"] = "prometheus-dev"
    ports = {"otlp-grpc", "otlp-http", "prometheus", "metrics"}

    problems = desired.pod_monitor_port_problems(manifest, ports)

    assert len(problems) == 1
    assert "'prometheus-dev'" in problems[0] and "prometheus" in problems[0]
    assert desired.pod_monitor_port_problems(desired.pod_monitor(env), ports) == []


def test_container_port_names_come_from_every_container() -> None:
    pod_spec = {
        "containers": [
            {
                "name": "otc-container",
                "ports": [{"name": "prometheus", "containerPort": 8889}, {"containerPort": 1}],
            },
            {"name": "sidecar", "ports": [{"name": "metrics", "containerPort": 8888}]},
        ]
    }

    assert desired.container_port_names(pod_spec) == {"prometheus", "metrics"}


# -- the operator manifest -------------------------------------------------------------------


def test_operator_manifest_drops_cert_manager_and_its_annotations(env: Environment) -> None:
    documents = operator_documents()
    result = desired.operator_manifests(documents, env, ca_pem="CA")

    kinds = [item["kind"] for item in result]
    assert "Certificate" not in kinds and "Issuer" not in kinds
    assert len(result) == len(documents) - 2
    for item in result:
        annotations = item["metadata"].get("annotations") or {}
        assert desired.CERT_MANAGER_INJECT_ANNOTATION not in annotations
        assert item["metadata"]["labels"]["aks-metrics-pipeline/environment"] == "rubicon-krc-01"


def test_operator_manifest_carries_the_ca_in_every_webhook_and_the_crd_conversion(
    env: Environment,
) -> None:
    bundle = base64.b64encode(b"-----BEGIN CERTIFICATE-----").decode()
    result = desired.operator_manifests(
        operator_documents(), env, ca_pem="-----BEGIN CERTIFICATE-----"
    )

    webhooks = [
        webhook
        for item in result
        if item["kind"].endswith("WebhookConfiguration")
        for webhook in item["webhooks"]
    ]
    conversions = [
        item["spec"]["conversion"]["webhook"]["clientConfig"]
        for item in result
        if item["kind"] == "CustomResourceDefinition"
        and item["spec"].get("conversion", {}).get("strategy") == "Webhook"
    ]
    assert webhooks and all(webhook["clientConfig"]["caBundle"] == bundle for webhook in webhooks)
    assert conversions and all(config["caBundle"] == bundle for config in conversions)


def test_operator_manifest_is_not_changed_in_place(env: Environment) -> None:
    documents = operator_documents()
    before = yaml.safe_dump_all(documents)

    desired.operator_manifests(documents, with_mirror(env, "acr.io/mirror"), ca_pem="CA")

    assert yaml.safe_dump_all(documents) == before


def test_images_move_to_the_mirror_keeping_their_path_and_tag(env: Environment) -> None:
    result = desired.operator_manifests(
        operator_documents(), with_mirror(env, "acr.io/mirror"), ca_pem="CA"
    )

    assert desired.operator_image(result) == (
        "acr.io/mirror/open-telemetry/opentelemetry-operator/opentelemetry-operator:0.158.0"
    )
    assert desired.operator_image(
        desired.operator_manifests(operator_documents(), env, ca_pem="CA")
    ) == ("ghcr.io/open-telemetry/opentelemetry-operator/opentelemetry-operator:0.158.0")


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/open-telemetry/x:1", "m.io/p/open-telemetry/x:1"),
        ("localhost:5000/x:1", "m.io/p/x:1"),
        ("library/busybox:1", "m.io/p/library/busybox:1"),
        ("busybox", "m.io/p/library/busybox"),
        ("quay.io/brancz/kube-rbac-proxy@sha256:abc", "m.io/p/brancz/kube-rbac-proxy@sha256:abc"),
    ],
)
def test_mirror_image_drops_only_the_source_registry(image: str, expected: str) -> None:
    assert desired.mirror_image(image, "m.io/p") == expected
    assert desired.mirror_image(image, None) == image


def test_image_flags_and_related_image_variables_are_mirrored_too(env: Environment) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "op", "namespace": "ns"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "manager",
                            "image": "ghcr.io/o/op:1",
                            "args": ["--collector-image=ghcr.io/o/col:1", "--zap-log-level=info"],
                            "env": [
                                {"name": "RELATED_IMAGE_COLLECTOR", "value": "ghcr.io/o/col:1"}
                            ],
                        }
                    ]
                }
            }
        },
    }

    [result] = desired.operator_manifests([deployment], with_mirror(env, "m.io"), ca_pem="CA")
    container = result["spec"]["template"]["spec"]["containers"][0]

    assert container["args"] == ["--collector-image=m.io/o/col:1", "--zap-log-level=info"]
    assert container["env"][0]["value"] == "m.io/o/col:1"


def test_default_collector_image_follows_the_operator_release_through_the_mirror(
    env: Environment,
) -> None:
    documents = operator_documents()

    assert desired.default_collector_image(documents, env) is None, (
        "no mirror: the operator decides"
    )
    assert desired.default_collector_image(documents, with_mirror(env, "m.io")) == (
        "m.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector:0.158.0"
    )


def test_webhook_certificate_target_is_the_secret_the_deployment_mounts() -> None:
    documents = operator_documents()
    namespace, name, names = desired.webhook_certificate_target(documents)
    without_cert_manager = [doc for doc in documents if not desired.is_cert_manager_object(doc)]

    assert (namespace, name) == (
        "opentelemetry-operator-system",
        "opentelemetry-operator-controller-manager-service-cert",
    )
    assert "opentelemetry-operator-webhook-service.opentelemetry-operator-system.svc" in names
    assert desired.webhook_certificate_target(without_cert_manager) == (namespace, name, names)


def test_webhook_secret_holds_cert_key_and_ca_base64(env: Environment) -> None:
    secret = desired.webhook_certificate_secret(
        env, namespace="ns", name="s", certificate_pem="C", key_pem="K", ca_pem="A"
    )

    assert secret["type"] == "kubernetes.io/tls"
    assert {key: base64.b64decode(value).decode() for key, value in secret["data"].items()} == {
        "tls.crt": "C",
        "tls.key": "K",
        "ca.crt": "A",
    }


# -- diff ------------------------------------------------------------------------------------


def test_diff_ignores_what_the_service_added() -> None:
    actual = {
        "metadata": {"name": "x", "uid": "1", "labels": {"a": "1", "b": "2"}},
        "spec": {"ports": [{"name": "p", "port": 1, "protocol": "TCP"}]},
        "status": {"ready": True},
    }
    wanted = {
        "metadata": {"name": "x", "labels": {"a": "1"}},
        "spec": {"ports": [{"name": "p", "port": 1}]},
    }

    assert desired.diff(actual, wanted) == []


def test_diff_names_each_differing_or_missing_field() -> None:
    actual = {"spec": {"replicas": 1, "items": [1, 2]}}
    wanted = {"spec": {"replicas": 2, "items": [1], "mode": "deployment"}}

    found = {field.path: (field.actual, field.desired) for field in desired.diff(actual, wanted)}

    assert found == {
        "spec.replicas": (1, 2),
        "spec.items": ([1, 2], [1]),
        "spec.mode": (None, "deployment"),
    }


def test_diff_compares_arm_ids_and_locations_case_insensitively_but_not_other_strings() -> None:
    actual = {"location": "Global", "id": "/SUBSCRIPTIONS/S/rg", "mode": "open"}
    wanted = {"location": "global", "id": "/subscriptions/s/RG", "mode": "Open"}

    assert [field.path for field in desired.diff(actual, wanted)] == ["mode"]


def test_diff_does_not_confuse_true_with_one() -> None:
    assert [field.path for field in desired.diff({"a": 1}, {"a": True})] == ["a"]
    assert desired.diff({"a": 1.0}, {"a": 1}) == []


def test_diff_never_shows_redacted_values() -> None:
    actual = {"data": {"tls.key": "old-secret"}}
    wanted = {"data": {"tls.key": "new-secret", "ca.crt": "ca"}}

    found = desired.diff(actual, wanted, redact=("data",))

    assert {field.path for field in found} == {"data.tls.key", "data.ca.crt"}
    assert "secret" not in repr(found)


def test_diff_skips_ignored_paths() -> None:
    assert (
        desired.diff({"tags": {}}, {"tags": {"managed-by": "x"}, "a": 1}, ignore=("tags",))[0].path
        == "a"
    )
