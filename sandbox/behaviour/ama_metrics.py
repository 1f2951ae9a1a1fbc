"""ama-metrics, the AKS managed Prometheus add-on: its workloads, its agent and its scraper.

The add-on's objects live in kube-system (`addon_objects`). Every pod of the `ama-metrics`
Deployment and of the `ama-metrics-node` DaemonSet runs an *agent*: mdsd fetches the
configuration, writes `TokenConfig.json`, and MetricsExtension (ME) ships what the pod scrapes.
The agent walks the real failure chain, as the cluster's virtual network sees Azure:

1. `global.handler.control.monitor.azure.com` resolves to a public address: the call crosses the
   TLS-inspecting firewall and mdsd.err gets `Error in SSL handshake` lines;
2. it resolves privately, but the cluster has no `configurationAccessEndpoint` DCRA, or that DCE
   is not a scoped resource of an AMPLS, or the DCE's own configuration name resolves publicly:
   mdsd.err gets the private-link 403 `Data collection endpoint must be used to access
   configuration over private link.`;
3. otherwise mdsd.info records the redirect to the DCE and the configuration it loaded,
   `TokenConfig.json` is written and `MetricsExtension` runs.

Timing, accelerated for the sandbox: a new pod evaluates the chain `start_delay` seconds after it
starts (default 1 s), then again every `retry_interval` seconds (default 3 s) like mdsd's retries.
A failed agent recovers on its own once Azure is fixed, but mdsd.err keeps the old lines until
the pod is replaced (a rollout restart or a pod delete), as the real log file would; checks
should therefore look at a fresh pod.

Scraping: a healthy `ama-metrics` pod scrapes every PodMonitor target (see `scrape.py`) every
min(interval, `scrape_interval_cap`) seconds (cap 1 s: a 30 s interval is scraped every second).
Samples reach the workspace only when the ingestion path works: the DCR that the cluster's
`ContainerInsightsMetricsExtension` DCRA names (and the workspace's default DCR, when the
workspace declares one) must name a DCE (`dataCollectionEndpointId`) that is a scoped resource of
an AMPLS and whose metrics ingestion name resolves privately for the cluster's VNet. Otherwise
MetricsExtension logs why (`Error in SSL handshake` for a public name: the firewall inspects TLS)
and drops the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from sandbox.behaviour import promtext
from sandbox.behaviour.network import (
    ConnectionRefused,
    HttpRequest,
    PodNetwork,
    is_running,
    pod_key,
)
from sandbox.behaviour.promtext import Sample, labels_of
from sandbox.behaviour.scrape import Target, discover_targets, label_scraped
from sandbox.behaviour.shell import Busybox, Outcome, not_found_message
from sandbox.behaviour.workspace import WorkspaceStore

logger = logging.getLogger(__name__)

NAMESPACE = "kube-system"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
AGENT_IMAGE = (
    "mcr.microsoft.com/azuremonitor/containerinsights/ciprod/prometheus-collector/images:"
    "6.24.0-main-12-05-2025-3bd13d04"
)
TOKEN_ADAPTER_IMAGE = "mcr.microsoft.com/aks/msi/addon-token-adapter:master.250929.1"

MDSD_ERR = "/opt/microsoft/linuxmonagent/mdsd.err"
MDSD_INFO = "/opt/microsoft/linuxmonagent/mdsd.info"
MDSD_WARN = "/opt/microsoft/linuxmonagent/mdsd.warn"
MDSD_QOS = "/opt/microsoft/linuxmonagent/mdsd.qos"
TOKEN_CONFIG = "/etc/mdsd.d/config-cache/metricsextension/TokenConfig.json"
ME_LOG = "/MetricsExtensionConsoleDebugLog.log"
START_TIME_FILE = "/opt/microsoft/liveness/azmon-container-start-time"

GLOBAL_HANDLER = "global.handler.control.monitor.azure.com"
CONFIG_ASSOCIATION = "configurationAccessEndpoint"
METRICS_ASSOCIATION = "ContainerInsightsMetricsExtension"
MAX_LOG_LINES = 400
CLUSTER_DNS = "10.0.0.10"


# -- the add-on's objects --------------------------------------------------------------------


def _container(name: str, image: str, ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {
            "limits": {"cpu": "500m", "memory": "1Gi"},
            "requests": {"cpu": "150m", "memory": "250Mi"},
        },
    }
    if ports:
        container["ports"] = ports
    return container


def _workload(
    kind: str,
    name: str,
    selector: dict[str, str],
    containers: list[dict[str, Any]],
    *,
    replicas: int | None = 1,
) -> dict[str, Any]:
    labels = {
        "component": name,
        "kubernetes.azure.com/managedby": "aks",
        "addonmanager.kubernetes.io/mode": "Reconcile",
    }
    workload: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {
                    "labels": {**selector, "kubernetes.azure.com/managedby": "aks"},
                    "annotations": {"agentVersion": "6.24.0"},
                },
                "spec": {
                    "serviceAccountName": "ama-metrics-serviceaccount",
                    "containers": containers,
                    "tolerations": [
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                        {"operator": "Exists", "effect": "NoSchedule"},
                    ],
                    "priorityClassName": "system-node-critical",
                },
            },
        },
    }
    if replicas is not None:
        workload["spec"]["replicas"] = replicas
    return workload


def addon_objects() -> list[dict[str, Any]]:
    """The add-on's CRDs, ServiceAccount, Deployments, DaemonSet and Service in kube-system."""
    crds = list(yaml.safe_load_all((DATA_DIR / "azmonitoring-crds.yaml").read_text()))
    collector = _container(
        "prometheus-collector",
        AGENT_IMAGE,
        [
            {"name": "health", "containerPort": 8080, "protocol": "TCP"},
        ],
    )
    token_adapter = _container("addon-token-adapter", TOKEN_ADAPTER_IMAGE)
    objects: list[dict[str, Any]] = [
        *crds,
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "ama-metrics-serviceaccount",
                "namespace": NAMESPACE,
                "labels": {"kubernetes.azure.com/managedby": "aks"},
            },
        },
        _workload(
            "Deployment", "ama-metrics", {"rsName": "ama-metrics"}, [collector, token_adapter]
        ),
        _workload(
            "DaemonSet",
            "ama-metrics-node",
            {"dsName": "ama-metrics-node"},
            [collector, token_adapter],
            replicas=None,
        ),
        _workload(
            "Deployment",
            "ama-metrics-ksm",
            {"app.kubernetes.io/name": "ama-metrics-ksm"},
            [
                _container(
                    "ama-metrics-ksm",
                    "mcr.microsoft.com/oss/kubernetes/kube-state-metrics:v2.15.0",
                    [{"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"}],
                )
            ],
        ),
        _workload(
            "Deployment",
            "ama-metrics-operator-targets",
            {"rsName": "ama-metrics-operator-targets"},
            [
                _container(
                    "targetallocator",
                    AGENT_IMAGE.replace("images:", "images:target-allocator-"),
                    [{"name": "targetallocation", "containerPort": 8080, "protocol": "TCP"}],
                ),
                _container("config-reader", AGENT_IMAGE.replace("images:", "images:cfg-")),
            ],
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "ama-metrics-operator-targets",
                "namespace": NAMESPACE,
                "labels": {"kubernetes.azure.com/managedby": "aks"},
            },
            "spec": {
                "selector": {"rsName": "ama-metrics-operator-targets"},
                "ports": [
                    {"name": "targetallocation", "port": 80, "targetPort": 8080, "protocol": "TCP"}
                ],
            },
        },
    ]
    return objects


