"""The ``verify`` flow: the runbook's checklist, read-only, every check at once, each failure named.

Runs every check of :mod:`tasks.checks` concurrently (and the canary of :mod:`tasks.canary` when
the environment or the run asks for it), judges all their evidence together against the diagnosis
catalogue, and reports: a table artifact (key ``verify-<environment>``), a markdown report
(``verify-<environment>-report``) and the same table in the terminal. The run ends Failed when any
check fails. It writes nothing: every task only reads, and the canary's OTLP POST to the collector
changes no object.

``provision`` ends by calling this flow as a subflow (a failed verify raises :class:`ChecksFailed`
there, carrying every result); :func:`run_checks` runs the checks inside any other flow that wants
their results without a subflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.futures import PrefectFuture
from prefect.logging import get_run_logger
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from aksmetrics.checks import (
    CheckResult,
    Status,
    conclude,
    publish_artifacts,
    render_table,
    skipped,
    summary,
    with_diagnoses,
)
from aksmetrics.diagnosis import Evidence, Symptom
from aksmetrics.environment import Environment, load_environment
from tasks.canary import check_canary
from tasks.checks import CHECK_IDS, CHECK_TASKS
from tasks.retries import describe_error

# Checks wait on the network, not the CPU: eight at a time keep a run short without crowding the
# API servers with every read at once.
MAX_CONCURRENT_CHECKS = 8


class ChecksFailed(Exception):
    """A verify run in which at least one check failed; ``results`` holds every check's result.

    It is the data of the run's Failed state: calling :func:`verify` as a subflow raises it, and
    ``verify(..., return_state=True).result(raise_on_failure=False)`` returns it.
    """

    def __init__(self, message: str, results: list[CheckResult]) -> None:
        super().__init__(message)
        self.results = results

    def __reduce__(self) -> tuple[object, ...]:
        return (ChecksFailed, (str(self), self.results))


def run_checks(env: Environment, *, canary: bool | None = None) -> list[CheckResult]:
    """Submit every check (and the canary if wanted) to the current flow's task runner, wait for
    all, and return their results with diagnoses attached, in report order.

    Must run inside a flow. A check that raised (a read refused for good, retries exhausted) is
    reported as failed, quoting the error, so one broken read never hides the other checks.
    """
    return collect_checks(submit_checks(env, canary=canary))


@dataclass
class SubmittedChecks:
    """Checks under way in a flow's task runner; :func:`collect_checks` waits for them."""

    futures: list[tuple[str, PrefectFuture[CheckResult]]]
    canary_reason: str | None


def submit_checks(env: Environment, *, canary: bool | None = None) -> SubmittedChecks:
    """Start every check without waiting, so that a flow can do other reads meanwhile."""
    with_canary = env.canary.enabled if canary is None else canary
    futures: list[tuple[str, PrefectFuture[CheckResult]]] = [
        (CHECK_IDS[check.name], check.submit(env)) for check in CHECK_TASKS
    ]
    if with_canary:
        futures.append(("canary", check_canary.submit(env)))
    reason = (
        None
        if with_canary
        else ("turned off for this environment (canary.enabled) or this run (canary)")
    )
    return SubmittedChecks(futures, reason)


def collect_checks(submitted: SubmittedChecks) -> list[CheckResult]:
    """Wait for submitted checks; their results with diagnoses attached, in report order."""
    results = [_result_of(check_id, future) for check_id, future in submitted.futures]
    if submitted.canary_reason is not None:
        results.append(skipped("canary", submitted.canary_reason))
    return with_diagnoses(results)


def _result_of(check_id: str, future: PrefectFuture[CheckResult]) -> CheckResult:
    future.wait()
    outcome = future.result(raise_on_failure=False)
    if isinstance(outcome, CheckResult):
        return outcome
    # The task failed: its exception (a StepFailed names the resource, the service's code and
    # message, and what to do) becomes the check's evidence.
    if isinstance(outcome, BaseException):
        status, code, message = describe_error(outcome)
        observed = " ".join(str(part) for part in (status, code) if part)
        observed = f"{observed}: {message}" if observed else message
    else:
        observed = f"the check ended without a result ({type(outcome).__name__})"
    evidence = [Evidence(subject=check_id, observed=observed, symptom=Symptom.CHECK_ERROR)]
    return conclude(check_id, evidence, passed="")


def report(env: Environment, results: list[CheckResult]) -> None:
    """Publish the artifacts, print the table, and log one line per failing check."""
    title = f"verify {env.name}"
    publish_artifacts(results, key=f"verify-{env.name}", title=title)
    print(f"{title}\n{render_table(results)}")
    log = get_run_logger()
    for result in results:
        if result.status in (Status.FAIL, Status.WARN):
            causes = ", ".join(result.causes) or "no known cause"
            log.warning("%s %s: %s (%s)", result.status.value, result.id, result.summary, causes)
    log.info("verify %s: %s", env.name, summary(results))


@flow(
    name="verify",
    description="Check, read-only, that metrics flow from the collector through ama-metrics and "
    "private link to the Azure Monitor workspace; name the cause and the fix of every failure.",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_CONCURRENT_CHECKS),
    validate_parameters=True,
)
def verify(
    environment: str = Field(
        ...,
        description="The environment: a name under deployments/environments (e.g. rubicon-krc-01) "
        "or a path to an environment file.",
    ),
    canary: bool | None = Field(
        None,
        description="Send a canary metric to the collector and wait for it in the workspace "
        "(needs query access to the workspace). Empty: as the environment's canary.enabled says.",
    ),
) -> State:
    """Run every check, report, and end Failed when any check fails."""
    env = load_environment(environment)
    results = run_checks(env, canary=canary)
    report(env, results)

    failed = [result for result in results if result.failed]
    if failed:
        named = "; ".join(
            f"{result.id} ({', '.join(result.causes) or 'no known cause'})" for result in failed
        )
        message = f"{len(failed)} of {len(results)} checks failed: {named}"
        return Failed(message=message, data=ChecksFailed(message, results))
    return Completed(message=f"verify {env.name}: {summary(results)}", data=results)
