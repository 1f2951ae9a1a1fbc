"""Desired state: pure functions from an :class:`~aksmetrics.environment.Environment` to the ARM
request bodies and Kubernetes manifests the runbook creates, and :func:`diff`, which compares an
actual object with a desired one on the fields we own.

Nothing here calls a service, reads a clock or draws a random number: the same environment (and the
same inputs, such as a CA bundle read from the cluster) always gives the same bodies. Tasks read the
actual objects, build the desired ones here, diff, and write only when the diff is not empty.

What we own, and so what :func:`diff` looks at, is exactly what a builder puts in the desired body:
fields the service adds (ids, provisioning states, defaults, status, fields written by other
managers) are not compared. Tags (Azure) record ownership at creation and are not compared on an
existing object, so that a resource someone else tags is not rewritten for it.

Azure bodies use ARM's wire JSON (camelCase under ``properties``), which every SDK we use accepts as
a plain dict. Kubernetes manifests are plain dicts ready for server-side apply.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Iterable, Sequence
from typing import Any

from aksmetrics import ids
from aksmetrics.changes import FieldDiff
from aksmetrics.environment import (
    ENVIRONMENT_LABEL,
    PROJECT_TAG,
    PROJECT_TAG_VALUE,
    Environment,
    Toleration,
)

# -- names and versions ------------------------------------------------------------------------

# azure-mgmt-monitor 7 has no operations for private link scopes; they are written by id through
# azure-mgmt-resource with this api-version (Terraform's, Bicep AVM's and the docs' template's).
PRIVATE_LINK_SCOPE_API_VERSION = "2021-07-01-preview"
# The association Azure Monitor requires for the endpoint the agent gets its configuration from.
CONFIGURATION_ASSOCIATION = "configurationAccessEndpoint"
# The private link sub-resource (group id) of an Azure Monitor private link scope.
PRIVATE_LINK_GROUP = "azuremonitor"
# Annotation kubectl and we set on a pod template to restart a workload's pods.
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
# cert-manager's annotation asking its CA injector to fill a caBundle; we fill it ourselves.
CERT_MANAGER_INJECT_ANNOTATION = "cert-manager.io/inject-ca-from"
CERT_MANAGER_GROUP = "cert-manager.io"

COLLECTOR_API_VERSION = "opentelemetry.io/v1beta1"
COLLECTOR_KIND = "OpenTelemetryCollector"
POD_MONITOR_API_VERSION = "azmonitoring.coreos.com/v1"
POD_MONITOR_KIND = "PodMonitor"
# The operator's default collector image, used (through the mirror) when the environment names none.
COLLECTOR_IMAGE_REPOSITORY = (
    "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector"
)

# Read-only members of a data collection rule: sent back on a PUT they are at best ignored, so the
# whole-rule write-back drops them.
_RULE_READ_ONLY = ("id", "name", "type", "etag", "systemData")
_RULE_PROPERTIES_READ_ONLY = ("provisioningState", "immutableId", "endpoints", "metadata")

REDACTED = "<redacted>"


def project_tags() -> dict[str, str]:
    """The Azure tags that mark a resource as created by this project."""
    return {PROJECT_TAG: PROJECT_TAG_VALUE}


def environment_labels(env: Environment) -> dict[str, str]:
    """The Kubernetes labels that mark an object as applied by this project for ``env``."""
    return {ENVIRONMENT_LABEL: env.name}


def is_project_tagged(resource: dict[str, Any] | None) -> bool:
    """True when an ARM resource carries the project's ownership tag."""
    tags = (resource or {}).get("tags") or {}
    return any(
        key.lower() == PROJECT_TAG and str(value).lower() == PROJECT_TAG_VALUE
        for key, value in tags.items()
    )


# -- Azure: private link scope and its scoped resources ------------------------------------------


