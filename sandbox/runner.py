"""Start the whole sandbox in one process and tell the clients how to reach it.

`SandboxRunner` builds (or reloads) the state of a scenario, starts the ARM server with its DNS
resolvers (`sandbox.azure`), the Kubernetes API server (`sandbox.kube`) and the workload
behaviour (`sandbox.behaviour`) on one asyncio loop, and writes into the sandbox directory:

- `environment.yaml`: the seed's environment, pointed at this sandbox (absolute paths);
- `ca.pem`, `kubeconfig`, `client-secret` (mode 0600), `opentelemetry-operator.yaml`;
- `sandbox.json`: `{"pid", "arm_url", "kube_url", "dns": {vnet_id: "host:port"}, "scenario"}`,
  present only while the sandbox runs;
- `sandbox.log`, and `state/` (persisted Azure, Kubernetes and workspace state).

State survives a restart: without `fresh`, a directory that already holds state is reloaded
instead of building the scenario again. Ports are chosen anew at every start (unless given), so
the files above are rewritten each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.behaviour.ama_metrics import AmaMetricsAgents, AzureView
from sandbox.behaviour.collector import CollectorFleet
from sandbox.behaviour.network import HttpRequest, PodNetwork
from sandbox.behaviour.operator import OperatorController
from sandbox.behaviour.scenarios import (
    ENVIRONMENT_NAME,
    OPERATOR_MANIFEST,
    SCENARIOS,
    build_kubernetes,
)
from sandbox.behaviour.services import ServiceProxy
from sandbox.behaviour.workspace import WorkspaceQueryApi, WorkspaceStore

logger = logging.getLogger(__name__)

# The seed's names (the runbook's cluster); the Azure half of the scenarios uses the same ones.
SUBSCRIPTION_ID = "f752aff6-b20c-4973-b32b-0a60ba2c6764"
LOCATION = "koreacentral"
RESOURCE_GROUP = "rg-rubicon-koreacentral-01"
CLUSTER = "aks-rubicon-koreacentral-01"
VNET = "vnet-rubicon-koreacentral-01"
WORKSPACE = "azuremonitor-workspace-rubicon-krc-01"
MANAGED_RESOURCE_GROUP = f"MA_{WORKSPACE}_{LOCATION}_managed"
CLUSTER_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"
    f"/providers/Microsoft.ContainerService/managedClusters/{CLUSTER}"
)
VNET_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"
    f"/providers/Microsoft.Network/virtualNetworks/{VNET}"
)
WORKSPACE_ID = (
    f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"
    f"/providers/Microsoft.Monitor/accounts/{WORKSPACE}"
)

STATE_DIR = "state"
KUBE_STATE_FILE = "kube-state.json"
WORKSPACE_STATE_FILE = "workspaces.json"
SCENARIO_FILE = "scenario.json"
SANDBOX_JSON = "sandbox.json"
LOG_FILE = "sandbox.log"
PERSIST_INTERVAL = 1.0


class SandboxError(Exception):
    """A problem that stops the sandbox from starting, in words meant for a person."""


@dataclass
class RunnerOptions:
    """How to start a sandbox."""

    directory: Path
    scenario: str = "healthy"
    fresh: bool = False
    host: str = "127.0.0.1"
    arm_port: int = 0
    kube_port: int = 0
    agent_start_delay: float = 1.0
    agent_retry_interval: float = 3.0
    lro_delay: float = 0.3


@dataclass
class SandboxPaths:
    """Where the runner writes what the clients need."""

    directory: Path

    @property
    def state(self) -> Path:
        return self.directory / STATE_DIR

    @property
    def environment(self) -> Path:
        return self.directory / "environment.yaml"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def client_secret(self) -> Path:
        return self.directory / "client-secret"

    @property
    def operator_manifest(self) -> Path:
        return self.directory / "opentelemetry-operator.yaml"

    @property
    def sandbox_json(self) -> Path:
        return self.directory / SANDBOX_JSON

    @property
    def log(self) -> Path:
        return self.directory / LOG_FILE

    def client_files(self) -> list[Path]:
        """The files a client of the sandbox uses, in the order `up` lists them."""
        return [
            self.environment,
            self.kubeconfig,
            self.ca,
            self.client_secret,
            self.operator_manifest,
            self.sandbox_json,
            self.log,
        ]


def check_directory(directory: Path) -> None:
    """Refuse a sandbox directory that cannot be one (a file, or not writable)."""
    if directory.exists() and not directory.is_dir():
        raise SandboxError(f"{directory} exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    if not os.access(directory, os.W_OK):
        raise SandboxError(f"{directory} is not writable")


def environment_document(
    *, paths: SandboxPaths, arm_url: str, dns: str, tenant_id: str, client_id: str
) -> dict[str, Any]:
    """The environment file of the sandbox: the seed's names, pointed at the emulators."""
    directory = paths.directory.resolve()
    tolerations = [
        {"key": "workload", "operator": "Equal", "value": "general", "effect": "NoSchedule"},
        {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    ]
    return {
        "name": ENVIRONMENT_NAME,
        "subscription_id": SUBSCRIPTION_ID,
        "location": LOCATION,
        "cloud": {
            "name": "custom",
            "arm_endpoint": arm_url,
            "authority_host": arm_url,
            "credential_scope": "https://management.azure.com/.default",
            "ca_bundle": str(directory / paths.ca.name),
            "disable_instance_discovery": True,
        },
        "auth": {
            "method": "client_secret",
            "tenant_id": tenant_id,
            "client_id": client_id,
            "client_secret_file": str(directory / paths.client_secret.name),
        },
        "cluster": {"resource_group": RESOURCE_GROUP, "name": CLUSTER, "tolerations": tolerations},
        "kubernetes": {"kubeconfig": str(directory / paths.kubeconfig.name), "context": None},
        "network": {
            "resource_group": RESOURCE_GROUP,
            "vnet": VNET,
            "aks_subnet": "aks-subnet",
            "private_endpoint_subnet": "pe-subnet",
            "dns_resolver": dns,
        },
        "monitor_workspace": {
            "name": WORKSPACE,
            "resource_group": RESOURCE_GROUP,
            "managed_resource_group": MANAGED_RESOURCE_GROUP,
        },
        "grafana": {"name": "grafanaworkspacerubicon", "resource_group": RESOURCE_GROUP},
        "data_collection_endpoints": {
            "configuration": {
                "name": "MSProm-koreacentral-aks-rubicon-koreacentral",
                "resource_group": RESOURCE_GROUP,
                "location": LOCATION,
            },
            "ingestion": {
                "name": WORKSPACE,
                "resource_group": MANAGED_RESOURCE_GROUP,
                "location": LOCATION,
            },
        },
        "data_collection_rules": [
            {
                "name": "MSProm-koreacentral-aks-rubicon-koreacentral-01",
                "resource_group": RESOURCE_GROUP,
                "endpoint": "configuration",
            },
            {"name": WORKSPACE, "resource_group": MANAGED_RESOURCE_GROUP, "endpoint": "ingestion"},
        ],
        "private_link_scope": {
            "name": "ampls-rubicon-krc-01",
            "resource_group": RESOURCE_GROUP,
            "ingestion_access_mode": "Open",
            "query_access_mode": "Open",
        },
        "private_endpoint": {
            "name": "pe-ampls-rubicon-krc-01",
            "resource_group": RESOURCE_GROUP,
            "zone_group": "default",
        },
        "private_dns": {
            "resource_group": RESOURCE_GROUP,
            "zones": [
                "privatelink.monitor.azure.com",
                "privatelink.ods.opinsights.azure.com",
                "privatelink.oms.opinsights.azure.com",
                "privatelink.agentsvc.azure-automation.net",
                "privatelink.blob.core.windows.net",
            ],
        },
        "opentelemetry_operator": {
            "manifest": str(directory / paths.operator_manifest.name),
            "namespace": "opentelemetry-operator-system",
            "mirror_registry": None,
        },
        "collector": {
            "namespace": "opentelemetry-operator-system",
            "name": "otel-collector",
            "mode": "deployment",
            "replicas": 1,
            "otlp_grpc_port": 4317,
            "otlp_http_port": 4318,
            "batch": {"send_batch_size": 1024, "timeout": "5s"},
            "prometheus_exporter": {"port": 8889, "resource_to_telemetry_conversion": True},
        },
        "pod_monitor": {
            "name": "otel-collector-metrics",
            "namespace": "opentelemetry-operator-system",
            "endpoints": [
                {"port": "prometheus", "path": "/metrics", "interval": "30s"},
                {
                    "port": "metrics",
                    "path": "/metrics",
                    "interval": "30s",
                    "metric_relabelings": [
                        {
                            "targetLabel": "source",
                            "replacement": "otel-collector",
                            "action": "replace",
                        }
                    ],
                },
            ],
        },
        "canary": {"enabled": True},
    }


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (the client secret)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


class SandboxRunner:
    """Owns every server and behaviour of one sandbox, from start to stop."""

    def __init__(self, options: RunnerOptions) -> None:
        if options.scenario not in SCENARIOS:
            raise SandboxError(
                f"unknown scenario {options.scenario!r}; valid scenarios: " + ", ".join(SCENARIOS)
            )
        self.options = options
        self.paths = SandboxPaths(options.directory.resolve())
        self.scenario = options.scenario
        self.azure_state: Any = None
        self.kube_store: Any = None
        self.azure: Any = None
        self.kube: Any = None
        self.workspaces = WorkspaceStore()
        self.network = PodNetwork()
        self.agents: AmaMetricsAgents | None = None
        self.operator: OperatorController | None = None
        self._persist_task: asyncio.Task[None] | None = None

    # -- state ---------------------------------------------------------------------------------

    def _prepare_state(self) -> bool:
        """Create or reload the state; True when a persisted state was reloaded."""
        from sandbox.azure.models import STATE_FILE, AzureState
        from sandbox.kube.models import KubeStore

        state_dir = self.paths.state
        if self.options.fresh and state_dir.exists():
            # Keep the TLS material: clients that trust the old CA keep working.
            for child in state_dir.iterdir():
                if child.name in ("tls", "webhook-tls"):
                    continue
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        state_dir.mkdir(parents=True, exist_ok=True)

        kube_file = state_dir / KUBE_STATE_FILE
        scenario_file = state_dir / SCENARIO_FILE
        reload = (state_dir / STATE_FILE).is_file() and kube_file.is_file()
        self.azure_state = AzureState(state_dir=state_dir)
        self.kube_store = KubeStore()
        if reload:
            self.kube_store.load(kube_file)
            saved = json.loads(scenario_file.read_text()) if scenario_file.is_file() else {}
            self.scenario = saved.get("scenario", self.scenario)
            workspaces = state_dir / WORKSPACE_STATE_FILE
            if workspaces.is_file():
                self.workspaces.load(json.loads(workspaces.read_text()))
            logger.info(
                "reloaded the persisted state of scenario %s from %s", self.scenario, state_dir
            )
            return True

        _build_azure(self.azure_state, self.scenario)
        build_kubernetes(
            self.kube_store, SCENARIOS[self.scenario], webhook_tls_dir=state_dir / "webhook-tls"
        )
        scenario_file.write_text(json.dumps({"scenario": self.scenario}))
        self._save()
        logger.info("built scenario %s", self.scenario)
        return False

    def _save(self) -> None:
        state_dir = self.paths.state
        self.kube_store.save(state_dir / KUBE_STATE_FILE)
        self.kube_store.changed.clear()
        target = state_dir / WORKSPACE_STATE_FILE
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.workspaces.dump()))
        temporary.replace(target)
        self.azure_state.save()

    async def _persist(self) -> None:
        """Save the Kubernetes and workspace state every second while something changed."""
        while True:
            await asyncio.sleep(PERSIST_INTERVAL)
            try:
                if self.kube_store.changed.is_set():
                    self.kube_store.changed.clear()
                    self.kube_store.save(self.paths.state / KUBE_STATE_FILE)
                target = self.paths.state / WORKSPACE_STATE_FILE
                temporary = target.with_suffix(".tmp")
                temporary.write_text(json.dumps(self.workspaces.dump()))
                temporary.replace(target)
            except OSError:
                logger.exception("could not persist the sandbox state")

    # -- start and stop ------------------------------------------------------------------------

    async def start(self) -> None:
        """Build or reload the state, start both servers and the behaviour, write the files."""
        from sandbox.azure.server import AzureSandbox
        from sandbox.kube.server import KubeSandbox
        from sandbox.tls import make_tls_bundle

        check_directory(self.paths.directory)
        self._prepare_state()
        tls = make_tls_bundle(
            self.paths.state / "tls", hostnames=("localhost",), ips=(self.options.host,)
        )

        self.azure = AzureSandbox(
            self.azure_state,
            host=self.options.host,
            arm_port=self.options.arm_port,
            tls=tls,
            lro_delay=self.options.lro_delay,
        )
        self.kube = KubeSandbox(
            self.kube_store, host=self.options.host, port=self.options.kube_port, tls=tls
        )
        loop = asyncio.get_running_loop()
        self._attach_behaviour(loop)
        try:
            await self.azure.start()
        except OSError as exc:
            raise SandboxError(
                f"cannot start the ARM server on {self.options.host}:"
                f"{self.options.arm_port}: {exc.strerror or exc}"
            ) from None
        try:
            await self.kube.start()
        except OSError as exc:
            await self.azure.stop()
            raise SandboxError(
                f"cannot start the Kubernetes API server on {self.options.host}:"
                f"{self.options.kube_port}: {exc.strerror or exc}"
            ) from None
        assert self.agents is not None
        self.agents.start()
        self._persist_task = loop.create_task(self._persist(), name="persist")
        self._write_files(tls.ca_pem)
        logger.info(
            "sandbox up: ARM %s, Kubernetes %s, scenario %s",
            self.azure.arm_url,
            self.kube.url,
            self.scenario,
        )

    def _attach_behaviour(self, loop: asyncio.AbstractEventLoop) -> None:
        store = self.kube_store
        fleet = CollectorFleet(store, self.network)
        store.subscribe(fleet.on_event)
        proxy = ServiceProxy(store, self.network)
        store.register_service_proxy(_proxy_adapter(proxy))

        self.operator = OperatorController(store)
        self.operator.attach(loop)

        view = AzureView(
            self.azure_state,
            cluster_id=CLUSTER_ID,
            fallback_vnet_id=VNET_ID,
            fallback_workspace=WORKSPACE,
        )
        self.agents = AmaMetricsAgents(
            store,
            self.azure_state,
            self.network,
            self.workspaces,
            view=view,
            cluster_name=CLUSTER,
            start_delay=self.options.agent_start_delay,
            retry_interval=self.options.agent_retry_interval,
        )
        self.agents.attach()
        self.agents.settle()

        query_api = WorkspaceQueryApi(
            self.workspaces,
            token_check=_token_check(self.azure),
            known=self._workspace_exists,
        )
        for method, path, handler in query_api.routes():
            self.azure.add_route(method, path, handler)

    def _workspace_exists(self, name: str) -> bool:
        for account in self.azure_state.list_prefix(f"/subscriptions/{SUBSCRIPTION_ID}/"):
            if (
                account.get("type", "").lower() == "microsoft.monitor/accounts"
                and account.get("name", "").lower() == name.lower()
            ):
                return True
        return False

    def _write_files(self, ca_pem: Path) -> None:
        paths = self.paths
        shutil.copyfile(ca_pem, paths.ca)
        shutil.copyfile(OPERATOR_MANIFEST, paths.operator_manifest)
        self.kube.write_kubeconfig(paths.kubeconfig, ca_file=paths.ca)
        _write_private(paths.client_secret, self.azure.client_secret + "\n")

        dns = {vnet: f"{host}:{port}" for vnet, (host, port) in self.azure.dns_addresses.items()}
        cluster_dns = next(
            (address for vnet, address in dns.items() if vnet.lower() == VNET_ID.lower()),
            next(iter(dns.values()), ""),
        )
        document = environment_document(
            paths=paths,
            arm_url=self.azure.arm_url,
            dns=cluster_dns,
            tenant_id=self.azure.tenant_id,
            client_id=self.azure.client_id,
        )
        header = (
            "# The sandbox's environment: the seed's cluster, served by `python -m sandbox` from\n"
            f"# {paths.directory}. Rewritten at every start (ports change).\n"
        )
        paths.environment.write_text(header + yaml.safe_dump(document, sort_keys=False))
        paths.sandbox_json.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "arm_url": self.azure.arm_url,
                    "kube_url": self.kube.url,
                    "dns": dns,
                    "scenario": self.scenario,
                },
                indent=2,
            )
            + "\n"
        )

    async def stop(self) -> None:
        """Stop the behaviour and the servers, save the state, remove `sandbox.json`."""
        if self._persist_task is not None:
            self._persist_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._persist_task
        if self.agents is not None:
            await self.agents.stop()
        for server in (self.kube, self.azure):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop()
        if self.kube_store is not None and self.azure_state is not None:
            with contextlib.suppress(OSError):
                self._save()
        with contextlib.suppress(FileNotFoundError):
            self.paths.sandbox_json.unlink()
        logger.info("sandbox stopped")


