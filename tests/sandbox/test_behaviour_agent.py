"""ama-metrics' agent through the seed's failure chain, judged by real clients: the Azure side is
fixed step by step with the real Azure SDKs, ama-metrics is restarted the way `kubectl rollout
restart` does it, and each new pod is inspected with exec over the websocket channel protocol."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from azure.mgmt.monitor import MonitorManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.privatedns import PrivateDnsManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient
from behaviour_support import RunningSandbox, eventually, running_sandbox
from kubernetes import client as k8s
from kubernetes.stream import stream

SUBSCRIPTION = "f752aff6-b20c-4973-b32b-0a60ba2c6764"
RG = "rg-rubicon-koreacentral-01"
MANAGED_RG = "MA_azuremonitor-workspace-rubicon-krc-01_koreacentral_managed"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
CLUSTER_ID = (
    f"{GROUP}/providers/Microsoft.ContainerService/managedClusters/aks-rubicon-koreacentral-01"
)
VNET_ID = f"{GROUP}/providers/Microsoft.Network/virtualNetworks/vnet-rubicon-koreacentral-01"
AMPLS_ID = f"{GROUP}/providers/Microsoft.Insights/privateLinkScopes/ampls-rubicon-krc-01"
CONFIG_DCE = (
    f"{GROUP}/providers/Microsoft.Insights/dataCollectionEndpoints/"
    "MSProm-koreacentral-aks-rubicon-koreacentral"
)
INGESTION_DCE = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{MANAGED_RG}/providers/Microsoft.Insights/"
    "dataCollectionEndpoints/azuremonitor-workspace-rubicon-krc-01"
)
ZONES = [
    "privatelink.monitor.azure.com",
    "privatelink.ods.opinsights.azure.com",
    "privatelink.oms.opinsights.azure.com",
    "privatelink.agentsvc.azure-automation.net",
    "privatelink.blob.core.windows.net",
]
ZONE_PREFIX = f"{GROUP}/providers/Microsoft.Network/privateDnsZones"
MDSD_ERR = "/opt/microsoft/linuxmonagent/mdsd.err"
TOKEN_CONFIG = "/etc/mdsd.d/config-cache/metricsextension/TokenConfig.json"
PRIVATE_LINK_403 = (
    "Data collection endpoint must be used to access configuration over private link."
)


@dataclass
class Exec:
    """What one exec produced: both streams, the exit code, and the channel-3 status."""

    stdout: str
    stderr: str
    exit_code: int | None
    status: dict[str, Any]


def run(core: k8s.CoreV1Api, pod: str, *argv: str, container: str = "prometheus-collector") -> Exec:
    """Exec in a kube-system pod over the websocket protocol, reading channel 3 ourselves."""
    response = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        "kube-system",
        command=list(argv),
        container=container,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    response.run_forever(timeout=10)
    status = yaml.safe_load(response.read_channel(3) or "{}") or {}
    out, err = response.read_stdout(), response.read_stderr()
    response.close()
    code = None
    if status.get("status") == "Success":
        code = 0
    elif status.get("reason") == "NonZeroExitCode":
        code = int(status["details"]["causes"][0]["message"])
    return Exec(out, err, code, status)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("agent"), "addon-only") as running:
        yield running


def agent_pods(core: k8s.CoreV1Api) -> list[str]:
    pods = core.list_namespaced_pod("kube-system", label_selector="rsName=ama-metrics").items
    return [p.metadata.name for p in pods if p.status.phase == "Running"]


def restart_ama_metrics(sandbox: RunningSandbox, core: k8s.CoreV1Api) -> str:
    """`kubectl rollout restart deploy/ama-metrics`, then the one new pod's name."""
    before = set(agent_pods(core))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    k8s.AppsV1Api(sandbox.api_client()).patch_namespaced_deployment(
        "ama-metrics",
        "kube-system",
        {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        },
    )
    pods = eventually(
        lambda: (lambda now: now if len(now) == 1 and not (set(now) & before) else [])(
            agent_pods(core)
        ),
        what="one new ama-metrics pod",
    )
    return pods[0]


def mdsd_err_has(core: k8s.CoreV1Api, pod: str, text: str) -> bool:
    return text in run(core, pod, "cat", MDSD_ERR).stdout


