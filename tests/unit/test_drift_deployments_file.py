"""deployments/prefect.yaml: four deployments per environment file, typed parameters, the schedule.

Read as YAML (anchors resolved), the way ``prefect deploy`` reads it; the end-to-end test in
tests/e2e/test_deployments.py deploys it to a real server.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from aksmetrics.environment import environments_dir

REPO = Path(__file__).resolve().parents[2]
PREFECT_FILE = REPO / "deployments" / "prefect.yaml"
FLOWS = {
    "flows/provision.py:provision": "provision",
    "flows/verify.py:verify": "verify",
    "flows/drift_check.py:drift_check": "drift-check",
    "flows/teardown.py:teardown": "teardown",
}


@pytest.fixture(scope="module")
def deployments() -> list[dict[str, Any]]:
    return list(yaml.safe_load(PREFECT_FILE.read_text())["deployments"])


def by_name(deployments: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    return {FLOWS[d["entrypoint"]]: d for d in deployments if d["name"] == name}


def environment_names() -> list[str]:
    return sorted(path.stem for path in environments_dir().glob("*.yaml"))


@pytest.mark.parametrize("name", [*environment_names(), "sandbox"])
def test_each_environment_has_the_four_deployments(
    deployments: list[dict[str, Any]], name: str
) -> None:
    assert sorted(by_name(deployments, name)) == sorted(FLOWS.values())


@pytest.mark.parametrize("name", environment_names())
def test_each_environment_files_deployments_name_that_file(
    deployments: list[dict[str, Any]], name: str
) -> None:
    for deployment in by_name(deployments, name).values():
        assert deployment["parameters"]["environment"] == name
        assert f"environment:{name}" in deployment["tags"]


def test_the_drift_check_runs_every_15_minutes_repairing_safely(
    deployments: list[dict[str, Any]],
) -> None:
    for name in [*environment_names(), "sandbox"]:
        drift_check = by_name(deployments, name)["drift-check"]
        assert drift_check["parameters"]["policy"] == "safe"
        assert [schedule["cron"] for schedule in drift_check["schedules"]] == ["*/15 * * * *"]


def test_only_the_drift_check_is_scheduled(deployments: list[dict[str, Any]]) -> None:
    scheduled = {FLOWS[d["entrypoint"]] for d in deployments if d.get("schedules")}

    assert scheduled == {"drift-check"}


def test_every_deployment_runs_on_the_one_work_pool(deployments: list[dict[str, Any]]) -> None:
    assert {d["work_pool"]["name"] for d in deployments} == {"aks-metrics"}


def test_every_entrypoint_names_a_flow_called_as_its_deployments_are() -> None:
    from flows.drift_check import drift_check
    from flows.provision import provision
    from flows.teardown import teardown
    from flows.verify import verify

    flows = {"provision": provision, "verify": verify, "drift-check": drift_check}
    flows["teardown"] = teardown
    for entrypoint, name in FLOWS.items():
        path, function = entrypoint.split(":")
        assert (REPO / path).is_file()
        assert flows[name].name == name
        assert flows[name].fn.__name__ == function


@pytest.mark.parametrize("name", ["provision", "verify", "drift-check", "teardown"])
def test_every_flow_parameter_is_typed_and_described_for_the_ui_form(name: str) -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.drift_check import drift_check
    from flows.provision import provision
    from flows.teardown import teardown
    from flows.verify import verify

    flow = {"provision": provision, "verify": verify, "drift-check": drift_check}.get(
        name, teardown
    )
    schema = parameter_schema(flow.fn).model_dump()
    properties = schema["properties"]

    assert set(properties) == set(inspect.signature(flow.fn).parameters)
    for parameter, spec in properties.items():
        assert spec.get("description"), f"{name}.{parameter} has no description"
        assert spec.get("type") or spec.get("anyOf") or spec.get("allOf") or spec.get("enum"), (
            f"{name}.{parameter} has no type"
        )


def test_the_drift_policy_is_offered_as_a_choice_of_three() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.drift_check import drift_check

    policy = parameter_schema(drift_check.fn).model_dump()["properties"]["policy"]

    assert policy["enum"] == ["report", "safe", "ask"]
    assert policy["default"] == "report"