def is_agent_pod(pod: dict[str, Any]) -> bool:
    """True for pods of the ama-metrics Deployment and the ama-metrics-node DaemonSet."""
    meta = pod.get("metadata", {})
    labels = meta.get("labels") or {}
    return meta.get("namespace") == NAMESPACE and (
        labels.get("rsName") == "ama-metrics" or labels.get("dsName") == "ama-metrics-node"
    )


def is_scraper_pod(pod: dict[str, Any]) -> bool:
    """True for the ReplicaSet pods that scrape PodMonitor targets."""
    return (pod.get("metadata", {}).get("labels") or {}).get("rsName") == "ama-metrics"


# -- the Azure side as the cluster sees it ---------------------------------------------------


@dataclass
class ConfigurationOutcome:
    """Where mdsd's configuration fetch ends, and the facts its log lines need."""

    state: str  # "ssl", "private-link-403" or "healthy"
    reason: str = ""
    handler_address: str = ""
    config_endpoint: str = ""
    rule_immutable_ids: list[str] = field(default_factory=list)


@dataclass
class IngestionOutcome:
    """Whether MetricsExtension can publish, and to which workspace."""

    ok: bool
    workspace: str = ""
    endpoint: str = ""
    reason: str = ""


def _host(url: str) -> str:
    return urlparse(url).hostname or url if "://" in url else url


