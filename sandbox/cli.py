"""`python -m sandbox`: start, stop and inspect a sandbox.

    python -m sandbox up --scenario NAME --dir DIR [--detach] [--fresh]
    python -m sandbox down --dir DIR
    python -m sandbox status --dir DIR
    python -m sandbox scenarios

`up` runs in the foreground until Ctrl-C or SIGTERM. With `--detach` it starts the same command
in the background, waits until the servers answer, lists the files it wrote and returns 0 (or
prints the end of `sandbox.log` and returns 1 when the sandbox failed to start). `up` on a
directory whose sandbox is running says so and returns 1. `down` stops it by its pid and is a
no-op when nothing runs. `status` returns 0 when the sandbox runs and 3 when it does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sandbox.behaviour.scenarios import SCENARIOS

START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
NOT_RUNNING = 3


def _running_info(directory: Path) -> dict[str, Any] | None:
    """The `sandbox.json` of a directory whose sandbox process is still alive, else None."""
    info_file = directory / "sandbox.json"
    try:
        info = json.loads(info_file.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid) or not _is_sandbox_process(pid, directory):
        return None
    return info


def _is_sandbox_process(pid: int, directory: Path) -> bool:
    """True when `pid` is a `python -m sandbox up` for `directory` (not a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid
    words = [a.decode(errors="replace") for a in argv]
    if "sandbox" not in words or "up" not in words or "--dir" not in words:
        return pid == os.getpid()
    position = words.index("--dir") + 1
    if position >= len(words):
        return False
    given = Path(words[position])
    if not given.is_absolute():
        # A relative --dir is relative to that process's working directory, not ours.
        try:
            given = Path(os.readlink(f"/proc/{pid}/cwd")) / given
        except OSError:
            return True
    return given.resolve() == directory.resolve()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours has exited: it only waits to be reaped.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _answers(info: dict[str, Any], ca_file: Path) -> bool:
    """True when the ARM server answers its control endpoint over TLS with our CA."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        url = info["arm_url"].rstrip("/") + "/_sandbox/requests?since=999999999"
        with urllib.request.urlopen(url, context=context, timeout=2) as response:
            return response.status == 200
    except (OSError, KeyError, ssl.SSLError, urllib.error.URLError, ValueError):
        return False


def _print_files(directory: Path) -> None:
    from sandbox.runner import SandboxPaths

    paths = SandboxPaths(directory.resolve())
    info = json.loads(paths.sandbox_json.read_text())
    print(f"sandbox running (pid {info['pid']}, scenario {info['scenario']})")
    print(f"  ARM:        {info['arm_url']}")
    print(f"  Kubernetes: {info['kube_url']}")
    for vnet, address in info.get("dns", {}).items():
        print(f"  DNS:        {address}  ({vnet.rsplit('/', 1)[-1]})")
    for path in paths.client_files():
        print(f"  {path}")


def cmd_scenarios(args: argparse.Namespace) -> int:
    """List the scenarios with a one-line description each."""
    width = max(len(name) for name in SCENARIOS)
    for name, scenario in SCENARIOS.items():
        print(f"{name:<{width}}  {scenario.description}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start a sandbox in the foreground, or in the background with --detach."""
    from sandbox.runner import RunnerOptions, SandboxError, check_directory

    directory = Path(args.dir).expanduser()
    if args.scenario not in SCENARIOS:
        print(
            f"unknown scenario {args.scenario!r}; valid scenarios: {', '.join(SCENARIOS)}",
            file=sys.stderr,
        )
        return 2
    try:
        check_directory(directory)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    running = _running_info(directory)
    if running is not None:
        print(
            f"a sandbox is already running in {directory} (pid {running['pid']}, scenario "
            f"{running['scenario']}); stop it with: python -m sandbox down --dir {directory}",
            file=sys.stderr,
        )
        return 1

    if args.detach:
        return _detach(args, directory)

    from sandbox.runner import configure_logging, serve

    configure_logging(directory / "sandbox.log", console=not args.no_console_log)
    options = RunnerOptions(
        directory=directory,
        scenario=args.scenario,
        fresh=args.fresh,
        arm_port=args.arm_port,
        kube_port=args.kube_port,
    )
    try:
        asyncio.run(serve(options))
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _detach(args: argparse.Namespace, directory: Path) -> int:
    command = [
        sys.executable,
        "-m",
        "sandbox",
        "up",
        "--scenario",
        args.scenario,
        "--dir",
        str(directory.resolve()),
        "--arm-port",
        str(args.arm_port),
        "--kube-port",
        str(args.kube_port),
        "--no-console-log",
    ]
    if args.fresh:
        command.append("--fresh")
    log_file = directory / "sandbox.log"
    # The previous run's sandbox.json (if any) is stale: its process is gone.
    (directory / "sandbox.json").unlink(missing_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(
                f"the sandbox exited during start (exit code {process.returncode}); "
                f"the end of {log_file}:",
                file=sys.stderr,
            )
            print(_tail(log_file), file=sys.stderr)
            return 1
        info = _running_info(directory)
        if (
            info is not None
            and int(info["pid"]) == process.pid
            and _answers(info, directory / "ca.pem")
        ):
            _print_files(directory)
            return 0
        time.sleep(0.1)
    process.terminate()
    print(
        f"the sandbox did not answer within {START_TIMEOUT:.0f} s; see {log_file}", file=sys.stderr
    )
    return 1


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the sandbox of a directory (SIGTERM, then SIGKILL after a grace period)."""
    directory = Path(args.dir).expanduser()
    info = _running_info(directory)
    if info is None:
        (directory / "sandbox.json").unlink(missing_ok=True)
        print(f"no sandbox is running in {directory}")
        return 0
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.05)
        print(
            f"sandbox (pid {pid}) did not stop in {STOP_TIMEOUT:.0f} s and was killed",
            file=sys.stderr,
        )
    (directory / "sandbox.json").unlink(missing_ok=True)
    print(f"sandbox in {directory} stopped (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Say whether the directory's sandbox runs, and where."""
    directory = Path(args.dir).expanduser()
    info = _running_info(directory)
    if info is None:
        print(f"no sandbox is running in {directory}")
        return NOT_RUNNING
    _print_files(directory)
    if not _answers(info, directory / "ca.pem"):
        print("  (the process runs but the ARM server does not answer)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m sandbox`."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="An emulated closed-network Azure + AKS for aks-metrics-pipeline.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start a sandbox")
    up.add_argument(
        "--scenario",
        default="healthy",
        help=f"start state, one of: {', '.join(SCENARIOS)} (default: healthy)",
    )
    up.add_argument("--dir", required=True, help="directory for the sandbox's files and state")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument(
        "--fresh",
        action="store_true",
        help="build the scenario again instead of reloading persisted state",
    )
    up.add_argument("--arm-port", type=int, default=0, help="ARM port (default: any free port)")
    up.add_argument(
        "--kube-port", type=int, default=0, help="Kubernetes API port (default: any free port)"
    )
    up.add_argument("--no-console-log", action="store_true", help=argparse.SUPPRESS)
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop a sandbox")
    down.add_argument("--dir", required=True)
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="show whether a sandbox runs")
    status.add_argument("--dir", required=True)
    status.set_defaults(func=cmd_status)

    scenarios = commands.add_parser("scenarios", help="list the scenarios")
    scenarios.set_defaults(func=cmd_scenarios)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m sandbox`."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
