"""The ``drift-check`` flow: desired versus actual, on both planes and at runtime, then a repair.

A drift check is the other flows put together, nothing of its own:

1. **compare**: the provision steps as a plan (a ``provision`` subflow with ``plan=True``: it reads
   every object of the Azure and the Kubernetes plane and lists what an apply run would write, with
   the differing fields), and the verify checks (runtime health, with diagnosed causes);
2. **report**: the drifted objects and failing checks as a table (artifact ``drift-<environment>``),
   a markdown report, the terminal, and the event ``aks-metrics.drift.detected``;
3. **repair**, as the run's policy says: ``report`` writes nothing; ``safe`` runs the provision
   steps of what drifted in apply mode (they re-create or correct only what the project owns;
   provision restarts ama-metrics when its Azure side changed), then verify; ``ask`` first pauses
   the run until someone approves the plan in the Prefect UI.

The repair holds the environment's write lock, so it never interleaves with a provision or a
teardown of the same environment. The run ends Completed when there was no drift or the repair
left the environment healthy, Failed otherwise (drift reported but not repaired is a red run, so
that an automation or a person notices).
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.events import emit_event
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from aksmetrics import drift
from aksmetrics.changes import Change
from aksmetrics.drift import DriftReport, Policy, find_drift
from aksmetrics.environment import Environment, InvalidEnvironment, load_environment
from flows.provision import ProvisionFailed, provision
from flows.verify import collect_checks, submit_checks, verify
from tasks.locks import environment_lock
from tasks.steps import logger

DRIFT_DETECTED = "aks-metrics.drift.detected"
DRIFT_REPAIRED = "aks-metrics.drift.repaired"


class RepairApproval(RunInput):
    """The form the Prefect UI shows when a drift check with policy ``ask`` waits for a person."""

    approve: bool = Field(
        False, description="Repair the drift listed above by running the provision steps it names."
    )
    reason: str = Field("", description="Why (written to the run's log with the decision).")


@flow(
    name="drift-check",
    description="Compare an environment with its desired state (Azure plane, Kubernetes plane, "
    "runtime health), report the drift, and repair what the project owns when the policy allows.",
    task_runner=ThreadPoolTaskRunner(max_workers=12),
    validate_parameters=True,
)
def drift_check(
    environment: str = Field(
        ...,
        description="The environment: a name under deployments/environments (e.g. rubicon-krc-01) "
        "or a path to an environment file.",
    ),
    policy: Literal["report", "safe", "ask"] = Field(
        "report",
        description="What to do with drift: 'report' writes nothing; 'safe' re-creates or "
        "corrects what the project owns, restarts ama-metrics where needed and verifies; 'ask' "
        "shows the plan and waits for approval in the UI before doing what 'safe' does.",
    ),
    canary: bool | None = Field(
        None,
        description="Include the end-to-end canary in the checks. Empty: as the environment's "
        "canary.enabled says.",
    ),
    approval_timeout_seconds: int = Field(
        3600,
        ge=60,
        le=7 * 24 * 3600,
        description="With policy 'ask': how long to wait for approval before giving up (the run "
        "then ends Failed, having written nothing).",
    ),
) -> State:
    """Check one environment for drift and, as ``policy`` allows, repair it."""
    env = _load(environment)
    log = logger()

    # 1. Compare: the plan of every provision step, and the runtime checks. Both only read, so
    # the checks run in this flow's task runner while the plan runs.
    checks = submit_checks(env, canary=canary)
    changes, plan_problem = plan_changes(environment)
    results = collect_checks(checks)
    found = find_drift(env.name, changes, results)
    publish(found, policy=policy)

    if plan_problem is not None:
        # Refused objects are drift the report shows; anything else means the comparison is
        # incomplete, and nothing is repaired on an incomplete picture.
        _emit_detected(found, policy=policy)
        return Failed(
            message=f"drift check of {env.name} could not compare: {plan_problem}", data=found
        )
    if not found.drifted:
        return Completed(message=found.summary(), data=found)
    _emit_detected(found, policy=policy)

    # 2. Repair, as far as the policy allows.
    if policy == "report":
        return Failed(
            message=f"drift found, not repaired (policy report): {found.summary()}", data=found
        )
    steps = found.repair_steps()
    if not steps:
        return Failed(
            message=f"drift found, none of it repairable by a run: {found.summary()}", data=found
        )
    if policy == "ask" and not approved(found, timeout=approval_timeout_seconds):
        return Failed(message=f"drift found, repair not approved: {found.summary()}", data=found)

    log.info("repairing %s with the provision steps %s", env.name, ", ".join(steps))
    with environment_lock(env.name, purpose="drift repair"):
        repair, repair_problem = repair_changes(environment, steps)
        checked = verify(environment=environment, canary=canary, return_state=True)
    publish(found, policy=policy, repair=repair)

    if repair_problem is not None:
        return Failed(
            message=f"repair of {env.name} did not converge: {repair_problem}", data=found
        )
    _emit(
        DRIFT_REPAIRED, env.name, {**found.event_payload(policy=policy), "writes": _lines(repair)}
    )

    # What the repair could not reach, and whether the environment is healthy now.
    remaining = [
        f"left for a person: {item.kind} {item.resource_id}" for item in found.left_for_a_person()
    ]
    if not checked.is_completed():
        remaining.append(f"verify fails: {checked.message}")
    if remaining:
        message = f"repaired what the project owns in {env.name}; " + "; ".join(remaining)
        return Failed(message=message, data=found)
    return Completed(message=f"repaired: {found.summary()}", data=found)


def plan_changes(environment: str) -> tuple[list[Change], str | None]:
    """The change records of a provision plan, and why the plan did not finish (None when it did).

    A plan that stopped (a refused object, a failed read, a preflight problem) still returns the
    records it got, so that the report shows what was compared.
    """
    state = provision(environment=environment, plan=True, return_state=True)
    return _outcome(state)


def repair_changes(environment: str, steps: list[str]) -> tuple[list[Change], str | None]:
    """Run the provision ``steps`` in apply mode; their change records and any problem."""
    state = provision(environment=environment, steps=steps, return_state=True)
    return _outcome(state)


def _outcome(state: State) -> tuple[list[Change], str | None]:
    """A provision subflow's change records and its problem; a run that stopped only because it
    refused objects the project does not own has no problem here (the records say ``refused``)."""
    result = state.result(raise_on_failure=False)
    if state.is_completed():
        return list(result), None
    if isinstance(result, ProvisionFailed):
        return list(result.changes), (str(result) if result.failures else None)
    return [], state.message or str(result)


def approved(found: DriftReport, *, timeout: int) -> bool:
    """Pause until a person approves (or refuses) the repair in the UI; False on timeout."""
    log = logger()
    form = RepairApproval.with_initial_data(
        description=drift.render_markdown(found, policy="ask")
        + "\nApprove to run these steps now; the run waits "
        f"{timeout} s for an answer.",
        approve=False,
    )
    log.info("waiting up to %s s for approval of the repair of %s", timeout, found.environment)
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=2)
    except FlowPauseTimeout:
        log.warning("no approval within %s s: nothing repaired", timeout)
        return False
    decision = "approved" if answer.approve else "refused"
    log.info("repair %s%s", decision, f": {answer.reason}" if answer.reason else "")
    return bool(answer.approve)


def publish(found: DriftReport, *, policy: Policy, repair: list[Change] | None = None) -> None:
    """The drift table (artifact ``drift-<env>``), the markdown report, and the terminal table."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = f"drift-{found.environment}"
    create_table_artifact(
        table=drift.table_rows(found), key=key, description=f"Drift check: {found.summary()}"
    )
    create_markdown_artifact(
        markdown=drift.render_markdown(found, policy=policy, repair=repair),
        key=f"{key}-report",
        description=f"Drift check of {found.environment}",
    )
    if repair is None:
        logger().info("drift check of %s\n%s", found.environment, drift.render_table(found))


def _emit_detected(found: DriftReport, *, policy: Policy) -> None:
    if found.drifted:
        _emit(DRIFT_DETECTED, found.environment, found.event_payload(policy=policy))


def _emit(event: str, name: str, payload: dict[str, Any]) -> None:
    """An event about the environment, so an automation can notify or trigger a repair."""
    emit_event(
        event=event,
        resource={
            "prefect.resource.id": f"aks-metrics.environment.{name}",
            "prefect.resource.name": name,
        },
        payload=payload,
    )
    logger().info("emitted %s for %s", event, name)


def _lines(changes: list[Change]) -> list[str]:
    return [change.line() for change in changes if change.is_write]


def _load(reference: str) -> Environment:
    try:
        return load_environment(reference)
    except (FileNotFoundError, InvalidEnvironment) as error:
        # A bad parameter, not a transient failure: say what is wrong and stop.
        raise ValueError(str(error)) from None
