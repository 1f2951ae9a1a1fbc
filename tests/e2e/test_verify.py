"""``verify`` against the sandbox: each of the runbook's states is named by its cause, read-only.

One sandbox per scenario, one verify run per sandbox (module fixtures); the tests then read that
run's results, its artifacts and the sandbox's request logs. They assert on check ids, cause ids,
symptoms and quoted evidence, never on the wording of explanations.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from prefect.states import State

from aksmetrics.checks import CheckResult, Status
from aksmetrics.diagnosis import Diagnosis, Symptom
from flows.verify import ChecksFailed, verify

if TYPE_CHECKING:
    from conftest import RunningSandbox, SandboxFactory

pytestmark = [pytest.mark.e2e, pytest.mark.prefect]

# How long the canary may wait: the sandbox ships a scraped sample within a second or two, so a
# healthy run never comes near this; a broken one waits it out.
HEALTHY_CANARY_SECONDS = 60.0
BROKEN_CANARY_SECONDS = 5.0


@dataclass
class VerifyRun:
    """One verify run on one sandbox: its final state, results and what the sandbox saw."""

    sandbox: RunningSandbox
    state: State
    results: dict[str, CheckResult]
    arm_requests: list[dict[str, Any]]
    kube_requests: list[dict[str, Any]]
    artifact: Any

    def check(self, check_id: str) -> CheckResult:
        return self.results[check_id]

    def diagnosis(self, check_id: str, cause: str) -> Diagnosis:
        found = [d for d in self.check(check_id).diagnoses if d.cause == cause]
        assert found, f"{check_id} has causes {self.check(check_id).causes}, not {cause}"
        return found[0]

    def failed(self) -> set[str]:
        return {check_id for check_id, result in self.results.items() if result.failed}


def environment_with_canary_deadline(sandbox: RunningSandbox, seconds: float) -> Path:
    """A copy of the sandbox's environment file whose canary waits at most ``seconds``."""
    raw = yaml.safe_load(sandbox.environment.read_text())
    raw.setdefault("canary", {})["timeout_seconds"] = seconds
    path = sandbox.directory / "environment-verify.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def wait_for_the_agents_first_attempt(environment: Path, *, timeout: float = 20.0) -> None:
    """Wait until ama-metrics' agent has tried to fetch its configuration once: it then has either
    an error in mdsd.err or a TokenConfig.json. A pod only just started has neither, and a verify
    run would rightly find nothing to diagnose yet."""
    from aksmetrics.environment import load_environment
    from tasks.ama_metrics import exec_in_pod
    from tasks.checks import MDSD_ERR, TOKEN_CONFIG, agent_pods, pick_agent_pod

    env = load_environment(environment)
    ama = env.ama_metrics
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = pick_agent_pod(agent_pods(env) or [])
        if pod is not None:
            tried = exec_in_pod(
                env,
                ama.namespace,
                pod,
                ama.container,
                ["sh", "-c", f"test -s {MDSD_ERR} || test -f {TOKEN_CONFIG}"],
            )
            if tried.exit_code == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"ama-metrics made no configuration attempt within {timeout:g} s")


def run_verify(
    factory: SandboxFactory, scenario: str, *, canary: bool, canary_seconds: float
) -> VerifyRun:
    from prefect.artifacts import Artifact

    sandbox = factory.start(scenario)
    environment = environment_with_canary_deadline(sandbox, canary_seconds)
    wait_for_the_agents_first_attempt(environment)
    sandbox.clear_requests()

    state = verify(environment=str(environment), canary=canary, return_state=True)

    outcome = state.result(raise_on_failure=False)
    results = outcome.results if isinstance(outcome, ChecksFailed) else outcome
    return VerifyRun(
        sandbox=sandbox,
        state=state,
        results={result.id: result for result in results},
        arm_requests=sandbox.requests("arm"),
        kube_requests=sandbox.requests("kube"),
        artifact=Artifact.get("verify-rubicon-krc-01"),
    )


@pytest.fixture(scope="module")
def healthy(sandbox_factory: SandboxFactory) -> VerifyRun:
    return run_verify(
        sandbox_factory, "healthy", canary=True, canary_seconds=HEALTHY_CANARY_SECONDS
    )


@pytest.fixture(scope="module")
def addon_only(sandbox_factory: SandboxFactory) -> VerifyRun:
    return run_verify(
        sandbox_factory, "addon-only", canary=True, canary_seconds=BROKEN_CANARY_SECONDS
    )


@pytest.fixture(scope="module")
def no_dcra(sandbox_factory: SandboxFactory) -> VerifyRun:
    return run_verify(sandbox_factory, "no-dcra", canary=False, canary_seconds=1.0)