def private_link_scope(env: Environment) -> dict[str, Any]:
    """The AMPLS: a global resource whose access modes come from the environment."""
    scope = env.private_link_scope
    return {
        "location": "global",
        "tags": project_tags(),
        "properties": {
            "accessModeSettings": {
                "ingestionAccessMode": scope.ingestion_access_mode,
                "queryAccessMode": scope.query_access_mode,
            }
        },
    }


def scoped_resource_name(endpoint_name: str) -> str:
    """The name of the scoped resource that puts a data collection endpoint into the AMPLS."""
    return endpoint_name


def scoped_resource(endpoint_id: str) -> dict[str, Any]:
    """A scoped resource linking one data collection endpoint into the AMPLS."""
    return {"properties": {"linkedResourceId": endpoint_id}}


def scoped_endpoints(env: Environment) -> list[tuple[str, str]]:
    """Each data collection endpoint the AMPLS must hold once: (scoped resource id, endpoint id).

    Both roles must be scoped: the agent fetches its configuration through one and ingests through
    the other, and both names must resolve privately.
    """
    result = []
    for role, endpoint in env.distinct_endpoints():
        name = scoped_resource_name(endpoint.name)
        result.append(
            (ids.scoped_resource_id(env.private_link_scope_id, name), env.endpoint_id(role))
        )
    return result


# -- Azure: private endpoint, DNS zone group, zones, links ---------------------------------------


def private_endpoint_connection_name(env: Environment) -> str:
    return f"{env.private_endpoint.name}-connection"


def private_endpoint(env: Environment) -> dict[str, Any]:
    """The private endpoint to the AMPLS in the private-endpoint subnet, group ``azuremonitor``."""
    return {
        "location": env.location,
        "tags": project_tags(),
        "properties": {
            "subnet": {"id": env.private_endpoint_subnet_id},
            "privateLinkServiceConnections": [
                {
                    "name": private_endpoint_connection_name(env),
                    "properties": {
                        "privateLinkServiceId": env.private_link_scope_id,
                        "groupIds": [PRIVATE_LINK_GROUP],
                    },
                }
            ],
        },
    }


def private_endpoint_differences(actual: dict[str, Any], env: Environment) -> list[FieldDiff]:
    """What stops an existing private endpoint from serving the AMPLS: subnet and connection.

    The connection is compared by what it connects to, not by its name, so that an endpoint made
    in the portal (with the portal's connection name) counts as the same endpoint.
    """
    properties = actual.get("properties") or {}
    result = []
    subnet = (properties.get("subnet") or {}).get("id")
    if not ids.same_id(subnet, env.private_endpoint_subnet_id):
        result.append(
            FieldDiff(
                path="properties.subnet.id", actual=subnet, desired=env.private_endpoint_subnet_id
            )
        )
    connections = [
        *(properties.get("privateLinkServiceConnections") or []),
        *(properties.get("manualPrivateLinkServiceConnections") or []),
    ]
    targets = [
        (connection.get("properties") or {}).get("privateLinkServiceId")
        for connection in connections
    ]
    serving = [
        connection
        for connection in connections
        if ids.same_id(
            (connection.get("properties") or {}).get("privateLinkServiceId"),
            env.private_link_scope_id,
        )
        and PRIVATE_LINK_GROUP in ((connection.get("properties") or {}).get("groupIds") or [])
    ]
    if not serving:
        result.append(
            FieldDiff(
                path="properties.privateLinkServiceConnections[].privateLinkServiceId",
                actual=targets or None,
                desired=f"{env.private_link_scope_id} (group {PRIVATE_LINK_GROUP})",
            )
        )
    return result


def connection_status(actual: dict[str, Any], env: Environment) -> str | None:
    """The approval state (``Approved``, ``Pending``) of the endpoint's connection to the AMPLS."""
    properties = actual.get("properties") or {}
    for connection in [
        *(properties.get("privateLinkServiceConnections") or []),
        *(properties.get("manualPrivateLinkServiceConnections") or []),
    ]:
        connection_properties = connection.get("properties") or {}
        if ids.same_id(
            connection_properties.get("privateLinkServiceId"), env.private_link_scope_id
        ):
            state = connection_properties.get("privateLinkServiceConnectionState") or {}
            return state.get("status")
    return None


