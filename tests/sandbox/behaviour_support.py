"""Helpers for the behaviour, data-path and runner tests: a sandbox on a background thread, the
real clients pointed at it, and a bounded poll."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from azure.identity import ClientSecretCredential
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from sandbox.runner import RunnerOptions, SandboxRunner

T = TypeVar("T")


@dataclass
class RunningSandbox:
    """A started sandbox and what its clients need."""

    runner: SandboxRunner
    directory: Path
    environment: dict[str, Any]

    @property
    def ca(self) -> str:
        return str(self.directory / "ca.pem")

    @property
    def arm_url(self) -> str:
        return self.environment["cloud"]["arm_endpoint"]

    @property
    def kube_url(self) -> str:
        return self.runner.kube.url

    def api_client(self) -> k8s.ApiClient:
        """An official `kubernetes` client configured from the sandbox's kubeconfig."""
        configuration = k8s.Configuration()
        k8s_config.load_kube_config(
            config_file=str(self.directory / "kubeconfig"), client_configuration=configuration
        )
        return k8s.ApiClient(configuration)

    def credential(self) -> ClientSecretCredential:
        """A real azure-identity credential against the sandbox's token endpoint."""
        auth = self.environment["auth"]
        secret = Path(auth["client_secret_file"]).read_text().strip()
        return ClientSecretCredential(
            auth["tenant_id"],
            auth["client_id"],
            secret,
            authority=self.arm_url,
            disable_instance_discovery=True,
            connection_verify=self.ca,
        )

    def arm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every azure-mgmt client needs to reach the sandbox."""
        return {
            "base_url": self.arm_url,
            "credential_scopes": ["https://management.azure.com/.default"],
            "connection_verify": self.ca,
            "polling_interval": 0.1,
            "retry_total": 2,
        }


@contextmanager
def running_sandbox(
    directory: Path,
    scenario: str,
    *,
    agent_start_delay: float = 0.2,
    agent_retry_interval: float = 0.5,
) -> Iterator[RunningSandbox]:
    """Run a sandbox on its own event loop in a background thread for the block's duration."""
    options = RunnerOptions(
        directory=directory,
        scenario=scenario,
        fresh=True,
        agent_start_delay=agent_start_delay,
        agent_retry_interval=agent_retry_interval,
        lro_delay=0.05,
    )
    runner = SandboxRunner(options)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    stop = asyncio.Event()

    async def main() -> None:
        try:
            await runner.start()
        except BaseException as exc:  # surfaced in the test thread below
            failure.append(exc)
            started.set()
            await runner.stop()
            return
        started.set()
        await stop.wait()
        await runner.stop()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait(60)
    if failure:
        raise failure[0]
    environment = yaml.safe_load((directory / "environment.yaml").read_text())
    try:
        yield RunningSandbox(runner=runner, directory=directory, environment=environment)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def eventually(
    probe: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s; last value: {last!r}")
        time.sleep(interval)
        last = probe()
    return last
