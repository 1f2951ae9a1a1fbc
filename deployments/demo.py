"""`make demo`: provision the sandbox environment through a real, local Prefect server.

The demo does what a person would do by hand, in this order, and says so as it goes:

1. start the sandbox (an emulated closed-network Azure + AKS) in ``.demo/sandbox`` with scenario
   ``addon-only``, the runbook's starting point;
2. start a Prefect server on SQLite in its own home (``.demo/prefect``), on 127.0.0.1 only;
3. create the process work pool, deploy the ``sandbox`` deployments of ``deployments/prefect.yaml``
   (they name ``.demo/sandbox/environment.yaml``; with ``--dir`` elsewhere they are pointed at that
   folder's file) and start a worker;
4. ``prefect deployment run provision/sandbox --watch``;
5. print the verify checklist of that run;
6. stop everything it started, and exit 0 when the environment ended healthy, 1 otherwise.

``--keep`` (``make demo KEEP=1``) serves the Prefect UI and keeps the server, the worker and the
sandbox running after step 5, until Ctrl-C, so that a person can look at the runs, start custom runs
and reruns, and watch the drift check's schedule.

The same :class:`PrefectStack` starts the server and worker of the deployment tests
(tests/e2e/test_deployments.py). Every process is started in its own session and stopped with
everything it started; :meth:`PrefectStack.leftover_processes` lets a test prove that nothing was
left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PREFECT_FILE = REPO_ROOT / "deployments" / "prefect.yaml"
DEMO_DIR = REPO_ROOT / ".demo"
WORK_POOL = "aks-metrics"
SANDBOX_DEPLOYMENTS = (
    "provision/sandbox",
    "verify/sandbox",
    "drift-check/sandbox",
    "teardown/sandbox",
)
UI_PORT = 4200

Say = Callable[[str], None]


def say(message: str) -> None:
    """Print one progress line of the demo, flushed at once so it interleaves with child output."""
    print(f"[demo] {message}", flush=True)


def _quiet(message: str) -> None:
    """Progress lines nobody asked for (the tests' default)."""


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:``port`` now (as uvicorn does, with
    SO_REUSEADDR, so that a port a stopped server left in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``, found through the parent ids in /proc.

    A Prefect worker starts each flow run in a session of its own, so killing the worker's process
    group would not reach them; walking the tree does.
    """
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


class ManagedProcess:
    """A long-running child (server, worker) in its own session, logging to a file.

    :meth:`stop` asks politely (SIGINT, which Prefect handles as a clean shutdown), then insists
    (SIGTERM, SIGKILL), and does the same to every process the child started. Every pid it ever saw
    is remembered in :attr:`seen`, so that nothing can slip away unnoticed.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.seen: set[int] = set()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.seen.add(self._process.pid)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def remember_children(self) -> None:
        """Note the processes the child started so far (flow runs come and go)."""
        if self.running():
            assert self._process is not None
            self.seen |= descendants(self._process.pid)

    def stop(self, *, grace_seconds: float = 15.0) -> None:
        """Stop the child and everything below it; return when none of them runs any more."""
        if self._process is None:
            return
        self.remember_children()
        group = self._process.pid
        for sig, wait in (
            (signal.SIGINT, grace_seconds),
            (signal.SIGTERM, 5.0),
            (signal.SIGKILL, 5.0),
        ):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
            for pid in self.seen - {group}:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            if self._wait_all_gone(wait):
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1)

    def _wait_all_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self._process is not None
            self._process.poll()  # reaps the direct child so that it stops counting as alive
            if not [pid for pid in self.seen if is_alive(pid)]:
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


# -- Prefect ------------------------------------------------------------------------------------


class PrefectStack:
    """A local Prefect server (SQLite in its own ``home``) and a process worker, for tests and demo.

    Commands run as the ``prefect`` CLI next to this interpreter, from the repository root, with an
    environment that holds only this stack's Prefect settings (none inherited from the caller).
    ``extra_env`` reaches the worker and so every flow run (e.g. ``AKS_METRICS_*`` tunables).
    """

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        ui: bool = False,
        extra_env: Mapping[str, str] | None = None,
        say: Say = _quiet,
    ) -> None:
        self.home = home
        self.port = port or free_port()
        self.ui = ui
        self.say = say
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.ui_url = f"http://127.0.0.1:{self.port}"
        self.env = self._environment(extra_env or {})
        self.server: ManagedProcess | None = None
        self.worker: ManagedProcess | None = None

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
        env.update(
            {
                "PREFECT_HOME": str(self.home),
                "PREFECT_API_URL": self.api_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_SERVER_UI_ENABLED": "true" if self.ui else "false",
                # The defaults poll every 10 s; a person (and a test) would wait for nothing.
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "PREFECT_RUNNER_POLL_FREQUENCY": "1",
                "PREFECT_CLI_COLORS": "false",
                "PREFECT_CLI_WRAP_LINES": "false",
                # The project's code is imported from the checkout, whatever the caller's cwd.
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
                ),
            }
        )
        env.update(extra)
        return env

    # The ``prefect`` console script of this interpreter's environment (the project's venv).
    @property
    def prefect_executable(self) -> str:
        candidate = Path(sys.executable).parent / "prefect"
        return str(candidate) if candidate.exists() else "prefect"

    def prefect(
        self,
        *args: str,
        check: bool = True,
        capture: bool = True,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run one ``prefect`` CLI command against this stack's server."""
        result = subprocess.run(
            [self.prefect_executable, *args],
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=capture,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"`prefect {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stdout or ''}{result.stderr or ''}"
            )
        return result

    def start_server(self, *, timeout: float = 120.0) -> None:
        """Start ``prefect server start`` and return once its API answers ``/health``."""
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [self.prefect_executable, "server", "start", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--ui" if self.ui else "--no-ui"]
        self.server = ManagedProcess(
            "prefect server", argv, env=self.env, cwd=REPO_ROOT, log_path=self.home / "server.log"
        )
        self.say(f"starting a Prefect server on {self.ui_url} (home {self.home})")
        self.server.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.server.running():
                raise RuntimeError(f"the Prefect server exited:\n{self.server.log_tail()}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(
            f"the Prefect server did not answer within {timeout:g} s:\n{self.server.log_tail()}"
        )

    def create_work_pool(self, name: str = WORK_POOL) -> None:
        self.say(f"creating the process work pool {name!r}")
        self.prefect("work-pool", "create", name, "--type", "process", "--overwrite")

    def deploy(self, names: Sequence[str] | None = None) -> str:
        """Deploy ``deployments/prefect.yaml`` (all of it, or the ``flow/deployment`` names)."""
        selection = [arg for name in names for arg in ("--name", name)] if names else ["--all"]
        self.say(f"deploying {', '.join(names) if names else 'every deployment'} of {PREFECT_FILE}")
        result = self.prefect(
            "--no-prompt", "deploy", "--prefect-file", str(PREFECT_FILE), *selection
        )
        return result.stdout

    def start_worker(self, pool: str = WORK_POOL) -> None:
        argv = [self.prefect_executable, "worker", "start", "--pool", pool, "--type", "process"]
        self.worker = ManagedProcess(
            "prefect worker", argv, env=self.env, cwd=REPO_ROOT, log_path=self.home / "worker.log"
        )
        self.say(f"starting a worker on pool {pool!r} (log {self.worker.log_path})")
        self.worker.start()

    def run_deployment(
        self,
        name: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        watch: bool = True,
        timeout: float = 600.0,
        stream: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``prefect deployment run NAME -p k=v … --watch``; its exit code says how the run ended.

        ``stream`` shows the CLI's output on this terminal as it comes (the demo), without the
        task-level events that ``--watch`` also prints; the whole output is returned either way.
        """
        args = ["deployment", "run", name]
        for key, value in (parameters or {}).items():
            args += ["--param", f"{key}={json.dumps(value)}"]
        if watch:
            args += ["--watch", "--watch-interval", "1", "--watch-timeout", str(int(timeout))]
        self.say(f"prefect {' '.join(args)}")
        if self.worker:
            self.worker.remember_children()
        if not stream:
            return self.prefect(*args, check=False, timeout=timeout + 30)

        process = subprocess.Popen(
            [self.prefect_executable, *args],
            env=self.env,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        lines = []
        try:
            for line in process.stdout:
                lines.append(line)
                if _worth_showing(line):
                    print(line, end="", flush=True)
            process.wait(timeout=30)
        finally:
            # Interrupted: the CLI would otherwise keep watching the run on its own.
            if process.poll() is None:
                process.kill()
                process.wait()
        return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines), "")

    def leftover_processes(self) -> list[int]:
        """Pids this stack started (directly or below) that still run; empty after :meth:`stop`."""
        seen: set[int] = set()
        for process in (self.worker, self.server):
            if process:
                process.remember_children()
                seen |= process.seen
        return sorted(pid for pid in seen if is_alive(pid))

    def stop(self) -> None:
        """Stop the worker (and its flow runs) first, then the server it talks to."""
        for process in (self.worker, self.server):
            if process and process.pid is not None:
                self.say(f"stopping the {process.name} (pid {process.pid})")
                process.stop()

    def __enter__(self) -> PrefectStack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _worth_showing(line: str) -> bool:
    """Whether a line of ``deployment run --watch`` tells a person something: everything but the
    event stream, of which only flow run states and failed tasks."""
    if not line.startswith("●"):
        return True
    if "heartbeat" in line:
        return False
    return ".flow-run." in line or "task-run.Failed" in line or "task-run.Crashed" in line


FLOW_RUN_ID = re.compile(r"UUID:\s*([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def flow_run_id(cli_output: str) -> str | None:
    """The flow run id that ``prefect deployment run`` printed, if any."""
    found = FLOW_RUN_ID.search(cli_output)
    return found.group(1) if found else None


# -- the sandbox --------------------------------------------------------------------------------


class Sandbox:
    """The emulated Azure + AKS, driven through its own CLI (``python -m sandbox up/down``)."""

    def __init__(self, directory: Path, *, scenario: str = "addon-only", say: Say = _quiet) -> None:
        self.directory = directory
        self.scenario = scenario
        self.say = say
        self.pid: int | None = None

    @property
    def environment_file(self) -> Path:
        return self.directory / "environment.yaml"

    def info(self) -> dict[str, Any]:
        """What the sandbox wrote about itself: pid, ARM and Kubernetes URLs, DNS resolvers."""
        return dict(json.loads((self.directory / "sandbox.json").read_text()))

    def already_running(self) -> int | None:
        """The pid of a sandbox still serving from this directory (e.g. a kept demo), if any."""
        try:
            pid = int(self.info()["pid"])
        except (FileNotFoundError, KeyError, ValueError, json.JSONDecodeError):
            return None
        return pid if is_alive(pid) else None

    def up(self, *, timeout: float = 120.0) -> None:
        self.say(f"starting the sandbox, scenario {self.scenario!r}, in {self.directory}")
        argv = [sys.executable, "-m", "sandbox", "up", "--detach", "--scenario", self.scenario]
        result = subprocess.run(
            [*argv, "--dir", str(self.directory)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"the sandbox did not start (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        self.pid = int(self.info()["pid"])
        info = self.info()
        self.say(f"sandbox up: ARM {info.get('arm_url')}, Kubernetes {info.get('kube_url')}")

    def down(self, *, timeout: float = 60.0) -> None:
        """Stop the sandbox; kill it if its own ``down`` did not (it must never outlive us)."""
        if self.pid is None:
            return
        self.say(f"stopping the sandbox (pid {self.pid})")
        subprocess.run(
            [sys.executable, "-m", "sandbox", "down", "--dir", str(self.directory)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        deadline = time.monotonic() + 10
        while is_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if is_alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def leftover_processes(self) -> list[int]:
        return [self.pid] if self.pid is not None and is_alive(self.pid) else []


# -- the checklist ------------------------------------------------------------------------------


def latest_table(api_url: str, key: str) -> list[dict[str, Any]] | None:
    """The rows of the newest table artifact with ``key`` on the server at ``api_url``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    if not artifacts:
        return None
    data = artifacts[0].data
    rows = json.loads(data) if isinstance(data, str) else data
    return list(rows) if isinstance(rows, list) else None


def render_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of the given columns, each as wide as its widest cell (capped)."""
    cells = [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [
        min(60, max(len(column), *(len(line[i]) for line in cells)))
        for i, column in enumerate(columns)
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            (value if len(value) <= width else value[: width - 1] + "…").ljust(width)
            for value, width in zip(values, widths, strict=True)
        ).rstrip()

    return "\n".join([line([c.upper() for c in columns]), *(line(values) for values in cells)])


# -- the demo -----------------------------------------------------------------------------------


def run_demo(*, keep: bool, directory: Path, scenario: str) -> int:
    """The whole demo; returns the exit code (0 healthy, 1 not healthy, 2 could not start)."""
    sandbox = Sandbox(directory / "sandbox", scenario=scenario, say=say)
    running = sandbox.already_running()
    if running:
        say(
            f"a sandbox still runs from {sandbox.directory} (pid {running}), probably a kept demo; "
            f"stop it first with Ctrl-C in its terminal, or `python -m sandbox down --dir "
            f"{sandbox.directory}`"
        )
        return 2
    # Each demo starts from the runbook's beginning, with no history from an earlier one.
    for stale in (sandbox.directory, directory / "prefect"):
        shutil.rmtree(stale, ignore_errors=True)

    port = UI_PORT if keep and port_is_free(UI_PORT) else None
    # The sandbox finishes its long-running operations in a fraction of a second; polling them
    # every 5 s (the production default, kinder to ARM's quotas) would only make the demo wait.
    tunables = {"AKS_METRICS_POLLING_INTERVAL": "0.5", "AKS_METRICS_WAIT_INITIAL_DELAY": "0.5"}
    tunables = {key: os.environ.get(key, value) for key, value in tunables.items()}
    stack = PrefectStack(directory / "prefect", port=port, ui=keep, extra_env=tunables, say=say)
    healthy = False
    try:
        sandbox.up()
        stack.start_server()
        stack.create_work_pool()
        stack.deploy(list(SANDBOX_DEPLOYMENTS))
        point_deployments_at(stack.api_url, SANDBOX_DEPLOYMENTS, sandbox.environment_file)
        stack.start_worker()

        result = stack.run_deployment("provision/sandbox", stream=True)
        say(f"provision/sandbox finished: exit code {result.returncode}")
        healthy = result.returncode == 0 and _print_checklist(stack, sandbox)

        if keep:
            _wait_for_interrupt(stack, sandbox)
    except KeyboardInterrupt:
        say("interrupted")
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        say(f"stopped: {error}")
        return 2
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave processes behind.
        with _signals_ignored():
            stack.stop()
            sandbox.down()
        left = stack.leftover_processes() + sandbox.leftover_processes()
        if left:
            say(f"processes still running after the demo: {left}")
    say("the environment ended healthy" if healthy else "the environment did not end healthy")
    return 0 if healthy else 1


def point_deployments_at(api_url: str, names: Sequence[str], environment_file: Path) -> None:
    """Make ``environment_file`` the default environment of the deployments ``names``.

    The ``sandbox`` deployments name ``.demo/sandbox/environment.yaml``; a demo in another folder
    (``--dir``) points them at its own file, so that the commands it prints, the UI's quick runs
    and the schedule all reach the sandbox it started.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if environment_file.resolve() == (DEMO_DIR / "sandbox" / "environment.yaml").resolve():
        return
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        for name in names:
            deployment = client.read_deployment_by_name(name)
            parameters = {**deployment.parameters, "environment": str(environment_file)}
            client.update_deployment(deployment.id, DeploymentUpdate(parameters=parameters))


def _print_checklist(stack: PrefectStack, sandbox: Sandbox) -> bool:
    """Print the verify checklist that the provision run published; True when nothing failed."""
    from aksmetrics.environment import load_environment

    name = load_environment(sandbox.environment_file).name
    rows = latest_table(stack.api_url, f"verify-{name}")
    if rows is None:
        say(f"no checklist was published (artifact verify-{name}); running verify/sandbox")
        stack.run_deployment("verify/sandbox", stream=True)
        rows = latest_table(stack.api_url, f"verify-{name}")
    if not rows:
        say("no checklist to show")
        return False
    print(flush=True)
    print(render_rows(rows, ["status", "title", "summary", "cause"]), flush=True)
    print(flush=True)
    return not any(str(row.get("status")) == "fail" for row in rows)


def _wait_for_interrupt(stack: PrefectStack, sandbox: Sandbox) -> None:
    say(f"Prefect UI: {stack.ui_url}  (deployments, runs, artifacts; Retry and Custom run)")
    say(f"CLI:        PREFECT_API_URL={stack.api_url} prefect deployment run drift-check/sandbox")
    say(f"sandbox:    environment file {sandbox.environment_file}")
    say("drift-check/sandbox runs every 15 minutes. Press Ctrl-C to stop everything.")
    while True:
        time.sleep(3600)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployments.demo",
        description="Provision the sandbox environment through a local Prefect server and show "
        "the checklist; stop everything afterwards (or, with --keep, on Ctrl-C).",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        default=os.environ.get("KEEP", "") not in ("", "0"),
        help="serve the Prefect UI and keep server, worker and sandbox running until Ctrl-C "
        "(also KEEP=1)",
    )
    parser.add_argument(
        "--dir", type=Path, default=DEMO_DIR, help=f"working folder (default {DEMO_DIR})"
    )
    parser.add_argument(
        "--scenario", default="addon-only", help="sandbox start state (default addon-only)"
    )
    args = parser.parse_args(argv)
    # Ctrl-C (or a SIGTERM from a supervisor) stops the demo the same way: the children have
    # sessions of their own, so the signal reaches only the demo, which stops them in order. A
    # shell that starts the demo in the background ignores SIGINT for it, hence the explicit
    # handlers.
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    return run_demo(keep=args.keep, directory=args.dir.resolve(), scenario=args.scenario)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM for the duration (only possible in the main thread)."""
    saved: dict[int, Any] = {}
    with contextlib.suppress(ValueError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
