"""Start a sandbox as a separate process and talk to its control endpoints.

This is what tests and benchmarks use to drive a sandbox the way a person does
(``python -m sandbox up --detach``), then read the request logs of both servers to prove what a run
wrote, without trusting the run's own report, and inject faults (latency, errors, resets).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sandbox.runner import SandboxPaths

Server = Literal["arm", "kube"]

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})


@dataclass
class RunningSandbox:
    """A sandbox started in ``directory``, and what a client needs to reach it."""

    scenario: str
    directory: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def paths(self) -> SandboxPaths:
        """Every file the sandbox wrote into its folder."""
        return SandboxPaths(self.directory)

    @property
    def environment(self) -> Path:
        """The environment file the sandbox wrote (the seed's names, pointed at the sandbox)."""
        return self.paths.environment

    @property
    def ca(self) -> Path:
        return self.paths.ca

    @property
    def arm_url(self) -> str:
        return str(self.info["arm_url"])

    @property
    def kube_url(self) -> str:
        return str(self.info["kube_url"])

    def requests(self, server: Server) -> list[dict[str, Any]]:
        """The request log of ``"arm"`` or ``"kube"`` since it was last cleared."""
        found = self._call("GET", f"{self._base(server)}/_sandbox/requests")
        return list(found if isinstance(found, list) else found.get("requests", []))

    def clear_requests(self) -> None:
        for server in ("arm", "kube"):
            self._call("DELETE", f"{self._base(server)}/_sandbox/requests")

    def add_fault(self, server: Server, rule: dict[str, Any]) -> None:
        """Add a fault rule to ``"arm"`` or ``"kube"`` (latency, status, resets; see the sandbox's
        ``/_sandbox/faults``)."""
        self._call("POST", f"{self._base(server)}/_sandbox/faults", rule)

    def clear_faults(self, server: Server) -> None:
        self._call("POST", f"{self._base(server)}/_sandbox/faults", {})

    def stop(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "sandbox", "down", "--dir", str(self.directory)],
            capture_output=True,
            timeout=60,
            check=False,
        )

    def _base(self, server: Server) -> str:
        return self.arm_url if server == "arm" else self.kube_url

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        context = ssl.create_default_context(cafile=str(self.ca))
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return json.loads(response.read() or b"null")


def start_sandbox(scenario: str, directory: Path) -> RunningSandbox:
    """``python -m sandbox up --detach`` in ``directory``; raise with its output if it fails."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "up",
            "--detach",
            "--fresh",
            "--scenario",
            scenario,
            "--dir",
            str(directory),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    sandbox = RunningSandbox(scenario, directory)
    if done.returncode != 0:
        sandbox.stop()
        raise RuntimeError(f"sandbox {scenario} did not start:\n{done.stdout}\n{done.stderr}")
    sandbox.info = json.loads(sandbox.paths.sandbox_json.read_text())
    return sandbox


def writes(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of a request log that changed state. Sign-in (the token endpoint) and the
    service proxy (traffic to a workload, not to the API's objects) are not writes."""
    return [
        entry
        for entry in entries
        if entry.get("method") in WRITE_METHODS
        and "/oauth2/" not in entry.get("path", "")
        and "/proxy/" not in entry.get("path", "")
    ]