def _last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


class AzureView:
    """Reads what the agent depends on from the emulated Azure, as the cluster's VNet sees it."""

    def __init__(
        self,
        azure: Any,
        *,
        cluster_id: str,
        fallback_vnet_id: str = "",
        fallback_workspace: str = "",
    ) -> None:
        self._azure = azure
        self.cluster_id = cluster_id
        self._fallback_vnet_id = fallback_vnet_id
        self._fallback_workspace = fallback_workspace

    def vnet_id(self) -> str:
        """The VNet of the cluster's node subnet (from the managed cluster's agent pools)."""
        cluster = self._azure.get(self.cluster_id) or {}
        for pool in (cluster.get("properties") or {}).get("agentPoolProfiles") or []:
            subnet = pool.get("vnetSubnetID") or ""
            if "/subnets/" in subnet.lower():
                index = subnet.lower().index("/subnets/")
                return subnet[:index]
        return self._fallback_vnet_id

    def _association(self, name: str) -> dict[str, Any] | None:
        for association in self._azure.associations_of(self.cluster_id):
            if association.get("name", "").lower() == name.lower():
                return association
        return None

    def configuration(self) -> ConfigurationOutcome:
        """Follow mdsd's configuration fetch through DNS, the DCRA and the AMPLS."""
        vnet = self.vnet_id()
        handler = self._azure.resolve(GLOBAL_HANDLER, vnet)
        address = handler.addresses[0] if handler.addresses else ""
        if not handler.private:
            return ConfigurationOutcome(
                "ssl", "the global handler resolves publicly", handler_address=address
            )

        association = self._association(CONFIG_ASSOCIATION)
        dce_id = ((association or {}).get("properties") or {}).get("dataCollectionEndpointId")
        if not dce_id:
            return ConfigurationOutcome(
                "private-link-403", "no configurationAccessEndpoint DCRA", handler_address=address
            )
        dce = self._azure.get(dce_id)
        if dce is None:
            return ConfigurationOutcome(
                "private-link-403", f"DCE {dce_id} does not exist", handler_address=address
            )
        if not self._azure.scopes_of(dce_id):
            return ConfigurationOutcome(
                "private-link-403",
                "the configuration DCE is not in an AMPLS",
                handler_address=address,
            )
        endpoint = ((dce.get("properties") or {}).get("configurationAccess") or {}).get(
            "endpoint", ""
        )
        if not endpoint or not self._azure.resolve(_host(endpoint), vnet).private:
            return ConfigurationOutcome(
                "private-link-403",
                "the DCE's configuration name resolves publicly",
                handler_address=address,
                config_endpoint=endpoint,
            )

        rules = []
        for association_item in self._azure.associations_of(self.cluster_id):
            rule_id = (association_item.get("properties") or {}).get("dataCollectionRuleId")
            rule = self._azure.get(rule_id) if rule_id else None
            immutable = ((rule or {}).get("properties") or {}).get("immutableId")
            if immutable:
                rules.append(immutable)
        return ConfigurationOutcome(
            "healthy", handler_address=address, config_endpoint=endpoint, rule_immutable_ids=rules
        )

    def _metrics_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        association = self._association(METRICS_ASSOCIATION)
        rule_id = ((association or {}).get("properties") or {}).get("dataCollectionRuleId")
        rule = self._azure.get(rule_id) if rule_id else None
        if rule is not None:
            rules.append(rule)
            for account in ((rule.get("properties") or {}).get("destinations") or {}).get(
                "monitoringAccounts"
            ) or []:
                workspace = self._azure.get(account.get("accountResourceId", "")) or {}
                default_rule_id = (
                    (workspace.get("properties") or {}).get("defaultIngestionSettings") or {}
                ).get("dataCollectionRuleResourceId")
                default_rule = self._azure.get(default_rule_id) if default_rule_id else None
                if default_rule is not None and default_rule["id"].lower() != rule["id"].lower():
                    rules.append(default_rule)
        return rules

    def ingestion(self) -> IngestionOutcome:
        """Whether MetricsExtension can publish through the DCR's DCE over private link."""
        rules = self._metrics_rules()
        if not rules:
            return IngestionOutcome(False, reason="no ContainerInsightsMetricsExtension DCR")
        vnet = self.vnet_id()
        workspace = self._fallback_workspace
        accounts = ((rules[0].get("properties") or {}).get("destinations") or {}).get(
            "monitoringAccounts"
        ) or []
        if accounts and accounts[0].get("accountResourceId"):
            workspace = _last_segment(accounts[0]["accountResourceId"])
        endpoint = ""
        for rule in rules:
            name = rule.get("name", "")
            dce_id = (rule.get("properties") or {}).get("dataCollectionEndpointId")
            if not dce_id:
                return IngestionOutcome(
                    False,
                    workspace=workspace,
                    reason=f"DCR {name} names no data collection endpoint; the public ingestion "
                    "endpoint is reached through the firewall: Error in SSL handshake",
                )
            dce = self._azure.get(dce_id) or {}
            endpoint = ((dce.get("properties") or {}).get("metricsIngestion") or {}).get(
                "endpoint", ""
            )
            if not endpoint:
                return IngestionOutcome(
                    False,
                    workspace=workspace,
                    reason=f"DCE {dce_id} has no metrics ingestion endpoint",
                )
            resolution = self._azure.resolve(_host(endpoint), vnet)
            if not resolution.private:
                return IngestionOutcome(
                    False,
                    workspace=workspace,
                    endpoint=endpoint,
                    reason=f"{_host(endpoint)} resolves publicly: Error in SSL handshake",
                )
            if not self._azure.scopes_of(dce_id):
                return IngestionOutcome(
                    False,
                    workspace=workspace,
                    endpoint=endpoint,
                    reason=f"Status code 403: DCE {_last_segment(dce_id)} is not a resource of the "
                    "private link scope the private endpoint serves",
                )
        return IngestionOutcome(True, workspace=workspace, endpoint=endpoint)


