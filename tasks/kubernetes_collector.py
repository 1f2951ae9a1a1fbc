"""The OpenTelemetry collector and the PodMonitor through which ama-metrics scrapes it.

:func:`ensure_collector` applies the runbook's ``OpenTelemetryCollector`` (OTLP in, batch,
Prometheus exporter on 8889) and, in apply mode, waits until the operator has rolled out its
Deployment. :func:`ensure_pod_monitor` then applies the ``azmonitoring.coreos.com/v1`` PodMonitor,
but only after checking each endpoint's port name against the container ports the operator actually
gave the collector: a PodMonitor whose port matches nothing is accepted by the API server and
scrapes nothing, without an error anywhere (the runbook's ``prometheus-dev``).
"""

from __future__ import annotations

from prefect import task

from aksmetrics.changes import Change, kubernetes_id
from aksmetrics.desired import (
    POD_MONITOR_API_VERSION,
    POD_MONITOR_KIND,
    collector,
    collector_workload_kind,
    collector_workload_name,
    container_port_names,
    pod_monitor,
    pod_monitor_port_problems,
)
from aksmetrics.environment import Environment
from tasks.kubernetes_objects import api_resource, ensure_object, read_object, wait_for_rollout
from tasks.retries import StepFailed
from tasks.steps import STEP, report


@task(name="ensure-collector", **STEP)
def ensure_collector(
    env: Environment, *, image: str | None = None, plan: bool, allow_adopt: bool
) -> list[Change]:
    """Ensure the collector CR; in apply mode wait for the workload the operator makes of it.

    ``image`` is the collector image to pin when the environment names none (the operator's default
    moved to the mirror registry); None leaves the choice to the operator.
    """
    manifest = collector(env, image=image)
    change = ensure_object(env, manifest, plan=plan, allow_adopt=allow_adopt)
    if not plan:
        wait_for_rollout(
            env, collector_workload_kind(env), env.collector.namespace, collector_workload_name(env)
        )
    return report(change)


@task(name="ensure-pod-monitor", **STEP)
def ensure_pod_monitor(env: Environment, *, plan: bool, allow_adopt: bool) -> list[Change]:
    """Ensure the PodMonitor, refusing one whose port names match no collector container port."""
    manifest = pod_monitor(env)
    identity = kubernetes_id(
        POD_MONITOR_API_VERSION, POD_MONITOR_KIND, env.pod_monitor.namespace, env.pod_monitor.name
    )
    if api_resource(env, POD_MONITOR_API_VERSION, POD_MONITOR_KIND) is None:
        raise StepFailed(
            identity,
            "the cluster serves no PodMonitor in azmonitoring.coreos.com/v1",
            hint="enable the managed Prometheus add-on (azureMonitorProfile.metrics) on the "
            "cluster; it installs the azmonitoring.coreos.com CRDs",
        )

    workload = read_object(
        env,
        "apps/v1",
        collector_workload_kind(env),
        env.collector.namespace,
        collector_workload_name(env),
    )
    note = ""
    if workload is not None:
        template = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
        ports = container_port_names(template)
    elif plan:
        # The collector does not exist yet: check against the ports the operator will give it.
        ports = set(env.collector.container_ports())
        note = "port names checked against the ports the operator will create"
    else:
        raise StepFailed(
            identity,
            f"the collector's {collector_workload_kind(env)} {env.collector.namespace}/"
            f"{collector_workload_name(env)} does not exist, so the PodMonitor's ports cannot be "
            f"checked",
            hint="run the collector step first and check the operator's logs",
        )

    problems = pod_monitor_port_problems(manifest, ports)
    if problems:
        raise StepFailed(
            identity,
            "; ".join(problems),
            hint="name the collector's container port in pod_monitor.endpoints[].port",
        )
    change = ensure_object(env, manifest, plan=plan, allow_adopt=allow_adopt)
    if note and change.action != "unchanged":
        change = change.model_copy(update={"note": note})
    return report(change)
