"""The Azure half of the sandbox's scenarios, with the names of the original runbook.

``addon-only`` is the runbook's start: an AKS private cluster with the managed Prometheus add-on
(the workspace with its managed DCE and DCR, the ``MSProm-…`` DCE and DCR, the Container insights
rule, and the two ``ContainerInsights*`` associations), and nothing of the private link. The other
scenarios add what the project creates, tagged and named as the project names it (tag
``managed-by: aks-metrics-pipeline``; the association's description says so, as associations
carry no tags): the AMPLS with both DCEs, the private endpoint with its DNS zone group, the five
zones linked to the VNet, and (``port-mismatch``, ``healthy``) the ``configurationAccessEndpoint``
association. Every write goes through the same validation and side effects as an ARM call, so the
zone group writes its records and the endpoint gets its IPs exactly as in a provisioning run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.azure.models import AzureState

PROJECT_TAGS = {"managed-by": "aks-metrics-pipeline"}
SCENARIOS = ("addon-only", "no-dcra", "port-mismatch", "healthy")
PRIVATE_DNS_ZONES = (
    "privatelink.monitor.azure.com",
    "privatelink.oms.opinsights.azure.com",
    "privatelink.ods.opinsights.azure.com",
    "privatelink.agentsvc.azure-automation.net",
    "privatelink.blob.core.windows.net",
)


@dataclass(frozen=True)
class AzureEnvironment:
    """The names of one cluster's Azure resources (defaults: the original runbook's)."""

    name: str = "rubicon-krc-01"
    subscription_id: str = "f752aff6-b20c-4973-b32b-0a60ba2c6764"
    location: str = "koreacentral"
    resource_group: str = "rg-rubicon-koreacentral-01"
    cluster: str = "aks-rubicon-koreacentral-01"
    vnet: str = "vnet-rubicon-koreacentral-01"
    vnet_prefix: str = "10.2.0.0/16"
    aks_subnet: str = "aks-subnet"
    aks_subnet_prefix: str = "10.2.1.0/24"
    pe_subnet: str = "pe-subnet"
    pe_subnet_prefix: str = "10.2.0.0/24"
    workspace: str = "azuremonitor-workspace-rubicon-krc-01"
    grafana: str = "grafanaworkspacerubicon"
    configuration_dce: str = "MSProm-koreacentral-aks-rubicon-koreacentral"
    # The host suffix the runbook's nslookup shows for the configuration DCE.
    configuration_dce_suffix: str | None = "ruja"
    prometheus_dcr: str = "MSProm-koreacentral-aks-rubicon-koreacentral-01"
    container_insights_dcr: str = "MSCI-koreacentral-aks-rubicon-koreacentral"
    private_link_scope: str = "ampls-rubicon-krc-01"
    private_endpoint: str = "pe-ampls-rubicon-krc-01"
    zone_group: str = "default"
    zones: tuple[str, ...] = field(default=PRIVATE_DNS_ZONES)
    dns_resource_group: str | None = None  # defaults to resource_group

    # -- ids ------------------------------------------------------------------------------------

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def managed_resource_group(self) -> str:
        return f"MA_{self.workspace}_{self.location}_managed"

    @property
    def managed_group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.managed_resource_group}"

    def _in(self, group_id: str, provider_type: str, name: str) -> str:
        return f"{group_id}/providers/{provider_type}/{name}"

    @property
    def cluster_id(self) -> str:
        return self._in(self.group_id, "Microsoft.ContainerService/managedClusters", self.cluster)

    @property
    def vnet_id(self) -> str:
        return self._in(self.group_id, "Microsoft.Network/virtualNetworks", self.vnet)

    @property
    def aks_subnet_id(self) -> str:
        return f"{self.vnet_id}/subnets/{self.aks_subnet}"

    @property
    def pe_subnet_id(self) -> str:
        return f"{self.vnet_id}/subnets/{self.pe_subnet}"

    @property
    def workspace_id(self) -> str:
        return self._in(self.group_id, "Microsoft.Monitor/accounts", self.workspace)

    @property
    def grafana_id(self) -> str:
        return self._in(self.group_id, "Microsoft.Dashboard/grafana", self.grafana)

    @property
    def configuration_dce_id(self) -> str:
        return self._in(
            self.group_id, "Microsoft.Insights/dataCollectionEndpoints", self.configuration_dce
        )

    @property
    def ingestion_dce_id(self) -> str:
        return self._in(
            self.managed_group_id, "Microsoft.Insights/dataCollectionEndpoints", self.workspace
        )

    @property
    def prometheus_dcr_id(self) -> str:
        return self._in(
            self.group_id, "Microsoft.Insights/dataCollectionRules", self.prometheus_dcr
        )

    @property
    def workspace_dcr_id(self) -> str:
        return self._in(
            self.managed_group_id, "Microsoft.Insights/dataCollectionRules", self.workspace
        )

    @property
    def container_insights_dcr_id(self) -> str:
        return self._in(
            self.group_id, "Microsoft.Insights/dataCollectionRules", self.container_insights_dcr
        )

    @property
    def private_link_scope_id(self) -> str:
        return self._in(
            self.group_id, "Microsoft.Insights/privateLinkScopes", self.private_link_scope
        )

    @property
    def private_endpoint_id(self) -> str:
        return self._in(self.group_id, "Microsoft.Network/privateEndpoints", self.private_endpoint)

    @property
    def dns_group_id(self) -> str:
        group = self.dns_resource_group or self.resource_group
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{group}"

    def zone_id(self, zone: str) -> str:
        return self._in(self.dns_group_id, "Microsoft.Network/privateDnsZones", zone)

    def association_id(self, name: str) -> str:
        return (
            f"{self.cluster_id}/providers/Microsoft.Insights/dataCollectionRuleAssociations/{name}"
        )

    @classmethod
    def fleet_member(cls, index: int, *, subscription_id: str | None = None) -> AzureEnvironment:
        """The ``index``-th cluster of a fleet: its own group, VNet, workspace and AMPLS.

        VNets get distinct address spaces (10.{100+index/256}.{index%256}…) so that private IPs
        never collide, which matters once environments share DNS.
        """
        second = 100 + index // 64
        third = (index % 64) * 4
        suffix = f"{index:04d}"
        return cls(
            name=f"fleet-{suffix}",
            subscription_id=subscription_id or cls.subscription_id,
            resource_group=f"rg-fleet-{suffix}",
            cluster=f"aks-fleet-{suffix}",
            vnet=f"vnet-fleet-{suffix}",
            vnet_prefix=f"10.{second}.{third}.0/22",
            aks_subnet_prefix=f"10.{second}.{third + 1}.0/24",
            pe_subnet_prefix=f"10.{second}.{third}.0/24",
            workspace=f"amw-fleet-{suffix}",
            grafana=f"grafana-fleet-{suffix}",
            configuration_dce=f"MSProm-koreacentral-aks-fleet-{suffix}",
            configuration_dce_suffix=None,
            prometheus_dcr=f"MSProm-koreacentral-aks-fleet-{suffix}",
            container_insights_dcr=f"MSCI-koreacentral-aks-fleet-{suffix}",
            private_link_scope=f"ampls-fleet-{suffix}",
            private_endpoint=f"pe-ampls-fleet-{suffix}",
        )


SEED = AzureEnvironment()


def build_scenario(
    state: AzureState, name: str, *, environment: AzureEnvironment = SEED
) -> AzureEnvironment:
    """Build the Azure half of scenario ``name`` for one environment (the seed's by default)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    with state.batch():
        build_addon(state, environment)
        if name != "addon-only":
            build_private_link(state, environment)
        if name in ("port-mismatch", "healthy"):
            build_configuration_association(state, environment)
    return environment


def add_environment(
    state: AzureState, environment: AzureEnvironment, *, scenario: str = "healthy"
) -> AzureEnvironment:
    """Add another cluster environment (fleet tests) in the given scenario's Azure state.

    To add many, wrap the calls in ``with state.batch():`` so the state is saved once.
    """
    return build_scenario(state, scenario, environment=environment)


def build_addon(state: AzureState, env: AzureEnvironment) -> None:
    """What AKS and the managed Prometheus add-on create: the runbook's starting point."""
    state.ensure(f"/subscriptions/{env.subscription_id}", {"displayName": "rubicon"})
    state.ensure(env.group_id, {"location": env.location})
    state.ensure(
        env.managed_group_id,
        {"location": env.location, "managedBy": env.workspace_id},
    )
    if env.dns_resource_group:
        state.ensure(env.dns_group_id, {"location": env.location})

    state.ensure(
        env.vnet_id,
        {
            "location": env.location,
            "properties": {
                "addressSpace": {"addressPrefixes": [env.vnet_prefix]},
                "provisioningState": "Succeeded",
                "resourceGuid": _guid(env.vnet_id),
            },
        },
    )
    for subnet, prefix, policies in (
        (env.pe_subnet, env.pe_subnet_prefix, "Disabled"),
        (env.aks_subnet, env.aks_subnet_prefix, "Disabled"),
    ):
        state.ensure(
            f"{env.vnet_id}/subnets/{subnet}",
            {
                "properties": {
                    "addressPrefix": prefix,
                    "privateEndpointNetworkPolicies": policies,
                    "privateLinkServiceNetworkPolicies": "Enabled",
                }
            },
        )

    state.ensure(
        env.workspace_id,
        {
            "location": env.location,
            "properties": {
                "accountId": _guid(env.workspace_id),
                "metrics": {
                    "prometheusQueryEndpoint": f"{{arm_url}}/prometheus/{env.workspace}",
                    "internalId": f"mac_{_guid(env.workspace_id)}",
                },
                "defaultIngestionSettings": {
                    "dataCollectionEndpointResourceId": env.ingestion_dce_id,
                    "dataCollectionRuleResourceId": env.workspace_dcr_id,
                },
                "publicNetworkAccess": "Enabled",
            },
        },
    )
    # The workspace's own endpoint and rule live in its managed resource group.
    state.ensure(
        env.ingestion_dce_id,
        {
            "location": env.location,
            "kind": "Linux",
            "properties": {"networkAcls": {"publicNetworkAccess": "Enabled"}},
        },
    )
    state.ensure(env.workspace_dcr_id, _prometheus_rule(env, env.ingestion_dce_id))

    state.ensure(
        env.grafana_id,
        {
            "location": env.location,
            "sku": {"name": "Standard"},
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "endpoint": f"https://{env.grafana}-{_guid(env.grafana_id)[:8]}.kcn.grafana.azure.com",
                "grafanaIntegrations": {
                    "azureMonitorWorkspaceIntegrations": [
                        {"azureMonitorWorkspaceResourceId": env.workspace_id}
                    ]
                },
                "publicNetworkAccess": "Enabled",
            },
        },
    )

    state.ensure(
        env.cluster_id,
        {
            "location": env.location,
            "identity": {"type": "SystemAssigned"},
            "sku": {"name": "Base", "tier": "Standard"},
            "properties": {
                "kubernetesVersion": "1.32.7",
                "dnsPrefix": env.cluster,
                "fqdnSubdomain": env.cluster,
                "privateFQDN": (
                    f"{env.cluster}-{_guid(env.cluster_id)[:8]}"
                    f".privatelink.{env.location}.azmk8s.io"
                ),
                "apiServerAccessProfile": {
                    "enablePrivateCluster": True,
                    "privateDNSZone": "system",
                    "enablePrivateClusterPublicFQDN": False,
                },
                "agentPoolProfiles": [
                    {
                        "name": "nodepool1",
                        "count": 1,
                        "vmSize": "Standard_D4s_v5",
                        "mode": "System",
                        "osType": "Linux",
                        "vnetSubnetID": env.aks_subnet_id,
                        "nodeTaints": ["CriticalAddonsOnly=true:NoSchedule"],
                    },
                    {
                        "name": "general",
                        "count": 1,
                        "vmSize": "Standard_D4s_v5",
                        "mode": "User",
                        "osType": "Linux",
                        "vnetSubnetID": env.aks_subnet_id,
                        "nodeTaints": ["workload=general:NoSchedule"],
                    },
                ],
                "networkProfile": {
                    "networkPlugin": "azure",
                    "networkPluginMode": "overlay",
                    "podCidr": "10.244.0.0/16",
                    "serviceCidr": "10.0.0.0/16",
                    "dnsServiceIP": "10.0.0.10",
                    "outboundType": "userDefinedRouting",
                },
                "azureMonitorProfile": {"metrics": {"enabled": True}},
                "addonProfiles": {"omsagent": {"enabled": True, "config": {"useAADAuth": "true"}}},
                "nodeResourceGroup": f"MC_{env.resource_group}_{env.cluster}_{env.location}",
                "provisioningState": "Succeeded",
                "powerState": {"code": "Running"},
            },
        },
    )

    state.ensure(
        env.configuration_dce_id,
        {
            "location": env.location,
            "kind": "Linux",
            "properties": {"networkAcls": {"publicNetworkAccess": "Enabled"}},
        },
    )
    if env.configuration_dce_suffix:
        state.meta(env.configuration_dce_id)["host_suffix"] = env.configuration_dce_suffix
    state.ensure(env.prometheus_dcr_id, _prometheus_rule(env, env.configuration_dce_id))
    state.ensure(
        env.container_insights_dcr_id,
        {
            "location": env.location,
            "kind": "Linux",
            "properties": {
                "dataSources": {
                    "extensions": [
                        {
                            "name": "ContainerInsightsExtension",
                            "extensionName": "ContainerInsights",
                            "streams": ["Microsoft-ContainerInsights-Group-Default"],
                            "extensionSettings": {"dataCollectionSettings": {"interval": "1m"}},
                        }
                    ]
                },
                "destinations": {"logAnalytics": []},
                "dataFlows": [
                    {
                        "streams": ["Microsoft-ContainerInsights-Group-Default"],
                        "destinations": ["ciworkspace"],
                    }
                ],
            },
        },
    )
    state.ensure(
        env.association_id("ContainerInsightsExtension"),
        {"properties": {"dataCollectionRuleId": env.container_insights_dcr_id}},
    )
    state.ensure(
        env.association_id("ContainerInsightsMetricsExtension"),
        {"properties": {"dataCollectionRuleId": env.prometheus_dcr_id}},
    )