def zone_config_name(zone: str) -> str:
    """The name of a zone's entry in a DNS zone group: the zone with dots replaced."""
    return zone.replace(".", "-")


def zone_group(env: Environment, *, keep: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The DNS zone group naming every private DNS zone of the environment.

    ``keep`` are entries of an existing (adopted) zone group for zones we do not manage; they stay,
    so that adopting a group never takes a zone away from it.
    """
    configs = [dict(config) for config in keep]
    present = {_zone_of(config).lower() for config in configs}
    for zone in env.private_dns.zones:
        zone_id = env.zone_id(zone)
        if zone_id.lower() not in present:
            configs.append(
                {"name": zone_config_name(zone), "properties": {"privateDnsZoneId": zone_id}}
            )
    return {"properties": {"privateDnsZoneConfigs": configs}}


def zone_group_missing_zones(actual: dict[str, Any], env: Environment) -> list[str]:
    """The environment's zone ids that an existing zone group does not name."""
    present = {_zone_of(config).lower() for config in _zone_configs(actual)}
    return [
        env.zone_id(zone)
        for zone in env.private_dns.zones
        if env.zone_id(zone).lower() not in present
    ]


def _zone_configs(group: dict[str, Any]) -> list[dict[str, Any]]:
    return list((group.get("properties") or {}).get("privateDnsZoneConfigs") or [])


def _zone_of(config: dict[str, Any]) -> str:
    return str((config.get("properties") or {}).get("privateDnsZoneId") or "")


def private_dns_zone() -> dict[str, Any]:
    """A private DNS zone: global, tagged as ours."""
    return {"location": "global", "tags": project_tags()}


def virtual_network_link(env: Environment) -> dict[str, Any]:
    """A link from a private DNS zone to the cluster's VNet, without auto-registration."""
    return {
        "location": "global",
        "tags": project_tags(),
        "properties": {"virtualNetwork": {"id": env.vnet_id}, "registrationEnabled": False},
    }


def links_vnet(link: dict[str, Any], vnet_id: str) -> bool:
    """True when a virtual network link (as ARM returns it) links ``vnet_id``."""
    network = ((link.get("properties") or {}).get("virtualNetwork") or {}).get("id")
    return ids.same_id(network, vnet_id)


# -- Azure: rules and the configuration association ---------------------------------------------


def configuration_association(env: Environment) -> dict[str, Any]:
    """The ``configurationAccessEndpoint`` association: only the configuration endpoint's id.

    The description records that this project wrote it; associations carry no tags.
    """
    return {
        "properties": {
            "description": f"{PROJECT_TAG}: {PROJECT_TAG_VALUE} (environment {env.name})",
            "dataCollectionEndpointId": env.endpoint_id("configuration"),
        }
    }


def is_project_association(association: dict[str, Any] | None) -> bool:
    description = str(((association or {}).get("properties") or {}).get("description") or "")
    return PROJECT_TAG_VALUE in description


def rule_with_endpoint(rule: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
    """The whole rule, as read, with only ``properties.dataCollectionEndpointId`` changed.

    A PUT replaces a rule entirely and there is no PATCH for its properties, so the rule is written
    back whole; read-only members are dropped from the body.
    """
    body = {key: copy.deepcopy(value) for key, value in rule.items() if key not in _RULE_READ_ONLY}
    properties = {
        key: value
        for key, value in (body.get("properties") or {}).items()
        if key not in _RULE_PROPERTIES_READ_ONLY
    }
    properties["dataCollectionEndpointId"] = endpoint_id
    body["properties"] = properties
    return body


# -- Kubernetes: the collector and the PodMonitor -----------------------------------------------


def toleration(item: Toleration) -> dict[str, Any]:
    return {key: value for key, value in item.model_dump().items() if value is not None}


def collector_selector_labels(env: Environment) -> dict[str, str]:
    """The labels the OpenTelemetry operator puts on the collector's pods (and selects them by)."""
    collector = env.collector
    return {
        "app.kubernetes.io/component": "opentelemetry-collector",
        "app.kubernetes.io/instance": f"{collector.namespace}.{collector.name}",
        "app.kubernetes.io/managed-by": "opentelemetry-operator",
    }


def collector_workload_name(env: Environment) -> str:
    """The operator names the collector's workload (and Service) ``<name>-collector``."""
    return f"{env.collector.name}-collector"


def collector_workload_kind(env: Environment) -> str:
    """The kind of workload the operator makes of the collector in its mode."""
    return {"deployment": "Deployment", "daemonset": "DaemonSet", "statefulset": "StatefulSet"}[
        env.collector.mode
    ]


def collector(env: Environment, *, image: str | None = None) -> dict[str, Any]:
    """The OpenTelemetryCollector (v1beta1) of the runbook: OTLP in, batch, Prometheus out.

    The configuration is the runbook's, with the ports, batch settings and tolerations of the
    environment. ``image`` is used when the environment names no image (e.g. the operator's default
    collector image rewritten to the mirror registry); with neither, the operator picks its default.
    """
    settings = env.collector
    spec: dict[str, Any] = {"mode": settings.mode}
    if settings.mode != "daemonset":
        spec["replicas"] = settings.replicas
    chosen = settings.image or image
    if chosen:
        spec["image"] = chosen
    if env.cluster.tolerations:
        spec["tolerations"] = [toleration(item) for item in env.cluster.tolerations]
    spec["config"] = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": f"0.0.0.0:{settings.otlp_grpc_port}"},
                    "http": {"endpoint": f"0.0.0.0:{settings.otlp_http_port}"},
                }
            }
        },
        "processors": {
            "batch": {
                "send_batch_size": settings.batch.send_batch_size,
                "timeout": settings.batch.timeout,
            }
        },
        "exporters": {
            "prometheus": {
                "endpoint": f"0.0.0.0:{settings.prometheus_exporter.port}",
                "resource_to_telemetry_conversion": {
                    "enabled": settings.prometheus_exporter.resource_to_telemetry_conversion
                },
            }
        },
        "service": {
            "pipelines": {
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["prometheus"],
                }
            }
        },
    }
    return {
        "apiVersion": COLLECTOR_API_VERSION,
        "kind": COLLECTOR_KIND,
        "metadata": {
            "name": settings.name,
            "namespace": settings.namespace,
            "labels": environment_labels(env),
        },
        "spec": spec,
    }


