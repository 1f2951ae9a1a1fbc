"""``aks-metrics provision``: bad input exits 2 before any flow runs."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aksmetrics.cli import app


def test_an_unknown_environment_exits_two(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["provision", str(tmp_path / "absent.yaml")])

    assert result.exit_code == 2
    assert "no environment file" in result.output


def test_an_invalid_environment_exits_two_naming_the_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: Not_Valid\n")

    result = CliRunner().invoke(app, ["provision", str(broken), "--plan"])

    assert result.exit_code == 2
    assert "name" in result.output


def test_an_unknown_step_exits_two_listing_the_steps() -> None:
    result = CliRunner().invoke(app, ["provision", "rubicon-krc-01", "--step", "operatr"])

    assert result.exit_code == 2
    assert "operatr" in result.output and "pod-monitor" in result.output
