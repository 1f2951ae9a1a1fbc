"""ama-metrics, the managed Prometheus add-on: restarting it, and looking inside its pods.

The agent reads its Azure side (private DNS, the configuration endpoint, the rules) when it starts,
so after the runbook's Azure changes its workloads are restarted the way ``kubectl rollout
restart`` does it (:func:`restart_ama_metrics`: a new ``kubectl.kubernetes.io/restartedAt``
annotation on the pod template of the ``ama-metrics`` Deployment and of each ``ama-metrics-node``
DaemonSet, found by label because newer add-on versions suffix the DaemonSet's name).

Whether the agent got there is then seen from inside its ``prometheus-collector`` container, as the
runbook does with ``kubectl exec`` (:func:`exec_in_pod`): the configuration and ingestion names
resolve to private addresses (``nslookup``), ``TokenConfig.json`` exists (the agent fetched its
configuration), and ``MetricsExtension`` runs (``ps``). :func:`wait_until_healthy` polls these with
backoff until a deadline and then says what it saw last.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
from dataclasses import dataclass, field

from kubernetes import client as kube
from kubernetes.stream import stream
from prefect import task

from aksmetrics.changes import Change, kubernetes_id, outcome
from aksmetrics.desired import RESTARTED_AT_ANNOTATION
from aksmetrics.environment import Environment
from tasks.clients import get_settings, kubernetes_client
from tasks.kubernetes_objects import (
    list_objects,
    patch_object,
    pod_ready,
    read_object,
    selector_string,
    wait_for_rollout,
)
from tasks.retries import Observation, StepFailed, poll, service_errors
from tasks.steps import CHECK, STEP, concurrently, report

TOKEN_CONFIG = "/etc/mdsd.d/config-cache/metricsextension/TokenConfig.json"
METRICS_EXTENSION = "MetricsExtension"


# -- exec ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecResult:
    """What a command run in a container printed and how it ended.

    ``exit_code`` is None when the command did not run at all (for example an executable that does
    not exist); ``error`` then holds the API server's message.
    """

    stdout: str
    stderr: str
    exit_code: int | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def exec_in_pod(
    env: Environment,
    namespace: str,
    pod: str,
    container: str,
    command: list[str],
    *,
    timeout: float = 30.0,
) -> ExecResult:
    """Run ``command`` in a container over the exec websocket and return its output and exit code.

    The exit code is read from the status the server sends on channel 3 when the command ends
    (``Success``, or ``NonZeroExitCode`` with the code as its cause); a failure without a code
    (nothing ran) is kept as ``error``. ``kubernetes.stream`` swaps the API client's transport for
    the duration of the call, so it gets an ``ApiClient`` of its own rather than the shared one.
    """
    api = kube.CoreV1Api(kube.ApiClient(kubernetes_client(env).configuration))
    identity = kubernetes_id("v1", "Pod", namespace, pod)
    with service_errors(identity, doing=f"running {' '.join(command)!r} in container {container}"):
        response = stream(
            api.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=command,
            container=container,
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        try:
            response.run_forever(timeout=timeout)
            stdout = response.read_stdout()
            stderr = response.read_stderr()
            status_text = response.read_channel(3)
        finally:
            response.close()
    return _exec_result(stdout, stderr, status_text)


def _exec_result(stdout: str, stderr: str, status_text: str) -> ExecResult:
    if not status_text:
        return ExecResult(stdout, stderr, None, "the connection closed before the command ended")
    try:
        status = json.loads(status_text)
    except ValueError:
        return ExecResult(stdout, stderr, None, status_text.strip())
    if status.get("status") == "Success":
        return ExecResult(stdout, stderr, 0)
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return ExecResult(stdout, stderr, int(cause.get("message")))
            except (TypeError, ValueError):
                break
    return ExecResult(
        stdout, stderr, None, status.get("message") or status.get("reason") or "failed"
    )


# -- restart ------------------------------------------------------------------------------------


def _restart_patch() -> dict[str, object]:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT_ANNOTATION: now}}}}}


def node_daemonsets(env: Environment) -> list[str]:
    """The names of the add-on's node DaemonSets: those whose pods carry ``daemonset_selector``.

    The add-on puts ``dsName=ama-metrics-node`` on the pods (it is the DaemonSet's selector), not on
    the DaemonSet itself, and newer versions suffix the name, so neither name nor labels will do.
    """
    wanted = dict(item.split("=", 1) for item in env.ama_metrics.daemonset_selector.split(","))
    names = []
    for daemonset in list_objects(env, "apps/v1", "DaemonSet", namespace=env.ama_metrics.namespace):
        spec = daemonset.get("spec") or {}
        labels = {
            **((spec.get("selector") or {}).get("matchLabels") or {}),
            **(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}),
        }
        if all(labels.get(key) == value for key, value in wanted.items()):
            names.append(daemonset["metadata"]["name"])
    return names


@task(name="restart-ama-metrics", **STEP)
def restart_ama_metrics(env: Environment, *, plan: bool, reason: str) -> list[Change]:
    """Rollout-restart the ``ama-metrics`` Deployment and its node DaemonSets, then wait for both
    rollouts (apply mode). ``reason`` says why, in the change records."""
    settings = env.ama_metrics
    workloads = [("Deployment", settings.deployment)]
    if read_object(env, "apps/v1", "Deployment", settings.namespace, settings.deployment) is None:
        raise StepFailed(
            kubernetes_id("apps/v1", "Deployment", settings.namespace, settings.deployment),
            "the ama-metrics Deployment does not exist",
            hint="enable managed Prometheus on the cluster (azureMonitorProfile.metrics.enabled)",
        )
    workloads += [("DaemonSet", name) for name in node_daemonsets(env)]

    changes = []
    for kind, name in workloads:
        if not plan:
            patch_object(env, "apps/v1", kind, settings.namespace, name, _restart_patch())
        changes.append(
            Change(
                action=outcome("restart", plan=plan),
                plane="kubernetes",
                kind=kind,
                resource_id=kubernetes_id("apps/v1", kind, settings.namespace, name),
                note=reason,
            )
        )
    if not plan:
        for kind, name in workloads:
            wait_for_rollout(env, kind, settings.namespace, name)
    return report(*changes)


# -- health -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentHealth:
    """One look inside the ama-metrics pods: what resolved where, and the agent's state."""

    pods: list[str] = field(default_factory=list)
    addresses: dict[str, list[str]] = field(default_factory=dict)
    token_config: bool = False
    metrics_extension: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.pods) and not self.problems

    def describe(self) -> str:
        if self.healthy:
            resolved = ", ".join(
                f"{name} -> {', '.join(ips)}" for name, ips in self.addresses.items()
            )
            pods = ", ".join(self.pods)
            return f"{pods}: {resolved}; TokenConfig.json present; MetricsExtension running"
        return "; ".join(self.problems) or "no ama-metrics pod observed"