def pod_monitor(env: Environment) -> dict[str, Any]:
    """The ``azmonitoring.coreos.com/v1`` PodMonitor through which ama-metrics scrapes the collector

    It selects the collector's pods by the operator's labels; its endpoints name container ports,
    which :func:`pod_monitor_port_problems` checks against the collector's actual ports.
    """
    monitor = env.pod_monitor
    spec: dict[str, Any] = {"selector": {"matchLabels": collector_selector_labels(env)}}
    # A PodMonitor selects pods in its own namespace unless told otherwise.
    if monitor.namespace != env.collector.namespace:
        spec["namespaceSelector"] = {"matchNames": [env.collector.namespace]}
    endpoints = []
    for endpoint in monitor.endpoints:
        item: dict[str, Any] = {
            "port": endpoint.port,
            "path": endpoint.path,
            "interval": endpoint.interval,
        }
        if endpoint.metric_relabelings:
            item["metricRelabelings"] = [dict(rule) for rule in endpoint.metric_relabelings]
        endpoints.append(item)
    spec["podMetricsEndpoints"] = endpoints
    return {
        "apiVersion": POD_MONITOR_API_VERSION,
        "kind": POD_MONITOR_KIND,
        "metadata": {
            "name": monitor.name,
            "namespace": monitor.namespace,
            "labels": environment_labels(env),
        },
        "spec": spec,
    }


