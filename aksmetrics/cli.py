"""The ``aks-metrics`` command line: validate environments and run the flows locally.

Flows are imported inside the commands that run them, so that ``aks-metrics validate`` stays fast
and works without a Prefect server.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Literal

import typer

from aksmetrics.environment import Environment, InvalidEnvironment, load_environment

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
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2


@app.command()
def validate(environment: EnvArgument) -> None:
    """Check an environment file without calling anything; list every problem at once."""
    env = _environment_or_exit(environment)
    typer.echo(f"{environment}: valid environment {env.name!r}")
    typer.echo(f"  cluster        {env.cluster_id}")
    typer.echo(f"  configuration  {env.endpoint_id('configuration')}")
    typer.echo(f"  ingestion      {env.endpoint_id('ingestion')}")
    typer.echo(f"  scope          {env.private_link_scope_id}")
    typer.echo(
        f"  endpoint       {env.private_endpoint_id} (subnet {env.network.private_endpoint_subnet})"
    )
    typer.echo(f"  dns zones      {', '.join(env.private_dns.zones)}")


@app.command()
def provision(
    environment: EnvArgument,
    plan: Annotated[
        bool, typer.Option("--plan", help="Read only: list what an apply run would change.")
    ] = False,
    step: Annotated[
        list[str] | None,
        typer.Option(
            "--step",
            metavar="STEP",
            help="Run only this step (repeat for more): preflight, operator, collector, "
            "pod-monitor, private-link-scope, scoped-resources, private-endpoint, private-dns, "
            "rule-endpoints, configuration-association, restart, wait-healthy, verify.",
        ),
    ] = None,
    allow_adopt: Annotated[
        bool,
        typer.Option("--allow-adopt", help="Allow changing objects this project did not create."),
    ] = False,
) -> None:
    """Provision an environment as the runbook does (a local run of the `provision` flow)."""
    _environment_or_exit(environment)

    from flows.provision import STEPS, ProvisionFailed
    from flows.provision import provision as provision_flow

    unknown = [name for name in step or [] if name not in STEPS]
    if unknown:
        typer.echo(
            f"error: unknown step(s) {', '.join(unknown)}; steps are {', '.join(STEPS)}", err=True
        )
        raise typer.Exit(EXIT_BAD_INPUT)

    from aksmetrics.changes import render_table

    state = provision_flow(
        environment=environment,
        plan=plan,
        steps=step or None,
        allow_adopt=allow_adopt,
        return_state=True,
    )
    result = state.result(raise_on_failure=False)
    if state.is_completed():
        typer.echo(render_table(result))
        return
    if isinstance(result, ProvisionFailed):
        if result.changes:
            typer.echo(render_table(result.changes))
        typer.echo(str(result), err=True)
    else:
        typer.echo(f"error: {state.message or result}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED)


@app.command()
def verify(
    environment: EnvArgument,
    canary: Annotated[
        bool | None,
        typer.Option(
            "--canary/--no-canary",
            help="Send a canary metric and wait for it in the workspace (default: the "
            "environment's canary.enabled).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check, read-only, that the pipeline works; name the cause and the fix of every failure
    (a local run of the `verify` flow). Exits 1 when any check fails."""
    _environment_or_exit(environment)

    from flows.verify import verify as verify_flow

    # The flow prints the table of checks itself; only the verdict is added here.
    state = verify_flow(environment=environment, canary=canary, return_state=True)
    if state.is_completed():
        return
    typer.echo(f"verify failed: {state.message}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED)


@app.command(name="drift-check")
def drift_check(
    environment: EnvArgument,
    policy: Annotated[
        Literal["report", "safe", "ask"],
        typer.Option(
            "--policy",
            help="report: write nothing; safe: re-create or correct what the project owns, "
            "restart ama-metrics where needed, verify; ask: as safe, after approval in the "
            "Prefect UI (needs a Prefect server: PREFECT_API_URL).",
        ),
    ] = "report",
    canary: Annotated[
        bool | None,
        typer.Option(
            "--canary/--no-canary",
            help="Include the canary in the checks (default: the environment's canary.enabled).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare an environment with its desired state and repair it as --policy allows (a local
    run of the `drift-check` flow). Exits 1 when drift was found and is not repaired."""
    _environment_or_exit(environment)

    from flows.drift_check import drift_check as drift_check_flow

    # The flow prints the drift table itself; only the verdict is added here.
    state = drift_check_flow(
        environment=environment, policy=policy, canary=canary, return_state=True
    )
    if state.is_completed():
        typer.echo(state.message)
        return
    typer.echo(f"drift check: {state.message}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED)


@app.command()
def teardown(
    environment: EnvArgument,
    confirm: Annotated[
        bool,
        typer.Option("--confirm", help="Delete for real what the project created here."),
    ] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Read only: list what a teardown would delete.")
    ] = False,
) -> None:
    """Remove what provision created, in reverse order and only what the project owns (a local
    run of the `teardown` flow). Needs --confirm, or --plan to only look."""
    env = _environment_or_exit(environment)
    if not confirm and not plan:
        typer.echo("error: give --confirm to delete, or --plan to list what would go", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)

    from flows.teardown import teardown as teardown_flow

    # The flow's own confirmation is the environment's name; --confirm stands for typing it.
    state = teardown_flow(
        environment=environment,
        confirm=env.name if confirm else "",
        plan=plan,
        return_state=True,
    )
    if state.is_completed():
        typer.echo(state.message)
        return
    typer.echo(f"teardown: {state.message}", err=True)
    raise typer.Exit(EXIT_RUN_FAILED)


def _environment_or_exit(environment: str) -> Environment:
    """The environment, or exit 2 with every problem of its file."""
    try:
        return load_environment(environment)
    except FileNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except InvalidEnvironment as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


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
