"""The deployments, end to end: a real Prefect server and process worker, ``prefect deploy`` of
deployments/prefect.yaml, and runs started the way a person starts them (``prefect deployment run
… --watch``, the UI's Retry through the API), against a sandbox.

Each flow run here is a separate process started by the worker, as in production; the sandbox's
request logs and the server's artifacts and logs are the evidence.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from e2e_support import (
    association_exists,
    delete_association,
    pod_monitor_port,
    set_pod_monitor_port,
)
from prefect import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled

from deployments.demo import REPO_ROOT, PrefectStack, flow_run_id, latest_table

if TYPE_CHECKING:
    from conftest import RunningSandbox, SandboxFactory

pytestmark = [pytest.mark.e2e, pytest.mark.prefect]

ENVIRONMENT = "rubicon-krc-01"
ASSOCIATION = "dataCollectionRuleAssociations/configurationAccessEndpoint"


class Deployed:
    """The server, worker and sandbox this module's tests share, and how to ask the server."""

    def __init__(self, stack: PrefectStack, sandbox: RunningSandbox) -> None:
        self.stack = stack
        self.sandbox = sandbox

    @property
    def parameters(self) -> dict[str, Any]:
        return {"environment": str(self.sandbox.environment)}

    def client(self) -> Any:
        return _Client(self.stack.api_url)

    def wait_for_end(self, run_id: str, timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                run = client.read_flow_run(UUID(run_id))
                if run.state and run.state.is_final():
                    return run
                time.sleep(0.5)
        raise AssertionError(f"flow run {run_id} did not finish within {timeout:g} s")


class _Client:
    """A sync Prefect client on this module's server (not the session's test harness)."""

    def __init__(self, api_url: str) -> None:
        self._settings = temporary_settings({PREFECT_API_URL: api_url})

    def __enter__(self) -> Any:
        self._settings.__enter__()
        self._client = get_client(sync_client=True)
        return self._client.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._client.__exit__(*exc)
        self._settings.__exit__(*exc)


@pytest.fixture(scope="module")
def deployed(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    sandbox = sandbox_factory.start("addon-only")
    stack = PrefectStack(tmp_path_factory.mktemp("prefect"))
    try:
        stack.start_server()
        stack.create_work_pool()
        stack.deploy()
        _pause_every_schedule(stack.api_url)
        stack.start_worker()
        yield Deployed(stack, sandbox)
    finally:
        stack.stop()


def _pause_every_schedule(api_url: str) -> None:
    """A schedule firing mid-test would start runs nobody asked for (the real environment's among
    them); the schedules themselves are checked, then switched off."""
    with _Client(api_url) as client:
        for deployment in client.read_deployments():
            for schedule in client.read_deployment_schedules(deployment.id):
                client.update_deployment_schedule(deployment.id, schedule.id, active=False)


def test_every_deployment_of_the_file_is_on_the_server_with_its_schedule(
    deployed: Deployed,
) -> None:
    with deployed.client() as client:
        deployments = {
            f"{client.read_flow(d.flow_id).name}/{d.name}": d for d in client.read_deployments()
        }
        schedules = {
            name: client.read_deployment_schedules(d.id) for name, d in deployments.items()
        }

    expected = {
        f"{flow}/{target}"
        for flow in ("provision", "verify", "drift-check", "teardown")
        for target in (ENVIRONMENT, "sandbox")
    }
    assert set(deployments) == expected
    for target in (ENVIRONMENT, "sandbox"):
        drift_check = deployments[f"drift-check/{target}"]
        assert drift_check.parameters["policy"] == "safe"
        (schedule,) = schedules[f"drift-check/{target}"]
        assert schedule.schedule.cron == "*/15 * * * *"
        assert drift_check.work_pool_name == "aks-metrics"
        form = drift_check.parameter_openapi_schema["properties"]
        assert form["policy"]["enum"] == ["report", "safe", "ask"]
        assert all(spec.get("description") for spec in form.values())
    assert deployments[f"provision/{ENVIRONMENT}"].parameters == {"environment": ENVIRONMENT}


def test_provision_runs_to_healthy_with_deployment_run_watch_exiting_zero(
    deployed: Deployed,
) -> None:
    result = deployed.stack.run_deployment("provision/sandbox", deployed.parameters, timeout=240)

    assert result.returncode == 0, result.stdout + result.stderr
    rows = latest_table(deployed.stack.api_url, f"verify-{ENVIRONMENT}")
    assert rows, "provision published no checklist"
    assert [row["check"] for row in rows if row["status"] == "fail"] == []


def test_a_drift_check_reports_both_drifts_and_repairs_them(deployed: Deployed) -> None:
    sandbox = deployed.sandbox
    delete_association(sandbox)
    set_pod_monitor_port(sandbox, "prometheus-dev")

    result = deployed.stack.run_deployment(
        "drift-check/sandbox", {**deployed.parameters, "canary": False}, timeout=240
    )

    assert result.returncode == 0, result.stdout + result.stderr
    rows = latest_table(deployed.stack.api_url, f"drift-{ENVIRONMENT}") or []
    reported = {(row["kind"], row["drift"]) for row in rows}
    assert ("data collection rule association", "would create") in reported
    assert ("PodMonitor", "would update") in reported
    (pod_monitor,) = [row for row in rows if row["kind"] == "PodMonitor"]
    assert "prometheus-dev -> prometheus" in pod_monitor["differences"]
    # Repaired in the sandbox itself.
    assert association_exists(sandbox)
    assert pod_monitor_port(sandbox) == "prometheus"


def test_a_failed_run_retried_through_the_api_as_the_ui_does_completes(
    deployed: Deployed,
) -> None:
    sandbox = deployed.sandbox
    # Azure refuses to show the cluster's associations for a while: verify fails.
    sandbox.add_fault(
        "arm", {"match": "dataCollectionRuleAssociations", "status": 403, "error_rate": 1.0}
    )
    try:
        failed = deployed.stack.run_deployment("verify/sandbox", deployed.parameters, timeout=180)
    finally:
        sandbox.clear_faults("arm")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    run_id = flow_run_id(failed.stdout)
    assert run_id

    # What the UI's Retry button sends.
    with deployed.client() as client:
        client.set_flow_run_state(
            UUID(run_id),
            Scheduled(name="AwaitingRetry", message="Retry from the UI"),
            force=True,
        )
    run = deployed.wait_for_end(run_id)

    assert run.state.is_completed(), run.state.message
    assert run.run_count == 2


def test_two_provision_runs_started_at_once_never_interleave_their_writes(
    deployed: Deployed,
) -> None:
    sandbox = deployed.sandbox
    delete_association(sandbox)
    sandbox.clear_requests()

    started = [
        deployed.stack.run_deployment("provision/sandbox", deployed.parameters, watch=False)
        for _ in range(2)
    ]
    run_ids = [flow_run_id(result.stdout) for result in started]
    assert all(run_ids), [result.stdout for result in started]
    runs = [deployed.wait_for_end(str(run_id)) for run_id in run_ids]

    assert all(run.state.is_completed() for run in runs), [run.state.message for run in runs]
    # The association was missing once, so it was written once: the second writer found it.
    puts = [
        entry
        for entry in sandbox.requests("arm")
        if entry["method"] == "PUT" and entry["path"].split("?")[0].endswith(ASSOCIATION)
    ]
    assert len(puts) == 1
    # Each run held the environment's lock in a window of its own.
    windows = sorted(_lock_window(deployed, str(run_id)) for run_id in run_ids)
    assert windows[0][1] <= windows[1][0], windows


def test_stopping_the_stack_leaves_no_process_behind(deployed: Deployed) -> None:
    deployed.stack.stop()

    assert deployed.stack.leftover_processes() == []


def test_the_demo_provisions_the_sandbox_and_leaves_no_process_behind(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deployments.demo", "--dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "the environment ended healthy" in done.stdout
    assert "Canary metric reaches the workspace" in done.stdout
    assert _processes_mentioning(str(tmp_path)) == []


# -- helpers -------------------------------------------------------------------------------------


def _lock_window(deployed: Deployed, run_id: str) -> tuple[datetime, datetime]:
    """When a provision run took and released the environment's write lock, from its logs."""
    with deployed.client() as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])))
    taken = [log.timestamp for log in logs if "holding the write lock" in log.message]
    released = [log.timestamp for log in logs if "releasing the write lock" in log.message]
    assert len(taken) == 1 and len(released) == 1, [log.message for log in logs]
    return taken[0], released[0]


def _processes_mentioning(text: str) -> list[str]:
    """Running processes whose command line or environment names ``text`` (a demo's folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found