def pod_monitor_port_problems(monitor: dict[str, Any], container_ports: Iterable[str]) -> list[str]:
    """Each PodMonitor endpoint whose ``port`` names no container port: such an endpoint scrapes
    nothing, silently (the runbook's ``prometheus-dev`` against ``prometheus``)."""
    ports = sorted(set(container_ports))
    problems = []
    for index, endpoint in enumerate((monitor.get("spec") or {}).get("podMetricsEndpoints") or []):
        port = endpoint.get("port")
        if port is not None and port not in ports:
            problems.append(
                f"podMetricsEndpoints[{index}].port {port!r} names no container port of the "
                f"collector (it has {', '.join(ports) or 'none'})"
            )
    return problems


def container_port_names(pod_spec: dict[str, Any]) -> set[str]:
    """The named container ports of a pod spec (as read from a Deployment's template or a Pod)."""
    return {
        port["name"]
        for container in pod_spec.get("containers") or []
        for port in container.get("ports") or []
        if port.get("name")
    }


# -- Kubernetes: the operator's release manifest -------------------------------------------------


def is_cert_manager_object(manifest: dict[str, Any]) -> bool:
    """True for cert-manager's kinds (Issuer, Certificate, ...), which we do without."""
    group = str(manifest.get("apiVersion", "")).split("/")[0]
    return group == CERT_MANAGER_GROUP or group.endswith("." + CERT_MANAGER_GROUP)


def mirror_image(image: str, mirror: str | None) -> str:
    """An image reference moved to the mirror registry, keeping its repository path and tag.

    ``ghcr.io/open-telemetry/x:1`` with mirror ``acr.io/mirror`` becomes
    ``acr.io/mirror/open-telemetry/x:1``; a Docker Hub short name ``busybox`` becomes
    ``acr.io/mirror/library/busybox``.
    """
    if not mirror:
        return image
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        path = rest  # the first component names a registry: drop it
    elif rest:
        path = image
    else:
        path = f"library/{image}"
    return f"{mirror.rstrip('/')}/{path}"


def image_tag(image: str) -> str | None:
    """The tag of an image reference, or None when it has none (or only a digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else None


def webhook_certificate_target(manifests: Sequence[dict[str, Any]]) -> tuple[str, str, list[str]]:
    """Where the operator expects its webhook serving certificate: (Secret namespace, Secret name,
    DNS names the certificate must cover).

    The cert-manager Certificate of the release manifest names both; without one, the Secret is the
    one the manager Deployment mounts and the names are the webhook Service's.
    """
    for manifest in manifests:
        if manifest.get("kind") == "Certificate" and is_cert_manager_object(manifest):
            spec = manifest.get("spec") or {}
            namespace = (manifest.get("metadata") or {}).get("namespace", "")
            return namespace, spec["secretName"], list(spec.get("dnsNames") or [])
    service = webhook_service(manifests)
    names = (
        [f"{service[1]}.{service[0]}.svc", f"{service[1]}.{service[0]}.svc.cluster.local"]
        if service
        else []
    )
    for manifest in manifests:
        if manifest.get("kind") != "Deployment":
            continue
        for volume in ((manifest.get("spec") or {}).get("template") or {}).get("spec", {}).get(
            "volumes"
        ) or []:
            secret = volume.get("secret") or {}
            if secret.get("secretName") and "cert" in volume.get("name", "") + secret["secretName"]:
                return manifest["metadata"]["namespace"], secret["secretName"], names
    raise ValueError(
        "the operator manifest names no webhook certificate Secret (no cert-manager Certificate "
        "and no Deployment volume from a certificate Secret)"
    )


def webhook_service(manifests: Sequence[dict[str, Any]]) -> tuple[str, str] | None:
    """The (namespace, name) of the Service the manifest's webhooks call, if it has webhooks."""
    for manifest in manifests:
        if manifest.get("kind") in (
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ):
            for webhook in manifest.get("webhooks") or []:
                service = (webhook.get("clientConfig") or {}).get("service") or {}
                if service.get("name"):
                    return service.get("namespace", ""), service["name"]
    return None


