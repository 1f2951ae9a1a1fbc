"""The ``teardown`` flow: remove what provision created, in reverse order, only what is ours.

Read top to bottom it is provision backwards. On the Kubernetes plane: the PodMonitor, the collector
(waited for until gone), then the operator's objects, CRDs and namespace last. On the Azure plane:
the ``configurationAccessEndpoint`` association, the private endpoint with its DNS zone group, our
VNet links and the private DNS zones nobody else uses, the endpoints' scoped resources and the
AMPLS. The rules keep the endpoint provision gave them: they are not the project's. When the agent's
Azure side changed, ama-metrics is restarted so that it stops using what is gone.

Nothing is deleted without ``confirm`` set to the environment's name: an unconfirmed run shows the
plan (as ``plan=true`` does) and ends Failed, saying what to type. A scheduled drift check with
policy ``safe`` would put everything back; pause its schedule first (docs/production.md).

The two planes run side by side under the environment's write lock. See :mod:`tasks.teardown` for
what counts as owned and the guards that keep shared objects (a zone with other records, a CRD
with other users).
"""

from __future__ import annotations

import contextlib
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from aksmetrics.changes import Change, publish_artifacts, render_table, summary
from aksmetrics.environment import Environment, InvalidEnvironment, load_environment
from tasks.ama_metrics import restart_ama_metrics
from tasks.kubernetes_operator import load_operator_manifest
from tasks.locks import environment_lock
from tasks.steps import logger
from tasks.teardown import (
    delete_collector,
    delete_configuration_association,
    delete_operator,
    delete_pod_monitor,
    delete_private_dns_zone,
    delete_private_endpoint,
    delete_private_link_scope,
    kept_rules,
)


@flow(
    name="teardown",
    description="Remove what provision created in an environment, in reverse order and only what "
    "the project owns; needs the environment's name as confirmation.",
    task_runner=ThreadPoolTaskRunner(max_workers=8),
    validate_parameters=True,
)
def teardown(
    environment: str = Field(
        ...,
        description="The environment: a name under deployments/environments (e.g. rubicon-krc-01) "
        "or a path to an environment file.",
    ),
    confirm: str = Field(
        "",
        description="Type the environment's name (the `name:` in its file, e.g. rubicon-krc-01) "
        "to allow deletes. Without it nothing is deleted: the run lists what it would delete and "
        "ends Failed.",
    ),
    plan: bool = Field(
        False, description="Plan only: read everything, delete nothing, list what would go."
    ),
) -> State:
    """Tear one environment down; returns a state whose data are the change records."""
    env = _load(environment)
    confirmed = confirm.strip() == env.name
    dry = plan or not confirmed
    log = logger()
    log.info("%s teardown of %s", "planning the" if dry else "running the", env.name)

    lock = contextlib.nullcontext() if dry else environment_lock(env.name, purpose="teardown")
    with lock:
        futures = kubernetes_plane(env, plan=dry) + azure_plane(env, plan=dry)
        changes, failures = _collect(futures)
        changes += kept_rules(env)
        if not failures:
            changes += restart_if_needed(env, changes, plan=dry)

    title = f"{'Teardown plan' if dry else 'Teardown'} of {env.name}"
    publish_artifacts(changes, key=f"teardown-{env.name}", title=title)
    log.info("%s: %s\n%s", title, summary(changes), render_table(changes))

    if failures:
        return Failed(
            message=f"teardown of {env.name} stopped:\n"
            + "\n".join(f"  - {failure}" for failure in failures),
            data=changes,
        )
    if not plan and not confirmed:
        return Failed(
            message=f"nothing deleted: set confirm to {env.name!r} to delete what the plan lists",
            data=changes,
        )
    return Completed(message=f"{title}: {summary(changes)}", data=changes)


def kubernetes_plane(env: Environment, *, plan: bool) -> list[tuple[str, PrefectFuture[Any]]]:
    """The PodMonitor, then the collector, then the operator: each once the one before is gone."""
    manifests = load_operator_manifest.submit(env)
    pod_monitor = delete_pod_monitor.submit(env, plan=plan)
    collector = delete_collector.submit(env, plan=plan, wait_for=[pod_monitor])
    operator = delete_operator.submit(env, manifests, plan=plan, wait_for=[collector])
    return [
        ("operator manifest", manifests),
        ("PodMonitor", pod_monitor),
        ("collector", collector),
        ("operator", operator),
    ]


def azure_plane(env: Environment, *, plan: bool) -> list[tuple[str, PrefectFuture[Any]]]:
    """The association first (the agent stops asking for the private configuration), then the
    private endpoint with its zone group, then the zones and the AMPLS it connected to."""
    association = delete_configuration_association.submit(env, plan=plan)
    endpoint = delete_private_endpoint.submit(env, plan=plan, wait_for=[association])
    zones = [
        (
            f"private DNS zone {zone}",
            delete_private_dns_zone.submit(env, zone, plan=plan, wait_for=[endpoint]),
        )
        for zone in env.private_dns.zones
    ]
    scope = delete_private_link_scope.submit(env, plan=plan, wait_for=[endpoint])
    return [
        ("configurationAccessEndpoint", association),
        ("private endpoint", endpoint),
        *zones,
        ("AMPLS", scope),
    ]


def restart_if_needed(env: Environment, changes: list[Change], *, plan: bool) -> list[Change]:
    """Restart ama-metrics when its Azure side went away, so that it does not keep using it."""
    removed = sorted(
        {
            change.kind
            for change in changes
            if change.plane == "azure" and (change.is_write or change.is_planned_write)
        }
    )
    if not removed:
        return []
    reason = f"its Azure side was removed ({', '.join(removed)})"
    return list(restart_ama_metrics(env, plan=plan, reason=reason))


def _collect(futures: list[tuple[str, PrefectFuture[Any]]]) -> tuple[list[Change], list[str]]:
    """The change records of the steps that finished, and why the others did not."""
    wait([future for _, future in futures])
    changes: list[Change] = []
    failures: list[str] = []
    for label, future in futures:
        result = future.result(raise_on_failure=False)
        if future.state.is_completed():
            changes += [item for item in result if isinstance(item, Change)]
        else:
            reason = str(result) if isinstance(result, BaseException) else future.state.message
            failures.append(f"{label}: {reason}")
    return changes, failures


def _load(reference: str) -> Environment:
    try:
        return load_environment(reference)
    except (FileNotFoundError, InvalidEnvironment) as error:
        raise ValueError(str(error)) from None
