"""The diagnosis catalogue: what the verify checks observed, mapped to a named cause and its fix.

A check records what it saw as :class:`Evidence`: where it looked (a resource id, a pod's file, a
DNS name), what it saw there (a log line, an address, an id), and, when the observation is a sign
of trouble, the :class:`Symptom` it shows. :func:`diagnose` turns the symptoms of a whole verify run
into :class:`Diagnosis` records, one per :class:`Cause` of the :data:`CATALOGUE` whose symptoms
were seen.

Causes are judged on the whole run, not one check at a time, because the runbook's failures show
up far from where they start: ``Error in SSL handshake`` is read in ama-metrics' ``mdsd.err``, but
the cause is in Azure (no private endpoint, a private DNS zone not linked to the VNet, a record
missing), and what the other checks saw is quoted beside the log line as corroboration.

Each cause names the provision steps that repair it (the step names of ``flows/provision.py``), in
the order to run them. A cause whose fix starts with a person's decision (raise a limit, create an
endpoint in another region, approve a connection) says so in its fix and may name no step at all.

This module is pure: no Prefect, no Azure SDK, no Kubernetes client.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from aksmetrics.steps import (
    COLLECTOR,
    CONFIGURATION_ASSOCIATION,
    OPERATOR,
    POD_MONITOR,
    PRIVATE_DNS,
    PRIVATE_ENDPOINT,
    PRIVATE_LINK_SCOPE,
    RESTART,
    RULE_ENDPOINTS,
    SCOPED_RESOURCES,
    STEPS,
    VERIFY,
    WAIT_HEALTHY,
)


class Symptom(StrEnum):
    """A sign of trouble a check can observe. The values are stable ids, safe to match in tests."""

    # The OpenTelemetry operator and the collector.
    OPERATOR_MISSING = "operator_missing"
    OPERATOR_NOT_READY = "operator_not_ready"
    COLLECTOR_MISSING = "collector_missing"
    COLLECTOR_NOT_READY = "collector_not_ready"
    POD_UNSCHEDULABLE_TAINT = "pod_unschedulable_taint"

    # The managed Prometheus add-on (ama-metrics) and its agent.
    AMA_METRICS_MISSING = "ama_metrics_missing"
    AMA_METRICS_NOT_READY = "ama_metrics_not_ready"
    MDSD_SSL_HANDSHAKE = "mdsd_ssl_handshake"
    MDSD_PRIVATE_LINK_403 = "mdsd_private_link_403"
    MDSD_OTHER_ERROR = "mdsd_other_error"
    TOKEN_CONFIG_MISSING = "token_config_missing"
    METRICS_EXTENSION_NOT_RUNNING = "metrics_extension_not_running"

    # Name resolution, seen from inside the cluster or through the VNet's resolver.
    NAME_RESOLVES_PUBLIC = "name_resolves_public"
    NAME_NOT_FOUND = "name_not_found"

    # The PodMonitor that makes ama-metrics scrape the collector.
    PODMONITOR_MISSING = "podmonitor_missing"
    PODMONITOR_SELECTS_NO_POD = "podmonitor_selects_no_pod"
    PODMONITOR_PORT_UNKNOWN = "podmonitor_port_unknown"

    # Data collection endpoints, rules and the cluster's associations.
    ENDPOINT_MISSING = "endpoint_missing"
    CONFIGURATION_ENDPOINT_WRONG_REGION = "configuration_endpoint_wrong_region"
    CONFIGURATION_ASSOCIATION_MISSING = "configuration_association_missing"
    CONFIGURATION_ASSOCIATION_WRONG_ENDPOINT = "configuration_association_wrong_endpoint"
    RULE_ASSOCIATION_MISSING = "rule_association_missing"
    RULE_MISSING = "rule_missing"
    RULE_WITHOUT_ENDPOINT = "rule_without_endpoint"
    RULE_NAMES_OTHER_ENDPOINT = "rule_names_other_endpoint"

    # The private link: AMPLS, private endpoint, DNS zone group, zones and VNet links.
    PRIVATE_LINK_SCOPE_MISSING = "private_link_scope_missing"
    ENDPOINT_NOT_IN_SCOPE = "endpoint_not_in_scope"
    PRIVATE_ENDPOINT_MISSING = "private_endpoint_missing"
    PRIVATE_ENDPOINT_NOT_APPROVED = "private_endpoint_not_approved"
    ZONE_GROUP_MISSING = "zone_group_missing"
    ZONE_NOT_IN_ZONE_GROUP = "zone_not_in_zone_group"
    RECORD_MISSING = "record_missing"
    ZONE_MISSING = "zone_missing"
    ZONE_NOT_LINKED = "zone_not_linked"
    AMPLS_PER_VNET_EXCEEDED = "ampls_per_vnet_exceeded"
    PRIVATE_ENDPOINTS_PER_AMPLS_EXCEEDED = "private_endpoints_per_ampls_exceeded"
    AMPLS_PER_RESOURCE_EXCEEDED = "ampls_per_resource_exceeded"

    # The end-to-end canary.
    CANARY_REFUSED = "canary_refused"
    CANARY_NOT_INGESTED = "canary_not_ingested"
    CANARY_QUERY_FAILED = "canary_query_failed"

    # A check could not observe what it checks (an API call failed for good).
    CHECK_ERROR = "check_error"


class Evidence(BaseModel):
    """One observation of a check: where it looked, what it saw, and the symptom it shows, if any.

    ``subject`` names the place (an ARM id, ``kube-system/ama-metrics-5d… mdsd.err``, a DNS name);
    ``observed`` quotes what was there (a log line, an address, an id, a status). Neither ever holds
    a token, key or secret: checks quote sizes and names of sensitive files, not their contents.
    """

    model_config = ConfigDict(frozen=True)

    subject: str
    observed: str
    symptom: Symptom | None = None

    def line(self) -> str:
        return f"{self.subject}: {self.observed}"


class Cause(BaseModel):
    """A named cause in the catalogue: how to recognise it, what it means, and what repairs it.

    A cause applies when any of its ``triggers`` was observed and none of ``unless`` was
    (``unless`` lets a narrower cause take over, e.g. a collector pod that cannot be scheduled is
    not reported as merely "not running"). Evidence of ``corroborated_by`` symptoms is quoted with
    the trigger's.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    explanation: str
    fix: str
    repair_steps: tuple[str, ...]
    triggers: frozenset[Symptom]
    corroborated_by: frozenset[Symptom] = frozenset()
    unless: frozenset[Symptom] = frozenset()
    repair_note: str = ""