def webhook_certificate_secret(
    env: Environment,
    *,
    namespace: str,
    name: str,
    certificate_pem: str,
    key_pem: str,
    ca_pem: str,
) -> dict[str, Any]:
    """The TLS Secret the operator's Deployment mounts, as cert-manager would have written it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": environment_labels(env)},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": _b64(certificate_pem),
            "tls.key": _b64(key_pem),
            "ca.crt": _b64(ca_pem),
        },
    }


def operator_manifests(
    manifests: Iterable[dict[str, Any] | None],
    env: Environment,
    *,
    ca_pem: str,
) -> list[dict[str, Any]]:
    """The operator's release manifest made fit for a closed network without cert-manager.

    - cert-manager kinds are dropped and its ``inject-ca-from`` annotations removed;
    - the CA that signed our webhook certificate is injected as ``caBundle`` into every webhook of
      the webhook configurations and into the CRD conversion webhooks;
    - container images (and ``--*-image=`` flags and ``RELATED_IMAGE_*`` variables) move to the
      mirror registry when the environment names one;
    - the operator's pods tolerate the node pool's taints (``cluster.tolerations``);
    - every object gets the environment label.
    Order is kept; the caller applies CRDs first.
    """
    bundle = _b64(ca_pem)
    mirror = env.opentelemetry_operator.mirror_registry
    result = []
    for manifest in manifests:
        if not manifest or is_cert_manager_object(manifest):
            continue
        item = copy.deepcopy(manifest)
        metadata = item.setdefault("metadata", {})
        annotations = metadata.get("annotations") or {}
        annotations.pop(CERT_MANAGER_INJECT_ANNOTATION, None)
        if annotations:
            metadata["annotations"] = annotations
        else:
            metadata.pop("annotations", None)
        metadata["labels"] = {**(metadata.get("labels") or {}), **environment_labels(env)}

        kind = item.get("kind")
        if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            for webhook in item.get("webhooks") or []:
                webhook.setdefault("clientConfig", {})["caBundle"] = bundle
        elif kind == "CustomResourceDefinition":
            conversion = (item.get("spec") or {}).get("conversion") or {}
            if conversion.get("strategy") == "Webhook":
                conversion.setdefault("webhook", {}).setdefault("clientConfig", {})["caBundle"] = (
                    bundle
                )
        for pod_spec in _pod_specs(item):
            _mirror_pod_spec(pod_spec, mirror)
            _tolerate(pod_spec, env)
        result.append(item)
    return result


def operator_image(manifests: Iterable[dict[str, Any]]) -> str | None:
    """The operator's own image (container ``manager``) as the release manifest names it."""
    for manifest in manifests:
        for pod_spec in _pod_specs(manifest):
            for container in pod_spec.get("containers") or []:
                if container.get("name") == "manager":
                    return container.get("image")
    return None


def default_collector_image(manifests: Iterable[dict[str, Any]], env: Environment) -> str | None:
    """The collector image to pin when the environment names a mirror but no collector image.

    In a closed network the operator's default (on ghcr.io) cannot be pulled; operator and collector
    releases share version numbers, so the operator's tag picks the collector release.
    """
    mirror = env.opentelemetry_operator.mirror_registry
    if not mirror or env.collector.image:
        return None
    image = operator_image(manifests)
    tag = image_tag(image) if image else None
    return mirror_image(f"{COLLECTOR_IMAGE_REPOSITORY}:{tag}", mirror) if tag else None


def _pod_specs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    kind = manifest.get("kind")
    spec = manifest.get("spec") or {}
    if kind == "Pod":
        return [spec]
    if kind in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"):
        return [(spec.get("template") or {}).get("spec") or {}]
    return []


