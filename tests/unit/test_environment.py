"""The environment model: the example is valid; every broken file is refused, its field named."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from aksmetrics.environment import InvalidEnvironment, load_environment, parse_environment

BROKEN = sorted((Path(__file__).parent.parent / "environments" / "broken").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (?P<location>.+?) :: (?P<fragment>.+)$", re.M)


def expectations(path: Path) -> list[tuple[str, str]]:
    found = [(m["location"], m["fragment"]) for m in EXPECT.finditer(path.read_text())]
    assert found, f"{path.name} states no expectation"
    return found


def test_the_corpus_has_at_least_twenty_broken_files() -> None:
    assert len(BROKEN) >= 20


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_each_broken_file_is_refused_naming_the_field_and_the_rule(path: Path) -> None:
    with pytest.raises(InvalidEnvironment) as refused:
        load_environment(path)

    problems = refused.value.problems
    for location, fragment in expectations(path):
        matching = [p for p in problems if p.location == location]
        assert matching, f"no problem at {location!r}; got {[str(p) for p in problems]}"
        assert any(fragment in p.message for p in matching), (
            f"problem at {location!r} does not say {fragment!r}: {[p.message for p in matching]}"
        )


def test_all_problems_of_a_file_are_reported_in_one_run() -> None:
    with pytest.raises(InvalidEnvironment) as refused:
        load_environment(
            Path(__file__).parent.parent / "environments/broken/many-problems-at-once.yaml"
        )
    assert len(refused.value.problems) >= 3


def test_the_seed_environment_is_valid_and_derives_every_id_from_names() -> None:
    env = load_environment("rubicon-krc-01")

    assert env.cluster_id == (
        "/subscriptions/f752aff6-b20c-4973-b32b-0a60ba2c6764/resourceGroups/rg-rubicon-koreacentral-01"
        "/providers/Microsoft.ContainerService/managedClusters/aks-rubicon-koreacentral-01"
    )
    assert env.configuration_association_id.endswith(
        "/managedClusters/aks-rubicon-koreacentral-01/providers/Microsoft.Insights"
        "/dataCollectionRuleAssociations/configurationAccessEndpoint"
    )
    assert env.endpoint_id("ingestion").split("/")[4] == (
        "MA_azuremonitor-workspace-rubicon-krc-01_koreacentral_managed"
    )
    assert len(env.private_dns.zones) == 5
    assert [role for role, _ in env.distinct_endpoints()] == ["configuration", "ingestion"]


def test_one_endpoint_may_play_both_roles_when_no_ingestion_endpoint_is_given() -> None:
    raw = _seed_raw()
    del raw["data_collection_endpoints"]["ingestion"]
    raw["data_collection_rules"] = [raw["data_collection_rules"][0]]

    env = parse_environment(raw)

    assert env.endpoint_id("ingestion") == env.endpoint_id("configuration")
    assert len(env.distinct_endpoints()) == 1


def test_relative_paths_are_taken_from_the_environment_files_folder(tmp_path: Path) -> None:
    raw = _seed_raw()
    raw["kubernetes"] = {"kubeconfig": "kubeconfig"}
    raw["opentelemetry_operator"]["manifest"] = "operator.yaml"

    env = parse_environment(raw, base_dir=tmp_path)

    assert env.kubernetes.kubeconfig == tmp_path / "kubeconfig"
    assert env.opentelemetry_operator.manifest == str(tmp_path / "operator.yaml")


def test_an_unknown_environment_name_lists_the_known_ones() -> None:
    with pytest.raises(FileNotFoundError, match="rubicon-krc-01"):
        load_environment("no-such-environment")


def test_cli_validate_exits_zero_for_the_seed_environment() -> None:
    result = _cli("validate", "rubicon-krc-01")
    assert result.returncode == 0, result.stderr
    assert "configurationAccessEndpoint" not in result.stderr
    assert "aks-rubicon-koreacentral-01" in result.stdout


def test_cli_validate_exits_two_and_names_the_fields_of_a_broken_file() -> None:
    path = Path(__file__).parent.parent / "environments/broken/many-problems-at-once.yaml"
    result = _cli("validate", str(path))
    assert result.returncode == 2
    for location, _ in expectations(path):
        assert location in result.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aksmetrics.cli", *args], capture_output=True, text=True, timeout=60
    )


def _seed_raw() -> dict:
    import yaml

    from aksmetrics.environment import environments_dir

    return yaml.safe_load((environments_dir() / "rubicon-krc-01.yaml").read_text())