@pytest.fixture(scope="module")
def port_mismatch(sandbox_factory: SandboxFactory) -> VerifyRun:
    return run_verify(
        sandbox_factory, "port-mismatch", canary=True, canary_seconds=BROKEN_CANARY_SECONDS
    )


def is_public(address: str) -> bool:
    try:
        return not ipaddress.ip_address(address).is_private
    except ValueError:
        return False


# -- healthy -------------------------------------------------------------------------------------


def test_a_healthy_environment_passes_every_check_including_the_canary(healthy: VerifyRun) -> None:
    assert healthy.state.is_completed(), healthy.state.message
    assert {r.status for r in healthy.results.values()} == {Status.PASS}
    assert len(healthy.results) == 17
    canary = healthy.check("canary")
    assert any("aks_metrics_canary" in e.observed and "= 1" in e.observed for e in canary.evidence)


def test_healthy_evidence_quotes_private_addresses_and_the_association(healthy: VerifyRun) -> None:
    names = healthy.check("names_resolve_privately").evidence
    assert any(e.subject.startswith("global.handler.control.monitor.azure.com") for e in names)
    assert all("(private)" in e.observed for e in names)
    associations = healthy.check("cluster_associations").evidence
    assert any("configurationAccessEndpoint →" in e.observed for e in associations)


def test_verify_publishes_a_table_artifact_with_one_row_per_check(healthy: VerifyRun) -> None:
    assert healthy.artifact is not None
    rows = healthy.artifact.data
    rows = yaml.safe_load(rows) if isinstance(rows, str) else rows
    assert {row["check"] for row in rows} == set(healthy.results)
    assert {row["status"] for row in rows} == {"pass"}


# -- addon-only: the runbook's start, SSL handshake through the firewall ------------------------


def test_addon_only_fails_with_the_ssl_handshake_through_tls_inspection(
    addon_only: VerifyRun,
) -> None:
    assert addon_only.state.is_failed()
    diagnosis = addon_only.diagnosis("mdsd_errors_free", "ssl_handshake_tls_inspection")

    trigger = diagnosis.evidence[0]
    assert trigger.symptom is Symptom.MDSD_SSL_HANDSHAKE
    assert "SSL handshake" in trigger.observed
    assert trigger.subject.endswith("/opt/microsoft/linuxmonagent/mdsd.err")
    public = [e for e in diagnosis.evidence if e.symptom is Symptom.NAME_RESOLVES_PUBLIC]
    assert public and any(is_public(word) for e in public for word in e.observed.split())
    assert {"private-link-scope", "scoped-resources", "private-endpoint", "private-dns"} <= set(
        diagnosis.repair_steps
    )


def test_addon_only_names_each_missing_piece_of_the_private_path(addon_only: VerifyRun) -> None:
    expected = {
        "names_resolve_privately": "names_resolve_publicly",
        "endpoints_in_scope": "private_link_scope_missing",
        "private_endpoint_approved": "private_endpoint_missing",
        "zones_linked": "zone_not_linked",
        "cluster_associations": "configuration_access_endpoint_missing",
        "token_config_present": "token_config_missing",
        "operator_running": "operator_not_running",
        "pod_monitor_ports": "podmonitor_missing",
    }
    for check_id, cause in expected.items():
        assert cause in addon_only.check(check_id).causes, (check_id, addon_only.check(check_id))
    assert addon_only.diagnosis("cluster_associations", "configuration_access_endpoint_missing")
    assert addon_only.check("rules_name_endpoints").status is Status.PASS


def test_addon_only_canary_is_refused_without_a_collector(addon_only: VerifyRun) -> None:
    assert addon_only.check("canary").causes == ["canary_refused"]


# -- no-dcra: private link done, configurationAccessEndpoint missing ----------------------------


def test_no_dcra_fails_with_the_private_link_403(no_dcra: VerifyRun) -> None:
    assert no_dcra.state.is_failed()
    diagnosis = no_dcra.diagnosis("mdsd_errors_free", "private_link_configuration_403")

    trigger = diagnosis.evidence[0]
    assert trigger.symptom is Symptom.MDSD_PRIVATE_LINK_403
    assert "Data collection endpoint must be used" in trigger.observed
    assert Symptom.CONFIGURATION_ASSOCIATION_MISSING in {e.symptom for e in diagnosis.evidence}
    assert "configuration-association" in diagnosis.repair_steps