def _tolerate(pod_spec: dict[str, Any], env: Environment) -> None:
    """Add the node pool's taints, as tolerations, to a pod spec: when every node is tainted (the
    runbook's cluster), a pod without them is never scheduled."""
    present = pod_spec.get("tolerations") or []
    wanted = [toleration(item) for item in env.cluster.tolerations]
    missing = [item for item in wanted if item not in present]
    if missing:
        pod_spec["tolerations"] = [*present, *missing]


_IMAGE_FLAG = re.compile(r"^(--[a-z0-9-]*image=)(.+)$")


def _mirror_pod_spec(pod_spec: dict[str, Any], mirror: str | None) -> None:
    if not mirror:
        return
    for container in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
        if container.get("image"):
            container["image"] = mirror_image(container["image"], mirror)
        container_args = container.get("args") or []
        for index, argument in enumerate(container_args):
            match = _IMAGE_FLAG.match(str(argument))
            if match:
                container_args[index] = match.group(1) + mirror_image(match.group(2), mirror)
        for variable in container.get("env") or []:
            if str(variable.get("name", "")).startswith("RELATED_IMAGE_") and variable.get("value"):
                variable["value"] = mirror_image(variable["value"], mirror)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- diff ---------------------------------------------------------------------------------------


def diff(
    actual: Any,
    desired: Any,
    *,
    path: str = "",
    redact: Sequence[str] = (),
    ignore: Sequence[str] = (),
) -> list[FieldDiff]:
    """The fields of ``desired`` whose value in ``actual`` differs (or is missing).

    Only what ``desired`` says is compared: a mapping in ``actual`` may hold more keys, and a list
    element that is a mapping may hold more keys than the desired element at the same index (the
    service adds defaults); lists must have the same length. ARM ids (strings starting with
    ``/subscriptions/``) and ``location`` values compare case-insensitively, as ARM treats them.

    ``redact`` lists path prefixes (e.g. ``data`` of a Secret) whose values never appear in the
    result; ``ignore`` lists path prefixes not compared at all (e.g. ``tags``).
    """
    if any(_under(path, prefix) for prefix in ignore):
        return []
    if isinstance(desired, dict):
        if not isinstance(actual, dict):
            return [_field(path, actual, desired, redact)]
        result = []
        for key, value in desired.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in actual:
                if any(_under(child, prefix) for prefix in ignore):
                    continue
                result.append(_field(child, None, value, redact))
            else:
                result.extend(diff(actual[key], value, path=child, redact=redact, ignore=ignore))
        return result
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(actual) != len(desired):
            return [_field(path, actual, desired, redact)]
        result = []
        for index, (have, want) in enumerate(zip(actual, desired, strict=True)):
            result.extend(diff(have, want, path=f"{path}[{index}]", redact=redact, ignore=ignore))
        return result
    if _equal(path, actual, desired):
        return []
    return [_field(path, actual, desired, redact)]


def _equal(path: str, actual: Any, desired: Any) -> bool:
    case_insensitive = path.rsplit(".", 1)[-1] == "location" or (
        isinstance(desired, str) and desired.lower().startswith("/subscriptions/")
    )
    if case_insensitive and isinstance(actual, str) and isinstance(desired, str):
        return actual.rstrip("/").lower() == desired.rstrip("/").lower()
    # JSON has one number type: 1 and 1.0 are the same value, but True is not 1.
    if isinstance(actual, bool) or isinstance(desired, bool):
        return type(actual) is type(desired) and actual == desired
    return bool(actual == desired)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[")


def _field(path: str, actual: Any, desired: Any, redact: Sequence[str]) -> FieldDiff:
    if any(_under(path, prefix) or _under(prefix, path) for prefix in redact):
        return FieldDiff(
            path=path,
            actual=None if actual is None else REDACTED,
            desired=None if desired is None else REDACTED,
        )
    return FieldDiff(path=path or "(object)", actual=actual, desired=desired)
