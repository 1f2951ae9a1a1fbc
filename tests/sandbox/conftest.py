"""Shared fixtures for the sandbox tests: the emulated Azure on free loopback ports.

``azure_sandbox`` starts an :class:`~sandbox.azure.server.AzureSandbox` in a background thread
with its own event loop, so tests can drive it with the real, synchronous Azure SDKs.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sandbox.azure.models import AzureState
from sandbox.azure.scenarios import SEED, AzureEnvironment, build_scenario
from sandbox.azure.server import AzureSandbox
from sandbox.azure.throttling import ThrottleLimits
from sandbox.tls import TlsBundle, make_tls_bundle

T = TypeVar("T")

# The SDKs honour proxy variables; loopback must never go through one.
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ["no_proxy"] = os.environ["NO_PROXY"]


class LoopThread:
    """An asyncio event loop running in a daemon thread, for servers under test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass
class RunningAzure:
    """A started sandbox and what a client needs to reach it."""

    sandbox: AzureSandbox
    state: AzureState
    tls: TlsBundle
    environment: AzureEnvironment
    loop: LoopThread

    @property
    def arm_url(self) -> str:
        return self.sandbox.arm_url

    @property
    def ca(self) -> str:
        return str(self.tls.ca_pem)

    def credential(self, **kwargs: Any) -> Any:
        """A real ``ClientSecretCredential`` against the sandbox's token endpoint."""
        from azure.identity import ClientSecretCredential

        return ClientSecretCredential(
            self.sandbox.tenant_id,
            self.sandbox.client_id,
            self.sandbox.client_secret,
            authority=self.arm_url,
            disable_instance_discovery=True,
            connection_verify=self.ca,
            **kwargs,
        )

    def restart(self) -> None:
        """Stop the sandbox and start a new one on its persisted state, as a process restart."""
        self.loop.run(self.sandbox.stop())
        state = AzureState(state_dir=self.state.state_dir, lro_delay=self.state.lro_delay)
        sandbox = AzureSandbox(
            state,
            tls=self.tls,
            lro_delay=self.state.lro_delay,
            client_secret=self.sandbox.client_secret,
        )
        self.loop.run(sandbox.start())
        self.sandbox, self.state = sandbox, state

    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments every azure-mgmt client needs to use the sandbox."""
        kwargs: dict[str, Any] = {
            "base_url": self.arm_url,
            "credential_scopes": ["https://management.azure.com/.default"],
            "connection_verify": self.ca,
            "polling_interval": 0.05,
        }
        kwargs.update(overrides)
        return kwargs


@pytest.fixture(scope="session")
def tls_bundle(tmp_path_factory: pytest.TempPathFactory) -> TlsBundle:
    """One CA and server certificate for every sandbox server of the session."""
    return make_tls_bundle(tmp_path_factory.mktemp("tls"))


def start_azure(
    tmp_path: Path,
    tls: TlsBundle,
    *,
    scenario: str | None = "addon-only",
    lro_delay: float = 0.05,
    throttle: ThrottleLimits | None = None,
    **kwargs: Any,
) -> RunningAzure:
    """Build a state (optionally a scenario), start a sandbox on free ports, return it running."""
    state = AzureState(state_dir=tmp_path / "state", lro_delay=lro_delay)
    if scenario is not None:
        build_scenario(state, scenario)
    sandbox = AzureSandbox(state, tls=tls, lro_delay=lro_delay, throttle=throttle, **kwargs)
    loop = LoopThread()
    loop.run(sandbox.start())
    return RunningAzure(sandbox, state, tls, SEED, loop)


def stop_azure(running: RunningAzure) -> None:
    running.loop.run(running.sandbox.stop())
    running.loop.close()


@pytest.fixture
def azure_sandbox(tmp_path: Path, tls_bundle: TlsBundle) -> Iterator[RunningAzure]:
    """The emulated Azure in the ``addon-only`` scenario (the runbook's start), running."""
    running = start_azure(tmp_path, tls_bundle)
    try:
        yield running
    finally:
        stop_azure(running)


@pytest.fixture
def azure_sandbox_factory(
    tmp_path: Path, tls_bundle: TlsBundle
) -> Iterator[Callable[..., RunningAzure]]:
    """Start sandboxes with other scenarios or limits; all are stopped after the test."""
    started: list[RunningAzure] = []

    def factory(**kwargs: Any) -> RunningAzure:
        directory = tmp_path / f"azure-{len(started)}"
        running = start_azure(directory, tls_bundle, **kwargs)
        started.append(running)
        return running

    try:
        yield factory
    finally:
        for running in started:
            stop_azure(running)


# The Kubernetes API server's fixtures, shared by the test_kube_* modules.
from kube_fixtures import kube, kubectl  # noqa: E402, F401