def build_private_link(state: AzureState, env: AzureEnvironment) -> None:
    """The runbook's sections 3.3 to 3.4, as the project makes it: AMPLS, scope, endpoint, DNS."""
    state.ensure(
        env.private_link_scope_id,
        {
            "location": "global",
            "tags": PROJECT_TAGS,
            "properties": {
                "accessModeSettings": {"ingestionAccessMode": "Open", "queryAccessMode": "Open"}
            },
        },
    )
    # The configuration DCE first: its members take the first addresses, as in the runbook.
    for dce_id in (env.configuration_dce_id, env.ingestion_dce_id):
        name = dce_id.rsplit("/", 1)[1]
        state.ensure(
            f"{env.private_link_scope_id}/scopedResources/{name}",
            {"properties": {"linkedResourceId": dce_id}},
        )
    for zone in env.zones:
        state.ensure(env.zone_id(zone), {"location": "global", "tags": PROJECT_TAGS})
        state.ensure(
            f"{env.zone_id(zone)}/virtualNetworkLinks/{env.vnet}",
            {
                "location": "global",
                "tags": PROJECT_TAGS,
                "properties": {
                    "virtualNetwork": {"id": env.vnet_id},
                    "registrationEnabled": False,
                },
            },
        )
    state.ensure(
        env.private_endpoint_id,
        {
            "location": env.location,
            "tags": PROJECT_TAGS,
            "properties": {
                "subnet": {"id": env.pe_subnet_id},
                "privateLinkServiceConnections": [
                    {
                        "name": f"{env.private_endpoint}-connection",
                        "properties": {
                            "privateLinkServiceId": env.private_link_scope_id,
                            "groupIds": ["azuremonitor"],
                        },
                    }
                ],
            },
        },
    )
    state.ensure(
        f"{env.private_endpoint_id}/privateDnsZoneGroups/{env.zone_group}",
        {
            "properties": {
                "privateDnsZoneConfigs": [
                    {
                        "name": zone.replace(".", "-"),
                        "properties": {"privateDnsZoneId": env.zone_id(zone)},
                    }
                    for zone in env.zones
                ]
            }
        },
    )