def test_agent_moves_from_ssl_to_403_to_healthy_as_azure_is_fixed(sandbox: RunningSandbox) -> None:
    core = k8s.CoreV1Api(sandbox.api_client())
    credential = sandbox.credential()
    arm = sandbox.arm_kwargs()

    # 1. The seed's start: names resolve publicly and the firewall breaks TLS.
    pod = agent_pods(core)[0]
    eventually(lambda: mdsd_err_has(core, pod, "Error in SSL handshake"), what="SSL errors")
    missing = run(core, pod, "cat", TOKEN_CONFIG)
    assert missing.exit_code == 1
    assert missing.stderr == f"cat: can't open '{TOKEN_CONFIG}': No such file or directory\n"
    assert "MetricsExtension" not in run(core, pod, "ps", "aux").stdout
    unknown = run(core, pod, "curl", "https://example.com")
    assert unknown.status["reason"] == "InternalError"
    assert "executable file not found" in unknown.status["message"]

    # 2. The private link: AMPLS with both DCEs, five zones linked, the private endpoint and its
    #    zone group, each with the SDK the project uses for it.
    resources = ResourceManagementClient(credential, SUBSCRIPTION, **arm)
    resources.resources.begin_create_or_update_by_id(
        AMPLS_ID,
        api_version="2021-07-01-preview",
        parameters={
            "location": "global",
            "properties": {
                "accessModeSettings": {"ingestionAccessMode": "Open", "queryAccessMode": "Open"}
            },
        },
    ).result()
    for dce in (CONFIG_DCE, INGESTION_DCE):
        resources.resources.begin_create_or_update_by_id(
            f"{AMPLS_ID}/scopedResources/{dce.rsplit('/', 1)[-1]}-connection",
            api_version="2021-07-01-preview",
            parameters={"properties": {"linkedResourceId": dce}},
        ).result()
    dns = PrivateDnsManagementClient(credential, SUBSCRIPTION, **arm)
    for zone in ZONES:
        dns.private_zones.begin_create_or_update(RG, zone, {"location": "global"}).result()
        dns.virtual_network_links.begin_create_or_update(
            RG,
            zone,
            "vnet-rubicon-koreacentral-01-link",
            {
                "location": "global",
                "properties": {"virtualNetwork": {"id": VNET_ID}, "registrationEnabled": False},
            },
        ).result()
    network = NetworkManagementClient(credential, SUBSCRIPTION, **arm)
    network.private_endpoints.begin_create_or_update(
        RG,
        "pe-ampls-rubicon-krc-01",
        {
            "location": "koreacentral",
            "properties": {
                "subnet": {"id": f"{VNET_ID}/subnets/pe-subnet"},
                "privateLinkServiceConnections": [
                    {
                        "name": "ampls-rubicon-krc-01",
                        "properties": {
                            "privateLinkServiceId": AMPLS_ID,
                            "groupIds": ["azuremonitor"],
                        },
                    }
                ],
            },
        },
    ).result()
    network.private_dns_zone_groups.begin_create_or_update(
        RG,
        "pe-ampls-rubicon-krc-01",
        "default",
        {
            "properties": {
                "privateDnsZoneConfigs": [
                    {
                        "name": zone.replace(".", "-"),
                        "properties": {"privateDnsZoneId": f"{ZONE_PREFIX}/{zone}"},
                    }
                    for zone in ZONES
                ]
            }
        },
    ).result()

    # The old pod keeps its history; a restarted one meets the private-link 403 instead.
    pod = restart_ama_metrics(sandbox, core)
    eventually(lambda: mdsd_err_has(core, pod, PRIVATE_LINK_403), what="the private-link 403")
    assert "Error in SSL handshake" not in run(core, pod, "cat", MDSD_ERR).stdout
    lookup = run(core, pod, "nslookup", "global.handler.control.monitor.azure.com")
    assert lookup.exit_code == 0
    assert "Address: 10.2.0." in lookup.stdout
    assert run(core, pod, "test", "-f", TOKEN_CONFIG).exit_code == 1

    # 3. The configurationAccessEndpoint DCRA with azure-mgmt-monitor; restart once more.
    monitor = MonitorManagementClient(credential, SUBSCRIPTION, **arm)
    monitor.data_collection_rule_associations.create(
        resource_uri=CLUSTER_ID,
        association_name="configurationAccessEndpoint",
        body={"properties": {"dataCollectionEndpointId": CONFIG_DCE}},
    )
    pod = restart_ama_metrics(sandbox, core)
    token = eventually(
        lambda: (lambda result: result if result.exit_code == 0 else None)(
            run(core, pod, "cat", TOKEN_CONFIG)
        ),
        what="TokenConfig.json written",
    )
    assert json.loads(token.stdout)["tokenSource"] == "AMCS"
    processes = run(core, pod, "sh", "-c", "ps aux | grep -E 'metrics|mdsd|otel'").stdout
    assert "/usr/sbin/MetricsExtension" in processes and "/usr/sbin/mdsd" in processes
    errors = run(core, pod, "cat", MDSD_ERR)
    assert errors.exit_code == 0 and errors.stdout == ""
    info = run(core, pod, "sh", "-c", f"cat {MDSD_ERR.replace('err', 'info')} | tail -30").stdout
    assert "MCS redirected to endpoint https://" in info
    assert "Configuration [dcr-" in info


def test_nxdomain_and_exit_codes_of_busybox_applets(sandbox: RunningSandbox) -> None:
    core = k8s.CoreV1Api(sandbox.api_client())
    pod = agent_pods(core)[0]

    lookup = run(core, pod, "nslookup", "does-not-exist.invalid")
    grep = run(core, pod, "sh", "-c", f"grep -q never-there {MDSD_ERR}")

    assert lookup.exit_code == 1
    assert "** server can't find does-not-exist.invalid: NXDOMAIN" in lookup.stdout
    assert grep.exit_code == 1
    assert run(core, pod, "ls", "/opt/microsoft/linuxmonagent").stdout.split() == [
        "mdsd.err",
        "mdsd.info",
        "mdsd.qos",
        "mdsd.warn",
    ]
    # The token adapter has no shell at all.
    adapter = run(core, pod, "cat", MDSD_ERR, container="addon-token-adapter")
    assert adapter.status["reason"] == "InternalError"
