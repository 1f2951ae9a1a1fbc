"""Fixtures for the end-to-end tests: the sandbox as a separate process, and a Prefect test server.

``sandbox_factory`` starts ``python -m sandbox up --detach --scenario NAME --dir DIR`` (the same
command a person runs) and stops every sandbox it started at the end of the session; a test module
that only reads can share one sandbox per scenario, a test that writes starts its own. Each
:class:`RunningSandbox` reads the request logs of both servers (``/_sandbox/requests``), which is
how tests prove what a run wrote, without trusting the run's own report.

Prefect runs against ``prefect_test_harness`` (a temporary server and database for the session),
with the flow heartbeat off. The project's tunables are made small before any task module is
imported, since tasks read their retry counts at import.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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

REPO = Path(__file__).resolve().parents[2]


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


@dataclass
class RunningSandbox:
    """A sandbox started for a test, and what a client needs to reach it."""

    scenario: str
    directory: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def environment(self) -> Path:
        """The environment file the sandbox wrote (the seed's names, pointed at the sandbox)."""
        return self.directory / "environment.yaml"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def arm_url(self) -> str:
        return str(self.info["arm_url"])

    @property
    def kube_url(self) -> str:
        return str(self.info["kube_url"])

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        context = ssl.create_default_context(cafile=str(self.ca))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def _base(self, server: str) -> str:
        return self.arm_url if server == "arm" else self.kube_url

    def requests(self, server: str) -> list[dict[str, Any]]:
        """The request log of ``"arm"`` or ``"kube"`` since it was last cleared."""
        found = self._call("GET", f"{self._base(server)}/_sandbox/requests")
        return list(found if isinstance(found, list) else found.get("requests", []))

    def add_fault(self, server: str, rule: dict[str, Any]) -> None:
        """Inject a fault into ``"arm"`` or ``"kube"`` (see the sandbox's ``/_sandbox/faults``)."""
        self._call("POST", f"{self._base(server)}/_sandbox/faults", rule)

    def clear_faults(self, server: str) -> None:
        self._call("POST", f"{self._base(server)}/_sandbox/faults", {})

    def clear_requests(self) -> None:
        for base in (self.arm_url, self.kube_url):
            self._call("DELETE", f"{base}/_sandbox/requests")

    def inject_fault(self, server: str, rule: dict[str, Any]) -> None:
        """Make ``"arm"`` or ``"kube"`` fail requests (``/_sandbox/faults``; ``{}`` clears)."""
        base = self.arm_url if server == "arm" else self.kube_url
        context = ssl.create_default_context(cafile=str(self.ca))
        request = urllib.request.Request(
            f"{base}/_sandbox/faults",
            data=json.dumps(rule).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, context=context, timeout=30):
            pass

    def stop(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "sandbox", "down", "--dir", str(self.directory)],
            cwd=REPO,
            capture_output=True,
            timeout=60,
            check=False,
        )


class SandboxFactory:
    """Starts sandboxes in fresh directories; stops every one of them at the end."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._started: list[RunningSandbox] = []

    def start(self, scenario: str) -> RunningSandbox:
        directory = self._root / f"{scenario}-{len(self._started)}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "sandbox",
                "up",
                "--detach",
                "--scenario",
                scenario,
                "--dir",
                str(directory),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        sandbox = RunningSandbox(scenario, directory)
        self._started.append(sandbox)
        if done.returncode != 0:
            raise RuntimeError(f"sandbox {scenario} did not start:\n{done.stdout}\n{done.stderr}")
        sandbox.info = json.loads((directory / "sandbox.json").read_text())
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