# -- one agent per pod -----------------------------------------------------------------------


def _mdsd_time(at: float) -> str:
    stamp = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond:06d}0Z"


@dataclass
class Agent:
    """The mdsd/MetricsExtension state of one ama-metrics pod."""

    namespace: str
    pod: str
    uid: str
    scraper: bool
    started: float
    containers: list[str]
    pod_ip: str = ""
    mdsd_err: list[str] = field(default_factory=list)
    mdsd_info: list[str] = field(default_factory=list)
    mdsd_warn: list[str] = field(default_factory=list)
    me_log: list[str] = field(default_factory=list)
    token_config: dict[str, Any] | None = None
    last_attempt: float | None = None
    state: str = "starting"
    last_scraped: dict[str, float] = field(default_factory=dict)
    last_ingestion_error: str = ""

    @property
    def me_running(self) -> bool:
        """MetricsExtension starts once TokenConfig.json exists."""
        return self.token_config is not None

    def files(self) -> dict[str, str]:
        """The agent container's files that troubleshooting reads."""
        files = {
            MDSD_ERR: "".join(line + "\n" for line in self.mdsd_err),
            MDSD_INFO: "".join(line + "\n" for line in self.mdsd_info),
            MDSD_WARN: "".join(line + "\n" for line in self.mdsd_warn),
            MDSD_QOS: "",
            START_TIME_FILE: f"{int(self.started)}\n",
            "/etc/os-release": 'NAME="Microsoft Azure Linux"\nVERSION="3.0"\nID=azurelinux\n',
            "/opt/microsoft/otelcollector/collector-config.yml": "receivers:\n  prometheus: {}\n",
        }
        if self.token_config is not None:
            files[TOKEN_CONFIG] = json.dumps(self.token_config, indent=2) + "\n"
        if self.me_running:
            files[ME_LOG] = "".join(line + "\n" for line in self.me_log)
        return files


def _trim(lines: list[str]) -> None:
    if len(lines) > MAX_LOG_LINES:
        del lines[: len(lines) - MAX_LOG_LINES]


