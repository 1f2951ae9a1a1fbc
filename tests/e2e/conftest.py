"""Fixtures for the end-to-end tests: the sandbox as a separate process, and a Prefect test server.

``sandbox_factory`` starts ``python -m sandbox up --detach --fresh --scenario NAME --dir DIR`` (the
same command a person runs, through :mod:`sandbox.handle`) and stops every sandbox it started at the
end of the session; a test module that only reads can share one sandbox per scenario, a test that
writes starts its own. Each :class:`sandbox.handle.RunningSandbox` reads the request logs of both
servers (``/_sandbox/requests``), which is how tests prove what a run wrote, without trusting the
run's own report; helpers that several modules use are in ``e2e_support.py``.

Prefect runs against ``prefect_test_harness`` (a temporary server and database for the session),
with the flow heartbeat off. The project's tunables are made small before any task module is
imported, since tasks read their retry counts at import.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.handle import RunningSandbox, start_sandbox

__all__ = ["RunningSandbox", "SandboxFactory"]

# Small waits and retries: the sandbox answers in milliseconds. setdefault lets a test run override.
for _name, _value in {
    "AKS_METRICS_POLLING_INTERVAL": "0.1",
    "AKS_METRICS_TASK_RETRIES": "2",
    "AKS_METRICS_TASK_RETRY_DELAY": "0.2",
    "AKS_METRICS_WAIT_INITIAL_DELAY": "0.2",
    "AKS_METRICS_WAIT_MAX_DELAY": "1",
    "AKS_METRICS_ARM_RETRY_TOTAL": "2",
}.items():
    os.environ.setdefault(_name, _value)

# The SDKs honour proxy variables; loopback must never go through one.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ["no_proxy"] = os.environ["NO_PROXY"]


@pytest.fixture(scope="session", autouse=True)
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server and database for the whole session."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=60),
        temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        yield


class SandboxFactory:
    """Starts sandboxes in fresh directories (:func:`sandbox.handle.start_sandbox`); stops every
    one of them at the end."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._started: list[RunningSandbox] = []
        self._attempts = 0

    def start(self, scenario: str) -> RunningSandbox:
        directory = self._root / f"{scenario}-{self._attempts}"
        self._attempts += 1
        sandbox = start_sandbox(scenario, directory)
        self._started.append(sandbox)
        return sandbox

    def stop_all(self) -> None:
        for sandbox in self._started:
            sandbox.stop()


@pytest.fixture(scope="session")
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxFactory]:
    factory = SandboxFactory(tmp_path_factory.mktemp("sandboxes"))
    try:
        yield factory
    finally:
        factory.stop_all()
