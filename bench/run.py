"""Benchmarks, measured in one run and reported as ratios (never asserted as timed tests).

1. verify and a no-drift drift-check under API latency: a run with every request to ARM and to the
   Kubernetes API delayed by L should take far less than a sequential script, which pays L once per
   request. Reported: wall time / (wall time at no latency + requests x L), and the round trips
   the run waited for in a row ((wall time - wall time at no latency) / L) against the requests.
2. provision on a healthy environment: zero writes (from the sandbox's request log), and the same
   latency ratio.
3. waits notice a condition within one poll interval: a condition that becomes true at a random
   moment is noticed after at most the delay in force at that moment. Reported: the worst ratio of
   the notice lag to that delay (1.0 or below is the target).

Run with ``.venv/bin/python -m bench.run`` (about two minutes). It starts its own sandbox and a
temporary Prefect server, and stops both.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Small retries and waits, as in the tests: the sandbox answers in milliseconds. The task modules
# read these at import, so they are set first.
for _name, _value in {
    "AKS_METRICS_POLLING_INTERVAL": "0.1",
    "AKS_METRICS_TASK_RETRY_DELAY": "0.2",
    "AKS_METRICS_WAIT_INITIAL_DELAY": "0.2",
    "AKS_METRICS_WAIT_MAX_DELAY": "1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}.items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from sandbox.handle import RunningSandbox, start_sandbox, writes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help="latency per request")
    arguments = parser.parse_args()
    latency = arguments.latency_ms / 1000.0

    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        tempfile.TemporaryDirectory() as scratch,
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        sandbox = start_sandbox("healthy", Path(scratch) / "sandbox")
        try:
            report_flow_latency(sandbox, latency)
        finally:
            sandbox.stop()
    report_wait_notice()


def report_flow_latency(sandbox: RunningSandbox, latency: float) -> None:
    from aksmetrics.steps import STEPS
    from flows.drift_check import drift_check
    from flows.provision import provision
    from flows.verify import verify

    environment = str(sandbox.environment)
    # The provision run leaves out its closing verify, which is measured on its own.
    steps = [step for step in STEPS if step != "verify"]
    runs: dict[str, Callable[[], Any]] = {
        "verify (no canary)": lambda: verify(environment=environment, canary=False),
        "provision, healthy": lambda: provision(environment=environment, steps=steps),
        "drift-check, no drift": lambda: drift_check(
            environment=environment, policy="report", canary=False
        ),
    }
    # One run of each first: imports, connections and the token are start-up cost, not latency.
    for run in runs.values():
        _quietly(run)

    print(f"\n== flows under {latency * 1000:g} ms per request (ARM and Kubernetes API)")
    print(
        f"{'flow':<22} {'requests':>8} {'writes':>6} {'wall 0':>8} {'wall L':>8} "
        f"{'sequential':>10} {'ratio':>6} {'in a row':>8}"
    )
    for name, run in runs.items():
        base, _ = _measure(sandbox, run, latency=0.0)
        wall, log = _measure(sandbox, run, latency=latency)
        sequential = base + len(log) * latency
        print(
            f"{name:<22} {len(log):>8} {len(writes(log)):>6} {base:>7.2f}s {wall:>7.2f}s "
            f"{sequential:>9.2f}s {wall / sequential:>6.2f} {(wall - base) / latency:>8.0f}"
        )


def _measure(
    sandbox: RunningSandbox, run: Callable[[], Any], *, latency: float
) -> tuple[float, list[dict[str, Any]]]:
    for server in ("arm", "kube"):
        sandbox.clear_faults(server)
        if latency:
            sandbox.add_fault(server, {"latency_ms": latency * 1000.0})
    sandbox.clear_requests()
    started = time.perf_counter()
    _quietly(run)
    wall = time.perf_counter() - started
    log = sandbox.requests("arm") + sandbox.requests("kube")
    for server in ("arm", "kube"):
        sandbox.clear_faults(server)
    return wall, log


def _quietly(run: Callable[[], Any]) -> None:
    """Run a flow without its terminal table; a failed run is still measured, and said."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            run()
    except Exception as error:
        print(f"  (run ended with {type(error).__name__}: {str(error).splitlines()[0]})")


def report_wait_notice(trials: int = 20) -> None:
    from tasks.retries import Observation, poll

    print("\n== waits: how soon a condition is noticed, against the delay in force")
    rng = random.Random(7)
    worst = 0.0
    lags = []
    for _ in range(trials):
        flips_after = rng.uniform(0.05, 1.5)
        flipped = threading.Event()
        timer = threading.Timer(flips_after, flipped.set)
        delays: list[float] = []

        def sleep(seconds: float, delays: list[float] = delays) -> None:
            delays.append(seconds)
            time.sleep(seconds)

        started = time.monotonic()
        timer.start()
        poll(
            lambda flipped=flipped: Observation(flipped.is_set(), "flag"),
            what="flag",
            timeout=10,
            initial_delay=0.05,
            max_delay=0.4,
            sleep=sleep,
        )
        lag = time.monotonic() - started - flips_after
        in_force = delays[-1] if delays else 0.05
        lags.append(lag)
        worst = max(worst, lag / in_force)
    print(
        f"trials {trials}: median lag {sorted(lags)[trials // 2] * 1000:.0f} ms, "
        f"worst lag / delay in force {worst:.2f} (target <= 1.0)"
    )


if __name__ == "__main__":
    main()
