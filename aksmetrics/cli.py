"""The ``aks-metrics`` command line: validate environments and run the flows locally.

Flows are imported inside the commands that run them, so that ``aks-metrics validate`` stays fast
and works without a Prefect server.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from aksmetrics.environment import InvalidEnvironment, load_environment

app = typer.Typer(
    name="aks-metrics",
    help="Provision, verify and repair OpenTelemetry metrics from an AKS private cluster to Azure "
    "Monitor.",
    no_args_is_help=True,
    add_completion=False,
)

EnvArgument = Annotated[
    str,
    typer.Argument(
        metavar="ENV",
        help="An environment file, or a name under deployments/environments/ "
        "(e.g. rubicon-krc-01).",
    ),
]

# Exit codes: 0 success, 1 the run failed (e.g. a check failed), 2 bad input.
EXIT_BAD_INPUT = 2


@app.command()
def validate(environment: EnvArgument) -> None:
    """Check an environment file without calling anything; list every problem at once."""
    try:
        env = load_environment(environment)
    except FileNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except InvalidEnvironment as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    typer.echo(f"{environment}: valid environment {env.name!r}")
    typer.echo(f"  cluster        {env.cluster_id}")
    typer.echo(f"  configuration  {env.endpoint_id('configuration')}")
    typer.echo(f"  ingestion      {env.endpoint_id('ingestion')}")
    typer.echo(f"  scope          {env.private_link_scope_id}")
    typer.echo(
        f"  endpoint       {env.private_endpoint_id} (subnet {env.network.private_endpoint_subnet})"
    )
    typer.echo(f"  dns zones      {', '.join(env.private_dns.zones)}")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def sandbox(ctx: typer.Context) -> None:
    """Run the emulated closed-network Azure + AKS: up, down, status, scenarios."""
    # The sandbox is a separate program: production code never imports it.
    argv = [sys.executable, "-m", "sandbox", *ctx.args]
    os.execv(sys.executable, argv)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
