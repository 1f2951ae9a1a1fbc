"""The ``provision`` flow: the runbook's section 3, as idempotent steps, then wait until healthy.

Read top to bottom, :func:`provision` is the runbook: preflight; the OpenTelemetry operator, the
collector and its PodMonitor (the Kubernetes plane); the AMPLS, its scoped endpoints, the private
endpoint with its private DNS, each rule's endpoint and the ``configurationAccessEndpoint``
association (the Azure plane); then a restart of ama-metrics when its Azure side changed, and a wait
until it resolves privately, holds ``TokenConfig.json`` and runs ``MetricsExtension``; finally the
runbook's checklist, the ``verify`` flow.

The two planes are independent and run side by side; inside each, a step waits for the steps it
builds on. Every step is an *ensure* that writes only what differs, so a second run on a healthy
environment writes nothing; with ``plan`` the run reads only and reports what an apply run would
do. The changes are published as a table artifact (key ``provision-<environment>``) and printed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from prefect import flow
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from aksmetrics.changes import Change, publish_artifacts, render_table, summary
from aksmetrics.desired import default_collector_image
from aksmetrics.environment import Environment, InvalidEnvironment, load_environment
from aksmetrics.steps import STEPS, Step
from flows.verify import verify
from tasks.ama_metrics import (
    AgentHealth,
    probe_ama_metrics,
    restart_ama_metrics,
    wait_until_healthy,
)
from tasks.azure_monitor import (
    ensure_configuration_association,
    ensure_rule_endpoint,
    read_agent_endpoints,
)
from tasks.kubernetes_collector import ensure_collector, ensure_pod_monitor
from tasks.kubernetes_operator import (
    WebhookCertificate,
    ensure_operator_crds,
    ensure_operator_objects,
    ensure_webhook_certificate,
    load_operator_manifest,
    wait_for_operator,
)
from tasks.locks import environment_lock
from tasks.network_dns import ensure_private_dns_zone, ensure_private_endpoint, ensure_zone_group
from tasks.preflight import check_azure_credentials, check_azure_prerequisites, check_kubernetes_api
from tasks.private_link import ensure_private_link_scope, ensure_scoped_resources
from tasks.steps import logger


class ProvisionFailed(Exception):
    """A provision run that did not converge: the changes it made (or, in a plan, would have made)
    before stopping, and ``failures``, the problems other than refusals to touch objects the
    project does not own (those are in ``changes`` with the action ``refused``)."""

    def __init__(self, message: str, changes: list[Change], failures: list[str]) -> None:
        super().__init__(message)
        self.changes = changes
        self.failures = failures

    def __reduce__(self) -> tuple[Any, ...]:
        return (ProvisionFailed, (str(self), self.changes, self.failures))


class _Steps:
    """The futures of one run's steps, so that failures are collected rather than lost."""

    def __init__(self) -> None:
        self.futures: list[tuple[str, PrefectFuture[Any]]] = []

    def add(self, label: str, future: PrefectFuture[Any]) -> PrefectFuture[Any]:
        self.futures.append((label, future))
        return future

    def outcome(self) -> tuple[list[Change], list[str]]:
        """Wait for every step; return the changes of those that finished and why others did not."""
        wait([future for _, future in self.futures])
        changes: list[Change] = []
        failures: list[str] = []
        skipped: list[str] = []
        for label, future in self.futures:
            state = future.state
            if state.is_completed():
                changes.extend(_changes_of(future.result()))
            elif not state.is_final():
                # Prefect leaves a step whose upstream failed in a Pending "NotReady" state.
                skipped.append(label)
            else:
                error = future.result(raise_on_failure=False)
                reason = str(error) if isinstance(error, BaseException) else state.message
                failures.append(f"{label}: {reason}")
        if skipped:
            failures.append(f"not run, as a step they build on failed: {', '.join(skipped)}")
        return changes, failures


def _changes_of(result: Any) -> list[Change]:
    if isinstance(result, WebhookCertificate):
        return list(result.changes)
    if isinstance(result, list):
        return [item for item in result if isinstance(item, Change)]
    return []