def _build_azure(state: Any, scenario: str) -> None:
    """Build the Azure half of a scenario with engineer A's scenario builder."""
    from sandbox.azure import scenarios as azure_scenarios

    azure_scenarios.build_scenario(state, scenario)


def _token_check(azure: Any) -> Any:
    """A bearer-token check for the workspace query API, using the ARM server's own check."""
    from sandbox.azure.identity import AuthError

    def check(request: Any) -> bool:
        try:
            azure.directory.check(request.headers.get("Authorization"))
        except AuthError:
            return False
        return True

    return check


def _proxy_adapter(proxy: ServiceProxy) -> Any:
    """Bridge the API server's service-proxy hook to the in-process pod network."""
    from sandbox.kube.models import ProxyResponse

    def handle(request: Any) -> Any:
        path = request.path if request.path.startswith("/") else "/" + request.path
        response = proxy.handle(
            namespace=request.namespace,
            service=request.service,
            port=request.port,
            request=HttpRequest(
                method=request.method,
                path=path,
                query=request.query,
                headers=dict(request.headers),
                body=request.body,
            ),
        )
        if response is None:
            return None
        return ProxyResponse(status=response.status, headers=response.headers, body=response.body)

    return handle


def configure_logging(log_file: Path, *, console: bool) -> None:
    """Log to `sandbox.log` (and to stderr in the foreground); never a secret."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(formatter)
    root.addHandler(file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    # The HTTP access logs would drown the behaviour's lines.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


async def serve(options: RunnerOptions, *, ready: asyncio.Event | None = None) -> None:
    """Run a sandbox until SIGTERM or SIGINT, then stop it cleanly."""
    runner = SandboxRunner(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await runner.start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await runner.stop()