class Diagnosis(BaseModel):
    """A cause found in one run, with the evidence that named it (triggers, then corroboration)."""

    model_config = ConfigDict(frozen=True)

    cause: str
    title: str
    explanation: str
    fix: str
    repair_steps: tuple[str, ...]
    evidence: tuple[Evidence, ...]
    repair_note: str = ""

    @property
    def repair(self) -> str:
        """The repairing provision steps as text, or what stands in for them."""
        if self.repair_note:
            return self.repair_note
        if not self.repair_steps:
            return "no provision step: a person acts first (see the fix)"
        return "provision steps: " + ", ".join(self.repair_steps)


# The steps a cause can name as its repair: every provision step but the waits and verify itself.
REPAIR_STEPS = tuple(step for step in STEPS if step not in (WAIT_HEALTHY, VERIFY))

S = Symptom

# Symptoms that mean "the agent's traffic does not take the private path".
_PUBLIC_PATH = frozenset(
    {
        S.NAME_RESOLVES_PUBLIC,
        S.PRIVATE_LINK_SCOPE_MISSING,
        S.ENDPOINT_NOT_IN_SCOPE,
        S.PRIVATE_ENDPOINT_MISSING,
        S.PRIVATE_ENDPOINT_NOT_APPROVED,
        S.ZONE_GROUP_MISSING,
        S.ZONE_NOT_IN_ZONE_GROUP,
        S.RECORD_MISSING,
        S.ZONE_MISSING,
        S.ZONE_NOT_LINKED,
    }
)