@flow(
    name="provision",
    description="Provision the OpenTelemetry → ama-metrics → Azure Monitor pipeline of an AKS "
    "private cluster over private link, as the runbook does, and wait until it is healthy.",
    task_runner=ThreadPoolTaskRunner(max_workers=12),
    validate_parameters=True,
)
def provision(
    environment: str = Field(
        ...,
        description="The environment: a name under deployments/environments (e.g. rubicon-krc-01) "
        "or a path to an environment file.",
    ),
    plan: bool = Field(
        False,
        description="Plan only: read everything, write nothing, and list what an apply run would "
        "change.",
    ),
    # Prefect reads a Field default as the parameter's default and its description for the UI.
    steps: list[Step] | None = Field(  # noqa: B008
        None,
        description="Run only these steps (all when empty). Steps left out are not waited for.",
    ),
    allow_adopt: bool = Field(
        False,
        description="Allow changing objects this project did not create (no managed-by tag or "
        "environment label). Without it such changes are refused and listed.",
    ),
) -> list[Change]:
    """Provision one environment; returns the change records (see :mod:`aksmetrics.changes`)."""
    env = _load(environment)
    selected = set(steps or STEPS)
    log = logger()
    log.info(
        "%s %s: steps %s",
        "planning" if plan else "provisioning",
        env.name,
        ", ".join(s for s in STEPS if s in selected),
    )

    if "preflight" in selected:
        preflight(env)

    changes: list[Change] = []
    failures: list[str] = []
    # Writes hold the environment's lock, so that a drift repair or a second provision waits.
    lock = contextlib.nullcontext() if plan else environment_lock(env.name, purpose="provision")
    with lock:
        run = _Steps()
        kubernetes_plane(run, env, selected, plan=plan, allow_adopt=allow_adopt)
        azure_plane(run, env, selected, plan=plan, allow_adopt=allow_adopt)
        changes, failures = run.outcome()

        refused = [change for change in changes if change.action == "refused"]
        if not failures and not refused:
            converge = _Steps()
            converge_ama_metrics(converge, env, selected, changes, plan=plan)
            more, failures = converge.outcome()
            changes += more

    # The checklist reads only, so it runs outside the lock; a plan stops before it.
    if "verify" in selected and not plan and not failures:
        failures += run_verify(environment)

    _publish(env, changes, plan=plan)
    problems = failures + [
        f"refused: {change.line()}" for change in changes if change.action == "refused"
    ]
    if problems:
        raise ProvisionFailed(
            f"{'plan' if plan else 'provision'} of {env.name} did not converge:\n"
            + "\n".join(f"  - {problem}" for problem in problems),
            changes,
            failures,
        )
    return changes


def preflight(env: Environment) -> None:
    """The read-only checks; stop before any write when one finds a problem."""
    checks = {
        "Azure credentials": check_azure_credentials.submit(env),
        "Azure prerequisites": check_azure_prerequisites.submit(env),
        "Kubernetes API": check_kubernetes_api.submit(env),
    }
    problems: list[str] = []
    for name, check in checks.items():
        found = check.result(raise_on_failure=False)
        # A check that could not run at all (retries exhausted) is a problem in itself.
        problems += found if isinstance(found, list) else [f"{name} could not be checked: {found}"]
    if problems:
        raise ProvisionFailed(
            f"preflight of {env.name} found {len(problems)} problem(s):\n"
            + "\n".join(f"  - {problem}" for problem in problems),
            [],
            problems,
        )


def run_verify(environment: str) -> list[str]:
    """The runbook's checklist (the ``verify`` flow, as a subflow); what failed, if anything."""
    state = verify(environment=environment, return_state=True)
    if state.is_completed():
        return []
    outcome = state.result(raise_on_failure=False)
    return [f"verify: {outcome if isinstance(outcome, BaseException) else state.message}"]


def kubernetes_plane(
    run: _Steps, env: Environment, selected: set[str], *, plan: bool, allow_adopt: bool
) -> None:
    """The OpenTelemetry operator (CRDs first, then the rest, then ready), the collector and its
    PodMonitor, each waiting for the one before (in a plan, only for the data it needs)."""
    options = {"plan": plan, "allow_adopt": allow_adopt}
    after = _after(plan)
    previous: list[PrefectFuture[Any]] = []
    manifests = None
    if selected & {"operator", "collector"}:
        manifests = run.add("operator manifest", load_operator_manifest.submit(env))

    if "operator" in selected:
        certificate = run.add(
            "webhook certificate", ensure_webhook_certificate.submit(env, manifests, **options)
        )
        crds = run.add(
            "operator CRDs", ensure_operator_crds.submit(env, manifests, certificate, **options)
        )
        objects = run.add(
            "operator",
            ensure_operator_objects.submit(
                env, manifests, certificate, wait_for=after(crds), **options
            ),
        )
        if not plan:
            previous = [
                run.add(
                    "operator ready", wait_for_operator.submit(env, manifests, wait_for=[objects])
                )
            ]

    if "collector" in selected:
        image = _collector_image(manifests, env)
        collector = run.add(
            "collector", ensure_collector.submit(env, image=image, wait_for=previous, **options)
        )
        previous = after(collector)

    if "pod-monitor" in selected:
        run.add("PodMonitor", ensure_pod_monitor.submit(env, wait_for=previous, **options))