class AmaMetricsAgents:
    """Runs an agent for every ama-metrics pod, answers exec in them, and scrapes PodMonitors."""

    def __init__(
        self,
        store: Any,
        azure: Any,
        network: PodNetwork,
        workspaces: WorkspaceStore,
        *,
        view: AzureView,
        cluster_name: str,
        start_delay: float = 1.0,
        retry_interval: float = 3.0,
        tick: float = 0.5,
        scrape_interval_cap: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._azure = azure
        self._network = network
        self._workspaces = workspaces
        self.view = view
        self.cluster_name = cluster_name
        self.start_delay = start_delay
        self.retry_interval = retry_interval
        self.tick = tick
        self.scrape_interval_cap = scrape_interval_cap
        self._clock = clock
        self._agents: dict[str, Agent] = {}
        self._task: asyncio.Task[None] | None = None

    # -- wiring --------------------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to pod changes and answer exec in the add-on's pods."""
        self._store.subscribe(self.on_event)
        self._store.register_exec(self.exec)
        for pod in self._store.list("v1", "Pod", NAMESPACE):
            self.on_event("ADDED", pod)

    def settle(self) -> None:
        """Let the agents of pods that already run make their first attempt now.

        A sandbox starts as a cluster that has been running for a while, not as one whose add-on
        has just started: its agents have already fetched (or failed to fetch) their
        configuration. Pods started later (a rollout restart) still wait `start_delay`.
        """
        now = self._clock()
        for agent in self._agents.values():
            agent.started = min(agent.started, now - self.start_delay)
        self.step()

    def start(self) -> None:
        """Run the agents' clock on the current event loop until `stop`."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ama-metrics")

    async def stop(self) -> None:
        """Stop the agents' clock."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.step()
            except Exception:  # keep the agents alive; a bug shows in the sandbox log
                logger.exception("ama-metrics step failed")
            await asyncio.sleep(self.tick)

    def on_event(self, event: str, obj: dict[str, Any]) -> None:
        """Track agent pods: a new pod (new uid) starts a fresh agent; a deleted one is gone."""
        if obj.get("kind") != "Pod" or not is_agent_pod(obj):
            return
        meta = obj["metadata"]
        uid = meta.get("uid", "")
        if event == "DELETED":
            self._agents.pop(uid, None)
            return
        agent = self._agents.get(uid)
        if agent is None and is_running(obj):
            agent = Agent(
                namespace=meta["namespace"],
                pod=meta["name"],
                uid=uid,
                scraper=is_scraper_pod(obj),
                started=self._clock(),
                containers=[c.get("name", "") for c in obj.get("spec", {}).get("containers") or []],
            )
            self._agents[uid] = agent
            logger.info("ama-metrics agent started in pod %s", pod_key(obj))
        if agent is not None:
            agent.pod_ip = (obj.get("status") or {}).get("podIP") or agent.pod_ip

    def agent(self, namespace: str, pod: str) -> Agent | None:
        """The agent of a pod, by name."""
        for agent in self._agents.values():
            if agent.namespace == namespace and agent.pod == pod:
                return agent
        return None

    # -- the agent's clock ---------------------------------------------------------------------

    def step(self) -> None:
        """One tick: let due agents try their configuration, then scrape what is due."""
        now = self._clock()
        for agent in list(self._agents.values()):
            if now < agent.started + self.start_delay:
                continue
            if agent.last_attempt is None or now >= agent.last_attempt + self.retry_interval:
                self._attempt(agent, now)
        self._scrape(now)

    def _attempt(self, agent: Agent, now: float) -> None:
        """One configuration fetch by mdsd, logged as mdsd logs it."""
        agent.last_attempt = now
        outcome = self.view.configuration()
        stamp = _mdsd_time(now)
        cluster_path = self.view.cluster_id
        location = self._cluster_location()
        mcs_path = (
            f"{cluster_path}/agentConfigurations?operatingLocation={location}"
            "&platform=linux&includeMeConfig=true&api-version=2022-06-02"
        )
        if outcome.state == "ssl":
            agent.mdsd_err.append(
                f"{stamp}: [McsManager.cpp:543,RefreshConfigurations]Could not obtain "
                f"configuration from https://{GLOBAL_HANDLER} after first round of tries. "
                "Will continue retrying with backoff. Error in SSL handshake "
                f"({outcome.handler_address}:443)"
            )
            agent.mdsd_err.append(
                f"{stamp}: [HttpClient.cpp:248,SendRequest]Error in SSL handshake: certificate "
                f"verify failed (unable to get local issuer certificate) for "
                f"https://{GLOBAL_HANDLER}{mcs_path}"
            )
            self._log(
                agent,
                "prometheus-collector",
                f"{stamp} mdsd: Could not obtain configuration: Error in SSL handshake",
            )
        elif outcome.state == "private-link-403":
            agent.mdsd_err.append(
                f"{stamp}: [McsManager.cpp:391,GetAgentConfigurations]Failed from MCS path "
                f"https://{GLOBAL_HANDLER}{mcs_path}: Status code 403, "
                "Data collection endpoint must be used to access configuration over private link."
            )
            self._log(
                agent,
                "prometheus-collector",
                f"{stamp} mdsd: configuration refused (403): Data collection endpoint must be "
                "used to access configuration over private link.",
            )
        elif agent.token_config is None:
            host = _host(outcome.config_endpoint)
            agent.mdsd_info.append(
                f"{stamp}: MCS redirected to endpoint https://{host}{mcs_path} "
                "(agentConfigurations)"
            )
            for immutable in outcome.rule_immutable_ids or ["dcr-00000000000000000000000000000000"]:
                agent.mdsd_info.append(f"{stamp}: Configuration [{immutable}] added")
            agent.mdsd_info.append(
                f"{stamp}: Wrote MetricsExtension token configuration to {TOKEN_CONFIG}"
            )
            ingestion = self.view.ingestion()
            agent.token_config = {
                "version": "1.0",
                "tokenSource": "AMCS",
                "configurationEndpoint": f"https://{host}",
                "dataCollectionRuleImmutableIds": outcome.rule_immutable_ids,
                "ingestionEndpoint": ingestion.endpoint,
                "accountName": ingestion.workspace,
                "refreshedAt": stamp,
            }
            agent.me_log.append(f"{stamp} Info: MetricsExtension started, TokenSource AMCS")
            self._log(
                agent,
                "prometheus-collector",
                f"{stamp} TokenConfig.json found, starting MetricsExtension",
            )
        agent.state = outcome.state if agent.token_config is None else "healthy"
        for lines in (agent.mdsd_err, agent.mdsd_info, agent.me_log):
            _trim(lines)

    def _cluster_location(self) -> str:
        cluster = self._azure.get(self.view.cluster_id) or {}
        return str(cluster.get("location") or "koreacentral")

    def _log(self, agent: Agent, container: str, line: str) -> None:
        append = getattr(self._store, "append_log", None)
        if append is not None:
            append(agent.namespace, agent.pod, container, line)

    # -- scraping ------------------------------------------------------------------------------

    def _scrape(self, now: float) -> None:
        scrapers = sorted(
            (a for a in self._agents.values() if a.scraper and a.me_running),
            key=lambda a: a.pod,
        )
        if not scrapers:
            return
        try:
            targets = discover_targets(self._store)
        except KeyError:
            return  # the PodMonitor CRD is not installed
        due: list[tuple[Agent, Target]] = []
        for target in targets:
            # Consistent hashing hands each target to exactly one ReplicaSet pod.
            digest = int(hashlib.sha256(target.key.encode()).hexdigest(), 16)
            agent = scrapers[digest % len(scrapers)]
            interval = min(target.interval, self.scrape_interval_cap)
            if now >= agent.last_scraped.get(target.key, 0.0) + interval:
                agent.last_scraped[target.key] = now
                due.append((agent, target))
        if not due:
            return

        ingestion = self.view.ingestion()
        for agent, target in due:
            samples = self.scrape_target(target)
            if ingestion.ok:
                self._workspaces.ingest(ingestion.workspace, samples, at=now)
                agent.last_ingestion_error = ""
            elif ingestion.reason != agent.last_ingestion_error:
                agent.last_ingestion_error = ingestion.reason
                agent.me_log.append(
                    f"{_mdsd_time(now)} Error: Failed to publish metrics to "
                    f"{ingestion.endpoint or 'the workspace'}: {ingestion.reason}. Dropping data."
                )
                _trim(agent.me_log)

    def scrape_target(self, target: Target) -> list[Sample]:
        """Scrape one target now; the samples carry target labels plus `up` and friends."""
        started = time.perf_counter()
        extra = {"cluster": self.cluster_name}
        up = 0.0
        scraped: list[Sample] = []
        try:
            response = self._network.request(
                target.pod,
                target.port,
                HttpRequest("GET", target.path, headers={"Accept": "text/plain"}),
            )
            if response.status == 200:
                families = promtext.parse(response.body.decode("utf-8", "replace"))
                raw = [s for family in families for s in family.samples]
                scraped = label_scraped(raw, target, extra)
                up = 1.0
        except (ConnectionRefused, promtext.ParseError) as exc:
            logger.debug("scrape of %s failed: %s", target.labels.get("instance"), exc)
        duration = time.perf_counter() - started
        base = labels_of({**target.labels, **extra})
        scraped.extend(
            [
                Sample("up", base, up),
                Sample("scrape_duration_seconds", base, round(duration, 6)),
                Sample("scrape_samples_scraped", base, float(len(scraped))),
            ]
        )
        return scraped

    # -- exec ----------------------------------------------------------------------------------

    def exec(self, pod: dict[str, Any], container: str, argv: list[str]) -> Any:
        """Answer `kubectl exec` in an ama-metrics pod (None for every other pod)."""
        if not is_agent_pod(pod):
            return None
        from sandbox.kube.models import ExecResult

        agent = self._agents.get(pod["metadata"].get("uid", ""))
        container = container or (pod["spec"]["containers"][0]["name"])
        if agent is None:
            return ExecResult(error=f'container not found ("{container}")')
        if container != "prometheus-collector":
            # The token adapter image has no shell and no busybox.
            return ExecResult(error=not_found_message(argv[0] if argv else ""))

        shell = Busybox(
            files=agent.files,
            applets={
                "ps": lambda args, stdin: self._ps(agent),
                "nslookup": lambda args, stdin: self._nslookup(args),
            },
        )
        outcome: Outcome = shell.run(argv)
        return ExecResult(
            stdout=outcome.stdout.encode(),
            stderr=outcome.stderr.encode(),
            exit_code=outcome.exit_code,
            error=outcome.error,
        )

    def _ps(self, agent: Agent) -> Outcome:
        rows = [
            (1, "0:02", "/opt/main"),
            (23, "0:00", "/usr/sbin/crond -n -s"),
            (
                31,
                "0:07",
                f"/usr/sbin/mdsd -a -A -e {MDSD_ERR} -w {MDSD_WARN} -o {MDSD_INFO} -q {MDSD_QOS}",
            ),
            (
                47,
                "0:11",
                "/opt/microsoft/otelcollector/otelcollector --config "
                "/opt/microsoft/otelcollector/collector-config.yml",
            ),
            (
                58,
                "0:00",
                "/usr/bin/inotifywait /etc/config/settings --daemon --recursive "
                "--outfile /opt/inotifyoutput.txt --event create,delete",
            ),
        ]
        if agent.me_running:
            rows.append(
                (
                    64,
                    "0:05",
                    "/usr/sbin/MetricsExtension -Logger File -LogLevel Info "
                    "-LocalControlChannel -TokenSource AMCS -DataDirectory "
                    "/etc/mdsd.d/config-cache/metricsextension -Input otlp_grpc",
                )
            )
        rows.append((211, "0:00", "ps aux"))
        lines = ["PID   USER     TIME  COMMAND"]
        lines += [f"{pid:>5} root      {cpu} {command}" for pid, cpu, command in rows]
        return Outcome(stdout="\n".join(lines) + "\n")

    def _nslookup(self, args: list[str]) -> Outcome:
        names = [a for a in args if not a.startswith("-")]
        if not names:
            return Outcome(
                stderr="BusyBox v1.36.1 multi-call binary.\n\nUsage: nslookup HOST [DNS_SERVER]\n",
                exit_code=1,
            )
        name = names[0].rstrip(".")
        resolution = self._azure.resolve(name, self.view.vnet_id())
        head = f"Server:\t\t{CLUSTER_DNS}\nAddress:\t{CLUSTER_DNS}:53\n\n"
        if resolution.nxdomain or not resolution.addresses:
            return Outcome(stdout=head + f"** server can't find {name}: NXDOMAIN\n\n", exit_code=1)
        lines = ["Non-authoritative answer:"]
        previous = name
        for alias in resolution.cname_chain:
            lines.append(f"{previous}\tcanonical name = {alias}")
            previous = alias
        for address in resolution.addresses:
            lines.append(f"Name:\t{previous}")
            lines.append(f"Address: {address}")
        return Outcome(stdout=head + "\n".join(lines) + "\n\n")
