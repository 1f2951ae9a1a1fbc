"""The environment model: one YAML file per cluster, validated before any call is made.

An environment names everything the runbook touches: the cluster, its network, the Azure Monitor
workspace, the two data collection endpoints with their roles, the rules, the private link scope,
the private endpoint, the private DNS zones, and the Kubernetes objects (operator, collector,
PodMonitor). Resource ids are derived from these names (see :mod:`aksmetrics.ids`) and never typed
twice.

:func:`load_environment` reports every problem of a file at once, each naming the field and the
rule, so that a person fixes the file in one pass.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from aksmetrics import ids

PROJECT_TAG = "managed-by"
PROJECT_TAG_VALUE = "aks-metrics-pipeline"
FIELD_MANAGER = "aks-metrics-pipeline"
ENVIRONMENT_LABEL = "aks-metrics-pipeline/environment"

DEFAULT_PRIVATE_DNS_ZONES = (
    "privatelink.monitor.azure.com",
    "privatelink.ods.opinsights.azure.com",
    "privatelink.oms.opinsights.azure.com",
    "privatelink.agentsvc.azure-automation.net",
    "privatelink.blob.core.windows.net",
)

# The OpenTelemetry operator always gives the collector's own telemetry this container port.
COLLECTOR_TELEMETRY_PORT = 8888

# Naming rules, from Azure's "Naming rules and restrictions for Azure resources" and Kubernetes'.
GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_RULES: dict[str, tuple[str, str]] = {
    "environment": (
        r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$",
        "1-40 lower-case letters, digits and hyphens, starting and ending with a letter or digit",
    ),
    "region": (r"^[a-z][a-z0-9]{1,40}$", "an Azure region name such as 'koreacentral'"),
    "resource_group": (
        r"^[-\w.()]{0,89}[-\w()]$",
        "1-90 letters, digits, '_', '-', '.', '(' or ')', not ending with '.'",
    ),
    "cluster": (
        r"^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?$",
        "1-63 letters, digits, '-' or '_', starting and ending with a letter or digit",
    ),
    "vnet": (
        r"^[a-zA-Z0-9]([\w.-]{0,62}[\w])?$",
        "2-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
    "subnet": (
        r"^[a-zA-Z0-9]([\w.-]{0,78}[\w])?$",
        "1-80 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
    "workspace": (
        r"^[a-zA-Z0-9][a-zA-Z0-9-]{2,42}[a-zA-Z0-9]$",
        "4-44 letters, digits or '-', starting and ending with a letter or digit",
    ),
    "grafana": (
        r"^[a-zA-Z][a-zA-Z0-9-]{0,21}[a-zA-Z0-9]$",
        "2-23 letters, digits or '-', starting with a letter",
    ),
    "data_collection_endpoint": (
        r"^[a-zA-Z0-9][a-zA-Z0-9-]{1,42}[a-zA-Z0-9]$",
        "3-44 letters, digits or '-', starting and ending with a letter or digit",
    ),
    "data_collection_rule": (
        r"^[a-zA-Z0-9][\w.-]{0,62}[a-zA-Z0-9_]$",
        "2-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
    "private_link_scope": (
        r"^[\w.()-]{1,255}$",
        "1-255 letters, digits, '_', '-', '.', '(' or ')'",
    ),
    "private_endpoint": (
        r"^[a-zA-Z0-9]([\w.-]{0,78}[\w])?$",
        "2-80 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
    "dns_zone": (
        r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
        "a lower-case DNS name such as 'privatelink.monitor.azure.com'",
    ),
    "k8s_name": (
        r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$",
        "a Kubernetes name: lower-case letters, digits, '-' or '.', starting and ending with a "
        "letter or digit",
    ),
    "k8s_namespace": (
        r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        "a Kubernetes namespace: 1-63 lower-case letters, digits or '-'",
    ),
    "port_name": (
        r"^(?=.{1,15}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        "a container port name: 1-15 lower-case letters, digits or '-'",
    ),
    "duration": (r"^[0-9]+(ms|s|m|h)$", "a duration such as '30s', '5s' or '1m'"),
}


def _named(rule: str) -> Any:
    """A pydantic validator that checks a string against one of the naming rules above."""
    pattern, description = _RULES[rule]
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(f"{value!r} is not valid: expected {description}")
        return value

    return check


def _name(rule: str) -> Any:
    return Annotated[str, AfterValidator(_named(rule))]


EnvironmentName = _name("environment")
Region = _name("region")
ResourceGroup = _name("resource_group")
K8sName = _name("k8s_name")
K8sNamespace = _name("k8s_namespace")
PortName = _name("port_name")
Duration = _name("duration")
Port = Annotated[int, Field(ge=1, le=65535)]


class Model(BaseModel):
    """Base of every section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Cloud(Model):
    """Which Azure cloud to talk to, or custom endpoints (Azure Stack, an emulator)."""

    name: Literal["public", "usgovernment", "china", "custom"] = "public"
    arm_endpoint: str | None = None
    authority_host: str | None = None
    credential_scope: str | None = None
    prometheus_query_scope: str = "https://prometheus.monitor.azure.com/.default"
    ca_bundle: Path | None = None
    disable_instance_discovery: bool = False

    @field_validator("arm_endpoint", "authority_host")
    @classmethod
    def _https_only(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("https://"):
            raise ValueError(f"{value!r} must be an https:// URL (TLS is never turned off)")
        return value.rstrip("/") if value else value

    def resolved_arm_endpoint(self) -> str:
        return self.arm_endpoint or _CLOUDS[self.name][0]

    def resolved_authority_host(self) -> str:
        return self.authority_host or _CLOUDS[self.name][1]

    def resolved_credential_scope(self) -> str:
        return self.credential_scope or _CLOUDS[self.name][2]


# ARM endpoint, authority host and ARM token scope of the built-in clouds. The US Government scope
# host differs from its endpoint host, so the scope is never derived from the endpoint.
_CLOUDS: dict[str, tuple[str, str, str]] = {
    "public": (
        "https://management.azure.com",
        "https://login.microsoftonline.com",
        "https://management.azure.com/.default",
    ),
    "usgovernment": (
        "https://management.usgovcloudapi.net",
        "https://login.microsoftonline.us",
        "https://management.core.usgovcloudapi.net/.default",
    ),
    "china": (
        "https://management.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/.default",
    ),
    "custom": ("", "", "https://management.azure.com/.default"),
}


class Auth(Model):
    """How to obtain Azure credentials. A secret is never written into the file itself."""

    method: Literal["default", "workload_identity", "managed_identity", "client_secret"] = "default"
    tenant_id: Annotated[str, Field(pattern=GUID)] | None = None
    client_id: Annotated[str, Field(pattern=GUID)] | None = None
    client_secret_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = None
    client_secret_file: Path | None = None


class Toleration(Model):
    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Cluster(Model):
    resource_group: ResourceGroup
    name: _name("cluster")  # type: ignore[valid-type]
    tolerations: tuple[Toleration, ...] = ()


class Kubernetes(Model):
    kubeconfig: Path | None = None
    context: str | None = None


class Network(Model):
    resource_group: ResourceGroup
    vnet: _name("vnet")  # type: ignore[valid-type]
    aks_subnet: _name("subnet")  # type: ignore[valid-type]
    private_endpoint_subnet: _name("subnet")  # type: ignore[valid-type]
    dns_resolver: str | None = Field(
        default=None,
        description="host:port of a resolver that answers as the cluster's VNet does, for probes "
        "run by the worker itself; empty means probe only from inside the cluster",
    )

    @field_validator("dns_resolver")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[\w.-]+(:[0-9]{1,5})?$", value):
            raise ValueError(f"{value!r} is not valid: expected 'host' or 'host:port'")
        return value


class MonitorWorkspace(Model):
    name: _name("workspace")  # type: ignore[valid-type]
    resource_group: ResourceGroup
    managed_resource_group: ResourceGroup | None = None


class Grafana(Model):
    name: _name("grafana")  # type: ignore[valid-type]
    resource_group: ResourceGroup


class DataCollectionEndpoint(Model):
    name: _name("data_collection_endpoint")  # type: ignore[valid-type]
    resource_group: ResourceGroup
    location: Region


EndpointRole = Literal["configuration", "ingestion"]


class DataCollectionEndpoints(Model):
    """The two roles an endpoint plays. One endpoint may fill both when regions match."""

    configuration: DataCollectionEndpoint
    ingestion: DataCollectionEndpoint | None = None


class DataCollectionRule(Model):
    name: _name("data_collection_rule")  # type: ignore[valid-type]
    resource_group: ResourceGroup
    endpoint: str = Field(description="the role of the endpoint this rule must name")


class PrivateLinkScope(Model):
    name: _name("private_link_scope")  # type: ignore[valid-type]
    resource_group: ResourceGroup
    ingestion_access_mode: Literal["Open", "PrivateOnly"] = "Open"
    query_access_mode: Literal["Open", "PrivateOnly"] = "Open"


class PrivateEndpoint(Model):
    name: _name("private_endpoint")  # type: ignore[valid-type]
    resource_group: ResourceGroup
    zone_group: _name("private_endpoint") = "default"  # type: ignore[valid-type]


class PrivateDns(Model):
    resource_group: ResourceGroup
    zones: tuple[_name("dns_zone"), ...] = DEFAULT_PRIVATE_DNS_ZONES  # type: ignore[valid-type]
    link_name: _name("private_endpoint") | None = None  # type: ignore[valid-type]


class OpenTelemetryOperator(Model):
    manifest: str = Field(description="path or https URL of the operator's release manifest")
    namespace: K8sNamespace = "opentelemetry-operator-system"
    mirror_registry: str | None = Field(
        default=None,
        description="registry host (and path) that mirrors the operator and collector images",
    )

    @field_validator("mirror_registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._/-]+)?$", value):
            raise ValueError(
                f"{value!r} is not valid: expected a registry such as 'myacr.azurecr.io/mirror'"
            )
        return value.rstrip("/") if value else value


class Batch(Model):
    send_batch_size: Annotated[int, Field(ge=1)] = 1024
    timeout: Duration = "5s"


class PrometheusExporter(Model):
    port: Port = 8889
    resource_to_telemetry_conversion: bool = True


class Collector(Model):
    namespace: K8sNamespace = "opentelemetry-operator-system"
    name: K8sName = "otel-collector"
    mode: Literal["deployment", "daemonset", "statefulset"] = "deployment"
    replicas: Annotated[int, Field(ge=1, le=100)] = 1
    image: str | None = None
    otlp_grpc_port: Port = 4317
    otlp_http_port: Port = 4318
    batch: Batch = Batch()
    prometheus_exporter: PrometheusExporter = PrometheusExporter()

    def container_ports(self) -> dict[str, int]:
        """The container port names the OpenTelemetry operator gives this collector's pods."""
        return {
            "otlp-grpc": self.otlp_grpc_port,
            "otlp-http": self.otlp_http_port,
            "prometheus": self.prometheus_exporter.port,
            "metrics": COLLECTOR_TELEMETRY_PORT,
        }


class PodMonitorEndpoint(Model):
    port: PortName
    path: Annotated[str, Field(pattern=r"^/")] = "/metrics"
    interval: Duration = "30s"
    metric_relabelings: tuple[dict[str, Any], ...] = ()


class PodMonitor(Model):
    name: K8sName = "otel-collector-metrics"
    namespace: K8sNamespace = "opentelemetry-operator-system"
    endpoints: tuple[PodMonitorEndpoint, ...] = Field(min_length=1)


class AmaMetrics(Model):
    """Where the managed Prometheus add-on lives; the defaults are the add-on's own names."""

    namespace: K8sNamespace = "kube-system"
    deployment: K8sName = "ama-metrics"
    container: K8sName = "prometheus-collector"
    daemonset_selector: str = "dsName=ama-metrics-node"


class Canary(Model):
    enabled: bool = False
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 180.0


class Environment(Model):
    """One cluster's complete desired state, as read from its environment file."""

    name: EnvironmentName
    subscription_id: Annotated[str, Field(pattern=GUID)]
    location: Region
    cloud: Cloud = Cloud()
    auth: Auth = Auth()
    cluster: Cluster
    kubernetes: Kubernetes = Kubernetes()
    network: Network
    monitor_workspace: MonitorWorkspace
    grafana: Grafana | None = None
    data_collection_endpoints: DataCollectionEndpoints
    data_collection_rules: tuple[DataCollectionRule, ...] = Field(min_length=1)
    private_link_scope: PrivateLinkScope
    private_endpoint: PrivateEndpoint
    private_dns: PrivateDns
    opentelemetry_operator: OpenTelemetryOperator
    collector: Collector = Collector()
    pod_monitor: PodMonitor
    ama_metrics: AmaMetrics = AmaMetrics()
    canary: Canary = Canary()

    # -- derived resource ids ------------------------------------------------------------------

    @property
    def cluster_id(self) -> str:
        return ids.managed_cluster_id(
            self.subscription_id, self.cluster.resource_group, self.cluster.name
        )

    @property
    def vnet_id(self) -> str:
        return ids.virtual_network_id(
            self.subscription_id, self.network.resource_group, self.network.vnet
        )

    @property
    def aks_subnet_id(self) -> str:
        return ids.subnet_id(self.vnet_id, self.network.aks_subnet)

    @property
    def private_endpoint_subnet_id(self) -> str:
        return ids.subnet_id(self.vnet_id, self.network.private_endpoint_subnet)

    @property
    def monitor_workspace_id(self) -> str:
        ws = self.monitor_workspace
        return ids.monitor_workspace_id(self.subscription_id, ws.resource_group, ws.name)

    def endpoint(self, role: str) -> DataCollectionEndpoint:
        """The endpoint playing ``role``; the configuration endpoint ingests when no other does."""
        endpoints = self.data_collection_endpoints
        if role == "configuration":
            return endpoints.configuration
        if role == "ingestion":
            return endpoints.ingestion or endpoints.configuration
        raise KeyError(f"no data collection endpoint role {role!r}")

    def endpoint_id(self, role: str) -> str:
        dce = self.endpoint(role)
        return ids.data_collection_endpoint_id(self.subscription_id, dce.resource_group, dce.name)

    def distinct_endpoints(self) -> list[tuple[str, DataCollectionEndpoint]]:
        """Each endpoint once, with the first role it plays (both must be in the scope)."""
        seen: set[str] = set()
        result = []
        for role in ("configuration", "ingestion"):
            endpoint_id = self.endpoint_id(role).lower()
            if endpoint_id not in seen:
                seen.add(endpoint_id)
                result.append((role, self.endpoint(role)))
        return result

    def rule_id(self, rule: DataCollectionRule) -> str:
        return ids.data_collection_rule_id(self.subscription_id, rule.resource_group, rule.name)

    @property
    def configuration_association_id(self) -> str:
        return ids.data_collection_rule_association_id(
            self.cluster_id, "configurationAccessEndpoint"
        )

    @property
    def private_link_scope_id(self) -> str:
        scope = self.private_link_scope
        return ids.private_link_scope_id(self.subscription_id, scope.resource_group, scope.name)

    @property
    def private_endpoint_id(self) -> str:
        pe = self.private_endpoint
        return ids.private_endpoint_id(self.subscription_id, pe.resource_group, pe.name)

    @property
    def zone_group_id(self) -> str:
        return ids.private_dns_zone_group_id(
            self.private_endpoint_id, self.private_endpoint.zone_group
        )

    def zone_id(self, zone: str) -> str:
        return ids.private_dns_zone_id(self.subscription_id, self.private_dns.resource_group, zone)

    @property
    def vnet_link_name(self) -> str:
        return self.private_dns.link_name or f"{self.network.vnet}-link"

    def vnet_link_id(self, zone: str) -> str:
        return ids.virtual_network_link_id(self.zone_id(zone), self.vnet_link_name)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an environment file: where, and what the rule is."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class InvalidEnvironment(ValueError):
    """An environment file that must not be used; ``problems`` lists everything wrong with it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(
            f"{source} is not a valid environment ({len(problems)} problem(s)):\n{lines}"
        )


# Keys that must never hold a literal secret: a file names where the secret is, not what it is.
_SECRET_KEYS = re.compile(
    r"(secret|password|passwd|token|api_?key|access_?key|private_?key)$", re.I
)
_SECRET_REFERENCES = ("client_secret_env", "client_secret_file")


def environments_dir() -> Path:
    """The folder holding one environment file per cluster: ``deployments/environments``."""
    return Path(__file__).resolve().parent.parent / "deployments" / "environments"


def resolve_environment_path(reference: str | Path) -> Path:
    """Turn what a person typed (a path, or a name under deployments/environments) into a path."""
    path = Path(reference).expanduser()
    if path.is_file():
        return path
    named = environments_dir() / f"{reference}.yaml"
    if named.is_file():
        return named
    known = sorted(p.stem for p in environments_dir().glob("*.yaml"))
    raise FileNotFoundError(
        f"no environment file {str(reference)!r}: give a path to a YAML file, or one of the names "
        f"under {environments_dir()}: {', '.join(known) or '(none)'}"
    )


def load_environment(reference: str | Path) -> Environment:
    """Read and validate an environment file; :class:`InvalidEnvironment` lists every problem."""
    path = resolve_environment_path(reference)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        # The context mark points at the construct that was left open, which is what to fix.
        mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(file)"
        raise InvalidEnvironment(str(path), [Problem(where, f"not valid YAML: {error}")]) from None
    return parse_environment(raw, source=str(path), base_dir=path.parent)


def parse_environment(
    raw: Any, *, source: str = "<environment>", base_dir: Path | None = None
) -> Environment:
    """Validate already-parsed YAML; relative paths in it are taken from ``base_dir``."""
    if not isinstance(raw, dict):
        raise InvalidEnvironment(
            source, [Problem("(file)", "expected a mapping of keys to values")]
        )

    problems = list(_secret_problems(raw))
    environment: Environment | None = None
    try:
        environment = Environment.model_validate(raw)
    except ValidationError as error:
        problems.extend(_describe(error))
    problems.extend(_cross_field_problems(raw))

    if problems:
        raise InvalidEnvironment(source, _unique(problems))
    assert environment is not None
    return _with_paths_resolved(environment, base_dir) if base_dir else environment


def _with_paths_resolved(environment: Environment, base_dir: Path) -> Environment:
    def resolve(path: Path | None) -> Path | None:
        if path is None:
            return None
        path = path.expanduser()
        return path if path.is_absolute() else (base_dir / path).resolve()

    manifest = environment.opentelemetry_operator.manifest
    if "://" not in manifest:
        manifest = str(resolve(Path(manifest)))
    return environment.model_copy(
        update={
            "cloud": environment.cloud.model_copy(
                update={"ca_bundle": resolve(environment.cloud.ca_bundle)}
            ),
            "auth": environment.auth.model_copy(
                update={"client_secret_file": resolve(environment.auth.client_secret_file)}
            ),
            "kubernetes": environment.kubernetes.model_copy(
                update={"kubeconfig": resolve(environment.kubernetes.kubeconfig)}
            ),
            "opentelemetry_operator": environment.opentelemetry_operator.model_copy(
                update={"manifest": manifest}
            ),
        }
    )


def _describe(error: ValidationError) -> Iterator[Problem]:
    """Turn pydantic's errors into problems that name the field and say what to do."""
    for item in error.errors():
        location = _location(item["loc"])
        if item["type"] == "extra_forbidden":
            yield Problem(location, _unknown_key_message(item["loc"]))
        elif item["type"] == "missing":
            yield Problem(location, "is required but missing")
        elif item["type"] == "string_pattern_mismatch" and location.endswith(
            ("subscription_id", "tenant_id", "client_id")
        ):
            yield Problem(
                location,
                f"{item['input']!r} is not a GUID like '00000000-0000-0000-0000-000000000000'",
            )
        else:
            message = item["msg"].removeprefix("Value error, ")
            yield Problem(location, message)


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not str(part).startswith(("function-after", "lax-or-strict")):
            text += f".{part}" if text else str(part)
    return text or "(file)"


def _unknown_key_message(loc: tuple[Any, ...]) -> str:
    key = str(loc[-1])
    known = _known_keys(loc[:-1])
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys here: {', '.join(known)}"
    return f"unknown key {key!r}{hint}"


def _known_keys(parent: tuple[Any, ...]) -> list[str]:
    """The field names allowed at a location, by walking the model along the location."""
    model: Any = Environment
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_of(argument)
        if found is not None:
            return found
    return None


def _secret_problems(raw: dict[str, Any], prefix: str = "") -> Iterator[Problem]:
    """Refuse any key that looks like it holds a literal secret, wherever it is."""
    for key, value in raw.items():
        location = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _secret_problems(value, location)
        elif _SECRET_KEYS.search(str(key)) and value not in (None, ""):
            yield Problem(
                location,
                "a literal secret must not be written into an environment file; name an "
                "environment variable with 'client_secret_env' or a file with 'client_secret_file'",
            )


def _cross_field_problems(raw: dict[str, Any]) -> Iterator[Problem]:
    """Rules that span fields. They read the raw mapping defensively, so that they run (and report)
    even when some fields are broken."""

    def section(name: str) -> dict[str, Any]:
        value = raw.get(name)
        return value if isinstance(value, dict) else {}

    location = raw.get("location")
    endpoints = section("data_collection_endpoints")
    roles = [
        role for role in ("configuration", "ingestion") if isinstance(endpoints.get(role), dict)
    ]

    rules = raw.get("data_collection_rules")
    if isinstance(rules, list):
        seen_rules: set[tuple[str, str]] = set()
        for index, rule in enumerate(rules):
            if not isinstance(rule, dict):
                continue
            role = rule.get("endpoint")
            if role is not None and role not in ("configuration", "ingestion"):
                yield Problem(
                    f"data_collection_rules[{index}].endpoint",
                    f"{role!r} is not an endpoint role: use 'configuration' or 'ingestion'",
                )
            elif role == "ingestion" and "ingestion" not in roles and "configuration" not in roles:
                yield Problem(
                    f"data_collection_rules[{index}].endpoint",
                    "names the 'ingestion' endpoint, but data_collection_endpoints defines none",
                )
            key = (str(rule.get("resource_group", "")).lower(), str(rule.get("name", "")).lower())
            if key in seen_rules:
                yield Problem(
                    f"data_collection_rules[{index}].name",
                    f"{rule.get('name')!r} is listed twice in resource group "
                    f"{rule.get('resource_group')!r}",
                )
            seen_rules.add(key)

    configuration = endpoints.get("configuration")
    if isinstance(configuration, dict) and isinstance(location, str):
        dce_location = configuration.get("location")
        if isinstance(dce_location, str) and dce_location.lower() != location.lower():
            yield Problem(
                "data_collection_endpoints.configuration.location",
                f"{dce_location!r} differs from the cluster's region {location!r}: the agent "
                f"fetches its configuration only through an endpoint in its own region; create "
                f"one in {location!r}",
            )

    zones = section("private_dns").get("zones")
    if isinstance(zones, list):
        seen_zones: set[str] = set()
        for index, zone in enumerate(zones):
            if not isinstance(zone, str):
                continue
            if zone.lower() in seen_zones:
                yield Problem(f"private_dns.zones[{index}]", f"{zone!r} is listed twice")
            seen_zones.add(zone.lower())
        if "privatelink.monitor.azure.com" not in seen_zones:
            yield Problem(
                "private_dns.zones",
                "must include 'privatelink.monitor.azure.com': the configuration and ingestion "
                "names resolve through it",
            )

    network = section("network")
    if network.get("aks_subnet") is not None and network.get("aks_subnet") == network.get(
        "private_endpoint_subnet"
    ):
        yield Problem(
            "network.private_endpoint_subnet",
            "must differ from network.aks_subnet: the runbook puts the private endpoint in its "
            "own subnet",
        )

    yield from _collector_problems(section("collector"), section("pod_monitor"))
    yield from _auth_problems(section("auth"), section("cloud"))


def _collector_problems(
    collector: dict[str, Any], pod_monitor: dict[str, Any]
) -> Iterator[Problem]:
    try:
        ports = Collector.model_validate(collector).container_ports()
    except ValidationError:
        return  # the field errors are reported already
    by_number: dict[int, str] = {}
    for port_name, number in ports.items():
        if number in by_number:
            yield Problem(
                "collector",
                f"ports {by_number[number]!r} and {port_name!r} both use {number}; "
                "give each its own",
            )
        by_number[number] = port_name

    endpoints = pod_monitor.get("endpoints")
    if isinstance(endpoints, list):
        for index, endpoint in enumerate(endpoints):
            port = endpoint.get("port") if isinstance(endpoint, dict) else None
            if isinstance(port, str) and port not in ports:
                yield Problem(
                    f"pod_monitor.endpoints[{index}].port",
                    f"{port!r} names no container port of the collector (it has "
                    f"{', '.join(ports)}); a PodMonitor whose port matches nothing scrapes nothing",
                )


def _auth_problems(auth: dict[str, Any], cloud: dict[str, Any]) -> Iterator[Problem]:
    method = auth.get("method", "default")
    if method == "client_secret":
        for key in ("tenant_id", "client_id"):
            if not auth.get(key):
                yield Problem(f"auth.{key}", "is required when auth.method is 'client_secret'")
        given = [key for key in _SECRET_REFERENCES if auth.get(key)]
        if len(given) != 1:
            yield Problem(
                "auth",
                "with method 'client_secret', give exactly one of 'client_secret_env' (an "
                "environment variable's name) or 'client_secret_file' (a file's path)",
            )
    elif any(auth.get(key) for key in _SECRET_REFERENCES):
        yield Problem(
            "auth",
            f"'client_secret_env'/'client_secret_file' are only used with method 'client_secret', "
            f"not {method!r}",
        )
    if cloud.get("name") == "custom":
        for key in ("arm_endpoint", "authority_host"):
            if not cloud.get(key):
                yield Problem(f"cloud.{key}", "is required when cloud.name is 'custom'")


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    result = []
    for problem in problems:
        key = (problem.location, problem.message)
        if key not in seen:
            seen.add(key)
            result.append(problem)
    return result