def parse_nslookup(output: str) -> list[str]:
    """The addresses busybox ``nslookup`` printed for the name (not the server's own address)."""
    addresses = []
    answered = False
    for line in output.splitlines():
        if line.startswith("Name:"):
            answered = True
            continue
        match = re.match(r"^Address(?:\s+\d+)?:\s*(\S+)", line)
        if answered and match:
            addresses.append(match.group(1))
    return addresses


def is_private_address(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.is_private and not address.is_loopback and not address.is_link_local


def probe_agent(env: Environment, names: dict[str, str]) -> AgentHealth:
    """Look inside every ready pod of the ama-metrics Deployment once (see :class:`AgentHealth`)."""
    settings = env.ama_metrics
    deployment = read_object(env, "apps/v1", "Deployment", settings.namespace, settings.deployment)
    if deployment is None:
        return AgentHealth(
            problems=[f"Deployment {settings.namespace}/{settings.deployment} does not exist"]
        )
    selector = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    pods = [
        pod
        for pod in list_objects(
            env, "v1", "Pod", namespace=settings.namespace, label_selector=selector_string(selector)
        )
        if pod_ready(pod)
    ]
    if not pods:
        return AgentHealth(problems=[f"no ready pod of {settings.deployment} yet"])

    problems: list[str] = []
    addresses: dict[str, list[str]] = {}
    token_config = metrics_extension = True
    for pod in pods:
        pod_name = pod["metadata"]["name"]

        def run(command: list[str], pod_name: str = pod_name) -> ExecResult:
            return exec_in_pod(env, settings.namespace, pod_name, settings.container, command)

        # The lookups and the two looks at the agent are independent: run them side by side.
        commands = [["nslookup", name] for name in names.values()] + [["cat", TOKEN_CONFIG], ["ps"]]
        *lookups, token, processes = concurrently(run, commands)

        for (label, name), result in zip(names.items(), lookups, strict=True):
            found = parse_nslookup(result.stdout)
            addresses[name] = found
            if not found:
                problems.append(
                    f"{pod_name}: {label} {name} does not resolve ({_first_line(result)})"
                )
            elif not all(is_private_address(address) for address in found):
                problems.append(f"{pod_name}: {label} {name} resolves to public {', '.join(found)}")

        if not token.ok:
            token_config = False
            problems.append(f"{pod_name}: {TOKEN_CONFIG} does not exist yet")
        if METRICS_EXTENSION not in processes.stdout:
            metrics_extension = False
            problems.append(f"{pod_name}: {METRICS_EXTENSION} is not running")

    return AgentHealth(
        pods=[pod["metadata"]["name"] for pod in pods],
        addresses=addresses,
        token_config=token_config,
        metrics_extension=metrics_extension,
        problems=problems,
    )


def _first_line(result: ExecResult) -> str:
    text = (result.stderr or result.stdout or result.error or "").strip()
    return text.splitlines()[-1] if text else f"exit code {result.exit_code}"


@task(name="probe-ama-metrics", **CHECK)
def probe_ama_metrics(env: Environment, names: dict[str, str]) -> AgentHealth:
    """One look at the agent's health, without waiting (decides whether a restart is needed)."""
    return probe_agent(env, names)


@task(name="wait-until-healthy", **CHECK)
def wait_until_healthy(env: Environment, names: dict[str, str]) -> str:
    """Wait, with backoff and a deadline, until inside every ama-metrics pod the ``names``
    resolve to private addresses, ``TokenConfig.json`` exists and ``MetricsExtension`` runs."""
    settings = get_settings()

    def look() -> Observation[AgentHealth]:
        health = probe_agent(env, names)
        return Observation(health.healthy, health.describe(), health)

    observation = poll(
        look,
        what="ama-metrics to fetch its configuration over private link",
        timeout=settings.healthy_timeout,
        initial_delay=settings.wait_initial_delay,
        max_delay=settings.wait_max_delay,
    )
    return observation.detail