# The catalogue, root causes first: a diagnosis list reads from what to fix first to what follows.
CATALOGUE: tuple[Cause, ...] = (
    Cause(
        id="ssl_handshake_tls_inspection",
        title="SSL handshake through the TLS-inspecting firewall",
        explanation=(
            "ama-metrics' agent (mdsd) reaches Azure Monitor's public endpoints, so its traffic "
            "crosses the firewall, which replaces Azure's certificate with its own during TLS "
            "inspection; the agent does not trust that certificate and every handshake fails. The "
            "agent gets no configuration, and no metric leaves the cluster."
        ),
        fix=(
            "Give the agent a private path instead of bypassing TLS verification: an Azure "
            "Monitor Private Link Scope holding both data collection endpoints, a private "
            "endpoint (group 'azuremonitor') in the private-endpoint subnet with a DNS zone group "
            "for the five privatelink zones, each zone linked to the cluster's VNet, then restart "
            "ama-metrics so the names resolve to private IPs."
        ),
        repair_steps=(
            PRIVATE_LINK_SCOPE,
            SCOPED_RESOURCES,
            PRIVATE_ENDPOINT,
            PRIVATE_DNS,
            RESTART,
        ),
        triggers=frozenset({S.MDSD_SSL_HANDSHAKE}),
        corroborated_by=_PUBLIC_PATH,
    ),
    Cause(
        id="private_link_configuration_403",
        title="Configuration refused over private link (403)",
        explanation=(
            "The configuration names resolve to the private endpoint, so Azure Monitor treats the "
            "agent as a private-link caller and serves configuration only through a data "
            "collection endpoint. The cluster names none (no 'configurationAccessEndpoint' "
            "association), or the endpoint it names is not in the private link scope: the agent "
            "gets 403 'Data collection endpoint must be used to access configuration over "
            "private link'."
        ),
        fix=(
            "Associate the configuration endpoint with the cluster: a data collection rule "
            "association named 'configurationAccessEndpoint' on the managed cluster carrying only "
            "dataCollectionEndpointId; make sure that endpoint is a scoped resource of the AMPLS; "
            "then restart ama-metrics."
        ),
        repair_steps=(SCOPED_RESOURCES, CONFIGURATION_ASSOCIATION, RESTART),
        triggers=frozenset({S.MDSD_PRIVATE_LINK_403}),
        corroborated_by=frozenset(
            {
                S.CONFIGURATION_ASSOCIATION_MISSING,
                S.CONFIGURATION_ASSOCIATION_WRONG_ENDPOINT,
                S.ENDPOINT_NOT_IN_SCOPE,
            }
        ),
    ),
    Cause(
        id="configuration_endpoint_wrong_region",
        title="Configuration endpoint in another region than the cluster",
        explanation=(
            "The agent fetches its configuration only through a data collection endpoint in the "
            "cluster's own region; an endpoint elsewhere (often the workspace's) is never used "
            "for configuration."
        ),
        fix=(
            "Create a data collection endpoint in the cluster's region, name it as the "
            "configuration endpoint in the environment file, then run provision: it scopes the "
            "endpoint and points 'configurationAccessEndpoint' at it."
        ),
        repair_steps=(SCOPED_RESOURCES, CONFIGURATION_ASSOCIATION, RESTART),
        triggers=frozenset({S.CONFIGURATION_ENDPOINT_WRONG_REGION}),
    ),
    Cause(
        id="configuration_access_endpoint_missing",
        title="No configurationAccessEndpoint association on the cluster",
        explanation=(
            "Over private link the agent needs to be told which data collection endpoint serves "
            "its configuration. Without the cluster's 'configurationAccessEndpoint' association "
            "(or with one naming another endpoint) the agent is refused with 403 as soon as its "
            "names resolve privately."
        ),
        fix=(
            "PUT the association 'configurationAccessEndpoint' on the managed cluster with "
            "properties.dataCollectionEndpointId set to the configuration endpoint (api-version "
            "2023-03-11 or later), then restart ama-metrics."
        ),
        repair_steps=(CONFIGURATION_ASSOCIATION, RESTART),
        triggers=frozenset(
            {S.CONFIGURATION_ASSOCIATION_MISSING, S.CONFIGURATION_ASSOCIATION_WRONG_ENDPOINT}
        ),
    ),
    Cause(
        id="private_link_scope_missing",
        title="No Azure Monitor Private Link Scope",
        explanation=(
            "The AMPLS the environment names does not exist, so there is nothing to hold the data "
            "collection endpoints and no private endpoint can be made for Azure Monitor."
        ),
        fix="Create the AMPLS with the environment's access modes, then scope both endpoints.",
        repair_steps=(PRIVATE_LINK_SCOPE, SCOPED_RESOURCES, PRIVATE_ENDPOINT, PRIVATE_DNS),
        triggers=frozenset({S.PRIVATE_LINK_SCOPE_MISSING}),
    ),
    Cause(
        id="endpoint_not_in_scope",
        title="Data collection endpoint not in the private link scope",
        explanation=(
            "Both endpoints (configuration and ingestion) must be scoped resources of the AMPLS: "
            "only then does the private endpoint's zone group write their private records, and "
            "only then does Azure Monitor accept private-link traffic for them."
        ),
        fix="Add each missing endpoint to the AMPLS as a scoped resource (linkedResourceId).",
        repair_steps=(SCOPED_RESOURCES, PRIVATE_DNS, RESTART),
        triggers=frozenset({S.ENDPOINT_NOT_IN_SCOPE}),
    ),
    Cause(
        id="private_endpoint_missing",
        title="No private endpoint for the private link scope",
        explanation=(
            "Without a private endpoint (group 'azuremonitor') in the private-endpoint subnet, "
            "the AMPLS has no address in the VNet and the Azure Monitor names keep resolving to "
            "public IPs."
        ),
        fix=(
            "Create the private endpoint to the AMPLS (group 'azuremonitor') in the "
            "private-endpoint subnet, with a DNS zone group for the five privatelink zones."
        ),
        repair_steps=(PRIVATE_ENDPOINT, PRIVATE_DNS, RESTART),
        triggers=frozenset({S.PRIVATE_ENDPOINT_MISSING}),
    ),
    Cause(
        id="private_endpoint_not_approved",
        title="Private endpoint connection not approved",
        explanation=(
            "The private endpoint exists but its connection to the AMPLS is Pending or Rejected: "
            "it carries no traffic. Connections are approved automatically only when the creator "
            "has rights on the AMPLS."
        ),
        fix=(
            "Have an owner of the AMPLS approve the connection (AMPLS → Private endpoint "
            "connections), or create the endpoint with an identity that has rights on the AMPLS."
        ),
        repair_steps=(),
        triggers=frozenset({S.PRIVATE_ENDPOINT_NOT_APPROVED}),
    ),
    Cause(
        id="zone_not_linked",
        title="Private DNS zone missing or not linked to the VNet",
        explanation=(
            "The privatelink zones answer only for VNets they are linked to. A zone that is "
            "missing or not linked to the cluster's VNet leaves its names on the public answer, "
            "so the agent goes through the firewall again."
        ),
        fix=(
            "Create each missing privatelink zone and a virtual network link from it to the "
            "cluster's VNet (registration disabled)."
        ),
        repair_steps=(PRIVATE_DNS, RESTART),
        triggers=frozenset({S.ZONE_MISSING, S.ZONE_NOT_LINKED}),
    ),
    Cause(
        id="record_missing",
        title="Private DNS record missing",
        explanation=(
            "The private endpoint's DNS zone group writes one A record per Azure Monitor name it "
            "serves, including three per scoped data collection endpoint. A zone group that is "
            "missing, that leaves a zone out, or that lacks a record (an endpoint scoped after "
            "the zone group was made, a record deleted by hand) leaves that name public."
        ),
        fix=(
            "Give the private endpoint one DNS zone group covering the five privatelink zones "
            "(adopt one made by Azure Policy rather than add a second); re-apply it after "
            "scoping endpoints so that their records are written."
        ),
        repair_steps=(SCOPED_RESOURCES, PRIVATE_DNS, RESTART),
        triggers=frozenset({S.ZONE_GROUP_MISSING, S.ZONE_NOT_IN_ZONE_GROUP, S.RECORD_MISSING}),
    ),
    Cause(
        id="names_resolve_publicly",
        title="Azure Monitor names resolve to public addresses",
        explanation=(
            "Inside the cluster, the configuration or ingestion names resolve to public IPs, so "
            "the agent talks to Azure Monitor through the TLS-inspecting firewall instead of the "
            "private endpoint."
        ),
        fix=(
            "Complete the private path (AMPLS with both endpoints, approved private endpoint, "
            "zone group, zones linked to the VNet); with custom DNS servers, forward the "
            "privatelink zones to Azure DNS (168.63.129.16). Then restart ama-metrics."
        ),
        repair_steps=(SCOPED_RESOURCES, PRIVATE_ENDPOINT, PRIVATE_DNS, RESTART),
        triggers=frozenset({S.NAME_RESOLVES_PUBLIC, S.NAME_NOT_FOUND}),
        corroborated_by=_PUBLIC_PATH - {S.NAME_RESOLVES_PUBLIC},
    ),
    Cause(
        id="rule_without_endpoint",
        title="Data collection rule does not name its endpoint",
        explanation=(
            "A rule whose dataCollectionEndpointId is empty, or names another endpoint than the "
            "environment's, sends the agent to an endpoint outside the private link scope."
        ),
        fix=(
            "Set each rule's dataCollectionEndpointId to the endpoint of its role (read the "
            "rule, change that one property, write the whole rule back)."
        ),
        repair_steps=(RULE_ENDPOINTS, RESTART),
        triggers=frozenset({S.RULE_WITHOUT_ENDPOINT, S.RULE_NAMES_OTHER_ENDPOINT}),
    ),
    Cause(
        id="token_config_missing",
        title="TokenConfig.json missing and MetricsExtension not running",
        explanation=(
            "The agent writes TokenConfig.json only after it has fetched its configuration; "
            "MetricsExtension starts only once the file exists. Both missing mean the agent never "
            "got its configuration: see the mdsd.err diagnosis for why. After about 15 minutes "
            "the liveness probe restarts the pod ('No configuration present for the AKS "
            "resource')."
        ),
        fix=(
            "Repair what stops the configuration fetch (the SSL handshake or the private-link "
            "403 above), then restart ama-metrics; the file appears within a few minutes."
        ),
        repair_steps=(RESTART,),
        triggers=frozenset({S.TOKEN_CONFIG_MISSING}),
        corroborated_by=frozenset(
            {S.METRICS_EXTENSION_NOT_RUNNING, S.MDSD_SSL_HANDSHAKE, S.MDSD_PRIVATE_LINK_403}
        ),
    ),
    Cause(
        id="metrics_extension_down",
        title="MetricsExtension not running although its configuration exists",
        explanation=(
            "TokenConfig.json is present but MetricsExtension is not in the process list; the "
            "liveness probe reports 'Metrics Extension is not running (configuration exists)' "
            "and restarts the pod."
        ),
        fix="Restart ama-metrics; if it stays down, read MetricsExtensionConsoleDebugLog.log.",
        repair_steps=(RESTART,),
        triggers=frozenset({S.METRICS_EXTENSION_NOT_RUNNING}),
        unless=frozenset({S.TOKEN_CONFIG_MISSING}),
    ),
    Cause(
        id="mdsd_errors_unrecognised",
        title="Errors in mdsd.err that the catalogue does not know",
        explanation="mdsd.err holds error lines other than the known SSL and private-link ones.",
        fix="Read the quoted lines; mdsd.info and mdsd.warn beside mdsd.err say more.",
        repair_steps=(),
        triggers=frozenset({S.MDSD_OTHER_ERROR}),
    ),
    Cause(
        id="operator_not_running",
        title="OpenTelemetry operator not running",
        explanation=(
            "Without a ready operator there is no collector, and its webhooks (failurePolicy "
            "Fail) refuse every OpenTelemetryCollector create or update."
        ),
        fix=(
            "Install the operator from its release manifest by server-side apply (CRDs first), "
            "with the webhook certificate Secret and the CA bundle injected, and wait until its "
            "Deployment is available."
        ),
        repair_steps=(OPERATOR,),
        triggers=frozenset({S.OPERATOR_MISSING, S.OPERATOR_NOT_READY}),
    ),
    Cause(
        id="collector_unschedulable",
        title="Collector pods cannot be scheduled on the tainted nodes",
        explanation=(
            "The cluster's nodes carry taints (workload=general:NoSchedule, "
            "CriticalAddonsOnly=true:NoSchedule) and the collector's pods do not tolerate them, "
            "so they stay Pending."
        ),
        fix=(
            "List the nodes' taints under cluster.tolerations in the environment file and apply "
            "the collector again: the tolerations go into the collector's spec."
        ),
        repair_steps=(COLLECTOR,),
        triggers=frozenset({S.POD_UNSCHEDULABLE_TAINT}),
    ),
    Cause(
        id="collector_not_running",
        title="OpenTelemetry collector not running",
        explanation=(
            "The collector resource is missing or its pods are not ready: applications have "
            "nowhere to send OTLP and ama-metrics has nothing to scrape. Without a ready "
            "operator nothing turns the collector resource into pods."
        ),
        fix=(
            "Install the operator first if it is not running, then apply the collector resource "
            "and wait until its pods are ready."
        ),
        repair_steps=(OPERATOR, COLLECTOR),
        triggers=frozenset({S.COLLECTOR_MISSING, S.COLLECTOR_NOT_READY}),
        corroborated_by=frozenset(
            {S.OPERATOR_MISSING, S.OPERATOR_NOT_READY, S.PODMONITOR_SELECTS_NO_POD}
        ),
        unless=frozenset({S.POD_UNSCHEDULABLE_TAINT}),
    ),
    Cause(
        id="ama_metrics_not_running",
        title="ama-metrics not running",
        explanation=(
            "The managed Prometheus add-on's workloads are missing or not ready: nothing scrapes "
            "the collector and nothing ships metrics to the workspace."
        ),
        fix=(
            "Enable managed Prometheus on the cluster (az aks update --enable-azure-monitor-"
            "metrics) if the add-on is missing; otherwise read the pods' events and logs."
        ),
        repair_steps=(),
        triggers=frozenset({S.AMA_METRICS_MISSING, S.AMA_METRICS_NOT_READY}),
    ),
    Cause(
        id="podmonitor_port_mismatch",
        title="PodMonitor names a port the collector does not have",
        explanation=(
            "A PodMonitor endpoint's 'port' must be the name of a container port on the selected "
            "pods. A name that matches no port (such as 'prometheus-dev' where the collector's "
            "exporter port is named 'prometheus') yields no scrape target, silently."
        ),
        fix="Name the collector's container port exactly in the PodMonitor and apply it again.",
        repair_steps=(POD_MONITOR,),
        triggers=frozenset({S.PODMONITOR_PORT_UNKNOWN}),
    ),
    Cause(
        id="podmonitor_missing",
        title="PodMonitor missing",
        explanation=(
            "ama-metrics scrapes only what an azmonitoring.coreos.com/v1 PodMonitor selects (the "
            "upstream monitoring.coreos.com group is ignored): without it nothing is scraped."
        ),
        fix=(
            "Apply the PodMonitor (group azmonitoring.coreos.com) with the collector's selector "
            "labels and port names."
        ),
        repair_steps=(POD_MONITOR,),
        triggers=frozenset({S.PODMONITOR_MISSING}),
    ),
    Cause(
        id="podmonitor_selects_no_pod",
        title="PodMonitor selects no collector pod",
        explanation=(
            "The PodMonitor's selector (or namespace selector) matches no running pod, so it "
            "yields no scrape target, silently."
        ),
        fix=(
            "Select the labels the operator puts on the collector's pods "
            "(app.kubernetes.io/component=opentelemetry-collector, app.kubernetes.io/instance="
            "<namespace>.<name>, app.kubernetes.io/managed-by=opentelemetry-operator)."
        ),
        repair_steps=(POD_MONITOR,),
        triggers=frozenset({S.PODMONITOR_SELECTS_NO_POD}),
        unless=frozenset({S.COLLECTOR_MISSING, S.COLLECTOR_NOT_READY, S.POD_UNSCHEDULABLE_TAINT}),
    ),
    Cause(
        id="endpoint_missing",
        title="Data collection endpoint or rule missing",
        explanation=(
            "An endpoint or rule that the environment names does not exist; they come with the "
            "workspace and the managed Prometheus add-on and are not created by this project."
        ),
        fix=(
            "Check the names in the environment file against the portal; enable managed "
            "Prometheus on the cluster with the workspace if they were never created."
        ),
        repair_steps=(),
        triggers=frozenset({S.ENDPOINT_MISSING, S.RULE_MISSING}),
    ),
    Cause(
        id="rule_association_missing",
        title="No rule association for managed Prometheus on the cluster",
        explanation=(
            "The cluster has no association to any of the environment's data collection rules "
            "(normally 'ContainerInsightsMetricsExtension'), so the agent has no rule to collect "
            "Prometheus metrics with."
        ),
        fix="Enable managed Prometheus on the cluster with the environment's workspace.",
        repair_steps=(),
        triggers=frozenset({S.RULE_ASSOCIATION_MISSING}),
    ),
    Cause(
        id="ampls_limit_exceeded",
        title="Private link scope limits exceeded",
        explanation=(
            "Azure Monitor private link has hard limits: one AMPLS per VNet (in practice per DNS, "
            "since the privatelink zones are shared), ten private endpoints per AMPLS, and five "
            "AMPLS per resource. Past them, one scope's DNS records override another's or the "
            "connection is refused."
        ),
        fix=(
            "Consolidate: use the one AMPLS already serving this VNet's DNS (name it in the "
            "environment file), remove unused private endpoints or scope memberships."
        ),
        repair_steps=(),
        triggers=frozenset(
            {
                S.AMPLS_PER_VNET_EXCEEDED,
                S.PRIVATE_ENDPOINTS_PER_AMPLS_EXCEEDED,
                S.AMPLS_PER_RESOURCE_EXCEEDED,
            }
        ),
    ),
    Cause(
        id="canary_refused",
        title="The collector did not accept the canary metric",
        explanation=(
            "The OTLP/HTTP request to the collector's otlp-http port (through the API server's "
            "service proxy) failed: the collector has no ready pod or no such port."
        ),
        fix="Repair the collector first (see its check), then run verify again.",
        repair_steps=(COLLECTOR,),
        triggers=frozenset({S.CANARY_REFUSED}),
    ),
    Cause(
        id="canary_not_ingested",
        title="The canary metric never reached the workspace",
        explanation=(
            "The collector accepted the canary, but the workspace's Prometheus endpoint did not "
            "return it before the deadline: the scrape (PodMonitor) or the shipping (agent, "
            "private link) is broken. The other diagnoses of this run say which."
        ),
        fix="Repair the causes listed for the other checks; then run verify again.",
        repair_steps=(),
        triggers=frozenset({S.CANARY_NOT_INGESTED}),
        corroborated_by=frozenset(
            {
                S.PODMONITOR_PORT_UNKNOWN,
                S.PODMONITOR_MISSING,
                S.PODMONITOR_SELECTS_NO_POD,
                S.MDSD_SSL_HANDSHAKE,
                S.MDSD_PRIVATE_LINK_403,
                S.TOKEN_CONFIG_MISSING,
                S.METRICS_EXTENSION_NOT_RUNNING,
                S.RULE_WITHOUT_ENDPOINT,
                S.RULE_NAMES_OTHER_ENDPOINT,
                S.ENDPOINT_NOT_IN_SCOPE,
                S.NAME_RESOLVES_PUBLIC,
            }
        ),
        repair_note="the provision steps named for the other failing checks",
    ),
    Cause(
        id="canary_query_failed",
        title="The workspace's Prometheus endpoint could not be queried",
        explanation=(
            "The canary needs read access to the workspace's query endpoint (Monitoring Data "
            "Reader on the Azure Monitor workspace) and a route to it."
        ),
        fix=(
            "Grant the worker's identity 'Monitoring Data Reader' on the workspace, or turn the "
            "canary off for this environment."
        ),
        repair_steps=(),
        triggers=frozenset({S.CANARY_QUERY_FAILED}),
    ),
    Cause(
        id="check_failed_to_observe",
        title="A check could not read what it checks",
        explanation="An API call of the check failed for good; its error is quoted.",
        fix=(
            "Read the quoted error: a 403 means the worker's identity lacks read access, a "
            "connection error means the worker cannot reach the API (it must run inside the VNet)."
        ),
        repair_steps=(),
        triggers=frozenset({S.CHECK_ERROR}),
    ),
)