def test_no_dcra_points_at_the_association_and_nothing_on_the_private_path(
    no_dcra: VerifyRun,
) -> None:
    association = no_dcra.diagnosis("cluster_associations", "configuration_access_endpoint_missing")
    assert association.repair_steps[0] == "configuration-association"
    for check_id in (
        "names_resolve_privately",
        "endpoints_in_scope",
        "private_endpoint_approved",
        "zone_group_records",
        "zones_linked",
        "pod_monitor_ports",
    ):
        assert no_dcra.check(check_id).status is Status.PASS, no_dcra.check(check_id)
    assert no_dcra.check("canary").status is Status.SKIP


# -- port-mismatch: everything works, nothing is scraped ----------------------------------------


def test_port_mismatch_fails_only_the_podmonitor_and_the_canary(port_mismatch: VerifyRun) -> None:
    assert port_mismatch.state.is_failed()
    assert port_mismatch.failed() == {"pod_monitor_ports", "canary"}


def test_port_mismatch_quotes_the_port_and_names_the_pod_monitor_step(
    port_mismatch: VerifyRun,
) -> None:
    diagnosis = port_mismatch.diagnosis("pod_monitor_ports", "podmonitor_port_mismatch")
    trigger = diagnosis.evidence[0]
    assert trigger.symptom is Symptom.PODMONITOR_PORT_UNKNOWN
    assert "'prometheus-dev'" in trigger.observed
    assert "prometheus" in trigger.observed.split("(they have ")[1]
    assert diagnosis.repair_steps == ("pod-monitor",)


def test_port_mismatch_canary_never_arrives_and_points_at_the_podmonitor(
    port_mismatch: VerifyRun,
) -> None:
    diagnosis = port_mismatch.diagnosis("canary", "canary_not_ingested")
    assert {e.symptom for e in diagnosis.evidence} == {
        Symptom.CANARY_NOT_INGESTED,
        Symptom.PODMONITOR_PORT_UNKNOWN,
    }


# -- read-only ----------------------------------------------------------------------------------


TOKEN_PATH_SUFFIX = "/oauth2/v2.0/token"
CANARY_PROXY_SUFFIX = "/services/otel-collector-collector:4318/proxy/v1/metrics"


@pytest.mark.parametrize("scenario", ["healthy", "addon_only", "no_dcra", "port_mismatch"])
def test_a_verify_run_writes_nothing(scenario: str, request: pytest.FixtureRequest) -> None:
    run: VerifyRun = request.getfixturevalue(scenario)
    assert run.arm_requests and run.kube_requests

    # ARM: reads only; the token endpoint's POSTs are sign-ins, not writes.
    arm_writes = [
        r
        for r in run.arm_requests
        if r["method"] != "GET" and not r["path"].endswith(TOKEN_PATH_SUFFIX)
    ]
    assert arm_writes == []

    # Kubernetes: reads and exec (a GET upgraded to a websocket); the canary's OTLP POST goes to
    # the collector through the service proxy and changes no object.
    kube_writes = [
        r
        for r in run.kube_requests
        if r["method"] != "GET" and not r["path"].endswith(CANARY_PROXY_SUFFIX)
    ]
    assert kube_writes == []
    assert any("/exec" in r["path"] for r in run.kube_requests)


def test_a_check_whose_read_is_refused_fails_quoting_the_error_while_the_others_report(
    port_mismatch: VerifyRun,
) -> None:
    sandbox = port_mismatch.sandbox
    sandbox.add_fault("arm", {"match": "privateLinkScopes", "status": 403, "count": 100})
    try:
        state = verify(environment=str(sandbox.environment), canary=False, return_state=True)
    finally:
        sandbox.clear_faults("arm")

    outcome = state.result(raise_on_failure=False)
    assert isinstance(outcome, ChecksFailed)
    results = {result.id: result for result in outcome.results}
    refused = results["endpoints_in_scope"]
    assert refused.causes == ["check_failed_to_observe"]
    assert refused.evidence[0].symptom is Symptom.CHECK_ERROR
    assert "403" in refused.evidence[0].observed
    assert "privateLinkScopes/ampls-rubicon-krc-01" in refused.evidence[0].observed
    assert results["names_resolve_privately"].status is Status.PASS
    assert results["pod_monitor_ports"].causes == ["podmonitor_port_mismatch"]


# -- the command line ---------------------------------------------------------------------------


def test_the_cli_exits_1_when_a_check_fails_and_0_when_all_pass(
    port_mismatch: VerifyRun, healthy: VerifyRun
) -> None:
    from typer.testing import CliRunner

    from aksmetrics.cli import app

    runner = CliRunner()
    failing = runner.invoke(app, ["verify", str(port_mismatch.sandbox.environment), "--no-canary"])
    passing = runner.invoke(app, ["verify", str(healthy.sandbox.environment), "--no-canary"])

    assert failing.exit_code == 1, failing.output
    assert "podmonitor_port_mismatch" in failing.output
    assert passing.exit_code == 0, passing.output
