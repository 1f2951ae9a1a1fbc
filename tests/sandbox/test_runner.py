"""`python -m sandbox` as a person (or CI) uses it: a detached sandbox, the files it writes, and the
real clients those files configure. Tests run in file order: the last one stops the sandbox."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from azure.identity import ClientSecretCredential
from azure.mgmt.monitor import MonitorManagementClient
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from aksmetrics.environment import parse_environment

CLUSTER_ID = (
    "/subscriptions/f752aff6-b20c-4973-b32b-0a60ba2c6764/resourceGroups/rg-rubicon-koreacentral-01"
    "/providers/Microsoft.ContainerService/managedClusters/aks-rubicon-koreacentral-01"
)


def sandbox_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run `python -m sandbox ARGS` and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting for a parent to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("runner")
    started = sandbox_cli("up", "--detach", "--scenario", "healthy", "--dir", str(directory))
    assert started.returncode == 0, started.stderr
    try:
        yield directory
    finally:
        sandbox_cli("down", "--dir", str(directory))


def environment_of(directory: Path) -> dict:
    return yaml.safe_load((directory / "environment.yaml").read_text())


def test_up_detach_lists_the_files_it_wrote(sandbox_dir: Path) -> None:
    info = json.loads((sandbox_dir / "sandbox.json").read_text())

    assert pid_alive(info["pid"])
    assert info["scenario"] == "healthy"
    assert info["arm_url"].startswith("https://127.0.0.1:")
    assert info["kube_url"].startswith("https://127.0.0.1:")
    assert all(address.startswith("127.0.0.1:") for address in info["dns"].values())
    for name in (
        "environment.yaml",
        "kubeconfig",
        "ca.pem",
        "client-secret",
        "opentelemetry-operator.yaml",
        "sandbox.log",
    ):
        assert (sandbox_dir / name).is_file(), name


def test_environment_file_is_valid_for_the_project_with_absolute_paths(sandbox_dir: Path) -> None:
    raw = environment_of(sandbox_dir)

    environment = parse_environment(raw, source="sandbox")

    assert environment.cluster.name == "aks-rubicon-koreacentral-01"
    assert environment.cloud.name == "custom"
    assert environment.canary.enabled
    for path in (
        raw["cloud"]["ca_bundle"],
        raw["auth"]["client_secret_file"],
        raw["kubernetes"]["kubeconfig"],
        raw["opentelemetry_operator"]["manifest"],
    ):
        assert Path(path).is_absolute() and Path(path).is_file(), path


def test_client_secret_is_private_and_never_in_the_log(sandbox_dir: Path) -> None:
    secret_file = sandbox_dir / "client-secret"
    secret = secret_file.read_text().strip()

    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret and secret not in (sandbox_dir / "sandbox.log").read_text()
    assert secret not in (sandbox_dir / "environment.yaml").read_text()


def test_kubeconfig_works_with_the_official_client(sandbox_dir: Path) -> None:
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        config_file=str(sandbox_dir / "kubeconfig"), client_configuration=configuration
    )
    core = k8s.CoreV1Api(k8s.ApiClient(configuration))

    pods = core.list_namespaced_pod("kube-system", label_selector="rsName=ama-metrics")

    assert [p.status.phase for p in pods.items] == ["Running"]


def test_ca_verifies_arm_for_a_real_credential_and_management_client(sandbox_dir: Path) -> None:
    raw = environment_of(sandbox_dir)
    credential = ClientSecretCredential(
        raw["auth"]["tenant_id"],
        raw["auth"]["client_id"],
        Path(raw["auth"]["client_secret_file"]).read_text().strip(),
        authority=raw["cloud"]["authority_host"],
        disable_instance_discovery=True,
        connection_verify=raw["cloud"]["ca_bundle"],
    )
    monitor = MonitorManagementClient(
        credential,
        raw["subscription_id"],
        base_url=raw["cloud"]["arm_endpoint"],
        credential_scopes=[raw["cloud"]["credential_scope"]],
        connection_verify=raw["cloud"]["ca_bundle"],
        retry_total=0,
    )

    names = {a.name for a in monitor.data_collection_rule_associations.list_by_resource(CLUSTER_ID)}

    assert names == {
        "ContainerInsightsExtension",
        "ContainerInsightsMetricsExtension",
        "configurationAccessEndpoint",
    }


def test_a_second_up_on_a_running_directory_says_so_and_fails(sandbox_dir: Path) -> None:
    again = sandbox_cli("up", "--detach", "--scenario", "healthy", "--dir", str(sandbox_dir))

    assert again.returncode == 1
    assert "already running" in again.stderr


def test_status_reports_the_running_sandbox(sandbox_dir: Path) -> None:
    status = sandbox_cli("status", "--dir", str(sandbox_dir))

    assert status.returncode == 0
    assert "scenario healthy" in status.stdout


def test_down_leaves_no_process_and_up_again_reloads_the_state(sandbox_dir: Path) -> None:
    pid = json.loads((sandbox_dir / "sandbox.json").read_text())["pid"]
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        config_file=str(sandbox_dir / "kubeconfig"), client_configuration=configuration
    )
    k8s.CoreV1Api(k8s.ApiClient(configuration)).create_namespaced_config_map(
        "default", {"metadata": {"name": "survives-restart"}, "data": {"k": "v"}}
    )

    stopped = sandbox_cli("down", "--dir", str(sandbox_dir))
    assert stopped.returncode == 0
    assert not pid_alive(pid)
    assert not (sandbox_dir / "sandbox.json").exists()
    assert sandbox_cli("down", "--dir", str(sandbox_dir)).returncode == 0  # idempotent
    assert sandbox_cli("status", "--dir", str(sandbox_dir)).returncode == 3

    # Without --fresh the persisted state comes back, not the scenario.
    restarted = sandbox_cli("up", "--detach", "--scenario", "addon-only", "--dir", str(sandbox_dir))
    assert restarted.returncode == 0, restarted.stderr
    assert "scenario healthy" in restarted.stdout
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        config_file=str(sandbox_dir / "kubeconfig"), client_configuration=configuration
    )
    kept = k8s.CoreV1Api(k8s.ApiClient(configuration)).read_namespaced_config_map(
        "survives-restart", "default"
    )
    assert kept.data == {"k": "v"}


def test_an_unknown_scenario_is_refused_with_the_valid_names(tmp_path: Path) -> None:
    refused = sandbox_cli("up", "--scenario", "nope", "--dir", str(tmp_path))

    assert refused.returncode != 0
    for name in ("addon-only", "no-dcra", "port-mismatch", "healthy"):
        assert name in refused.stderr


def test_a_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")

    refused = sandbox_cli("up", "--detach", "--scenario", "healthy", "--dir", str(not_a_dir))

    assert refused.returncode == 1
    assert "not a directory" in refused.stderr


def test_scenarios_lists_every_scenario_with_a_description() -> None:
    listed = sandbox_cli("scenarios")

    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "addon-only",
        "no-dcra",
        "port-mismatch",
        "healthy",
    ]