def _after(plan: bool) -> Any:
    """What a step waits for: the steps whose writes it builds on; nothing in a plan, which
    writes nothing, so that its reads all go out at once."""

    def after(*futures: PrefectFuture[Any]) -> list[PrefectFuture[Any]]:
        return [] if plan else list(futures)

    return after


def azure_plane(
    run: _Steps, env: Environment, selected: set[str], *, plan: bool, allow_adopt: bool
) -> None:
    """The AMPLS and its scoped endpoints; the private DNS zones; the private endpoint and its
    zone group; each rule's endpoint; the configurationAccessEndpoint association."""
    after = _after(plan)
    scope: list[PrefectFuture[Any]] = []
    if "private-link-scope" in selected:
        scope = [
            run.add(
                "AMPLS", ensure_private_link_scope.submit(env, plan=plan, allow_adopt=allow_adopt)
            )
        ]
    if "scoped-resources" in selected:
        run.add(
            "scoped resources",
            ensure_scoped_resources.submit(env, plan=plan, wait_for=after(*scope)),
        )

    zones: list[PrefectFuture[Any]] = []
    if "private-dns" in selected:
        zones = [
            run.add(
                f"private DNS zone {zone}",
                ensure_private_dns_zone.submit(env, zone, plan=plan, allow_adopt=allow_adopt),
            )
            for zone in env.private_dns.zones
        ]
    if "private-endpoint" in selected:
        endpoint = run.add(
            "private endpoint",
            ensure_private_endpoint.submit(
                env, plan=plan, allow_adopt=allow_adopt, wait_for=after(*scope)
            ),
        )
        run.add(
            "DNS zone group",
            ensure_zone_group.submit(env, plan=plan, wait_for=after(endpoint, *zones)),
        )

    if "rule-endpoints" in selected:
        for rule in env.data_collection_rules:
            run.add(f"rule {rule.name}", ensure_rule_endpoint.submit(env, rule, plan=plan))
    if "configuration-association" in selected:
        run.add(
            "configurationAccessEndpoint",
            ensure_configuration_association.submit(env, plan=plan, allow_adopt=allow_adopt),
        )


def converge_ama_metrics(
    run: _Steps, env: Environment, selected: set[str], changes: list[Change], *, plan: bool
) -> None:
    """Restart ama-metrics when its Azure side changed (or it is unhealthy); wait until healthy."""
    if not selected & {"restart", "wait-healthy"}:
        return
    names = read_agent_endpoints.submit(env)
    run.add("agent endpoints", names)

    restarted: list[PrefectFuture[Any]] = []
    if "restart" in selected:
        reason = _restart_reason(changes)
        if reason is None and not (plan and _azure_writes(changes)):
            # Nothing changed now, but an earlier run may have stopped between its writes and its
            # restart: an agent that is not healthy gets the restart it missed.
            health = probe_ama_metrics.submit(env, names).result(raise_on_failure=False)
            if not isinstance(health, AgentHealth):
                reason = f"ama-metrics could not be looked at ({health})"
            elif not health.healthy:
                reason = f"ama-metrics is not healthy: {health.describe()}"
        if reason is not None:
            restarted = [
                run.add(
                    "restart ama-metrics", restart_ama_metrics.submit(env, plan=plan, reason=reason)
                )
            ]

    if "wait-healthy" in selected and not plan:
        run.add("ama-metrics healthy", wait_until_healthy.submit(env, names, wait_for=restarted))


def _azure_writes(changes: Iterable[Change]) -> list[Change]:
    return [
        change
        for change in changes
        if change.plane == "azure" and (change.is_write or change.is_planned_write)
    ]


def _restart_reason(changes: list[Change]) -> str | None:
    written = _azure_writes(changes)
    if not written:
        return None
    kinds = sorted({change.kind for change in written})
    return f"its Azure side changed ({', '.join(kinds)})"


def _collector_image(manifests: PrefectFuture[Any] | None, env: Environment) -> str | None:
    """The mirrored default collector image, when the environment has a mirror but no image."""
    if manifests is None or not env.opentelemetry_operator.mirror_registry or env.collector.image:
        return None
    return default_collector_image(manifests.result(), env)


def _load(reference: str) -> Environment:
    try:
        return load_environment(reference)
    except (FileNotFoundError, InvalidEnvironment) as error:
        raise ProvisionFailed(str(error), [], [str(error)]) from None


def _publish(env: Environment, changes: list[Change], *, plan: bool) -> None:
    title = f"{'Plan' if plan else 'Provision'} of {env.name}"
    # Plans get their own key, so that scheduled drift checks do not bury the last real run.
    key = f"provision-plan-{env.name}" if plan else f"provision-{env.name}"
    publish_artifacts(changes, key=key, title=title)
    logger().info("%s: %s\n%s", title, summary(changes), render_table(changes))