def build_configuration_association(state: AzureState, env: AzureEnvironment) -> None:
    """The runbook's section 3.6: the ``configurationAccessEndpoint`` association."""
    state.ensure(
        env.association_id("configurationAccessEndpoint"),
        {
            "properties": {
                "description": f"managed-by: aks-metrics-pipeline (environment {env.name})",
                "dataCollectionEndpointId": env.configuration_dce_id,
            }
        },
    )


def _prometheus_rule(env: AzureEnvironment, dce_id: str) -> dict[str, object]:
    """A managed Prometheus rule that sends to the workspace through ``dce_id``."""
    return {
        "location": env.location,
        "kind": "Linux",
        "properties": {
            "dataCollectionEndpointId": dce_id,
            "dataSources": {
                "prometheusForwarder": [
                    {
                        "name": "PrometheusDataSource",
                        "streams": ["Microsoft-PrometheusMetrics"],
                        "labelIncludeFilter": {},
                    }
                ]
            },
            "destinations": {
                "monitoringAccounts": [
                    {"accountResourceId": env.workspace_id, "name": "MonitoringAccount1"}
                ]
            },
            "dataFlows": [
                {"streams": ["Microsoft-PrometheusMetrics"], "destinations": ["MonitoringAccount1"]}
            ],
        },
    }


def _guid(seed: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed.lower()))