CAUSES: dict[str, Cause] = {cause.id: cause for cause in CATALOGUE}


def diagnose(evidence: Iterable[Evidence]) -> list[Diagnosis]:
    """Name every cause of the catalogue whose symptoms appear in ``evidence``, root causes first.

    ``evidence`` is everything a verify run observed (all checks together); observations without a
    symptom are ignored. Each diagnosis quotes its trigger evidence first, then corroboration.
    """
    by_symptom: dict[Symptom, list[Evidence]] = defaultdict(list)
    for item in evidence:
        if item.symptom is not None and item not in by_symptom[item.symptom]:
            by_symptom[item.symptom].append(item)
    seen = set(by_symptom)

    diagnoses = []
    for cause in CATALOGUE:
        if not cause.triggers & seen or cause.unless & seen:
            continue
        quoted = [
            item for symptom in Symptom if symptom in cause.triggers for item in by_symptom[symptom]
        ]
        quoted += [
            item
            for symptom in Symptom
            if symptom in cause.corroborated_by and symptom not in cause.triggers
            for item in by_symptom[symptom]
        ]
        diagnoses.append(
            Diagnosis(
                cause=cause.id,
                title=cause.title,
                explanation=cause.explanation,
                fix=cause.fix,
                repair_steps=cause.repair_steps,
                evidence=tuple(quoted),
                repair_note=cause.repair_note,
            )
        )
    return diagnoses


def triggered_by(diagnosis: Diagnosis, evidence: Iterable[Evidence]) -> bool:
    """True when one of ``evidence`` is a trigger of ``diagnosis`` (not only corroboration)."""
    triggers = CAUSES[diagnosis.cause].triggers
    mine = set(evidence)
    return any(item in mine and item.symptom in triggers for item in diagnosis.evidence)
