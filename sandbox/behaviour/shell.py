"""A tiny busybox: what `kubectl exec` finds inside the sandbox's agent containers.

The ama-metrics image is distroless with busybox applets on the PATH, so an exec there can run
`cat`, `ls`, `test`, `grep`, `tail`, `head`, `wc`, `echo`, `ps`, `nslookup` and `sh -c` with
simple pipelines (`|`, `&&`, `||`, `;`). Files and the process-specific applets (`ps`,
`nslookup`) come from the container that owns the shell; everything else is generic. Output and
exit codes follow busybox: `cat` of a missing file prints `cat: can't open '...': No such file or
directory` and exits 1, `grep` exits 1 when nothing matched, an unknown program is reported the
way the container runtime reports it (`executable file not found in $PATH`).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Outcome:
    """The result of one program run: its output, its exit code, or a runtime error."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0
    # Set when the program could not be started at all (the runtime's message).
    error: str | None = None


# An applet receives its arguments and its standard input.
Applet = Callable[[list[str], str], Outcome]


def not_found_message(program: str) -> str:
    """The container runtime's message for a program that is not on the PATH."""
    return (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        f'exec: "{program}": executable file not found in $PATH: unknown'
    )


class Busybox:
    """Runs argv lists against a file table and a set of applets."""

    def __init__(
        self,
        *,
        files: Callable[[], dict[str, str]],
        applets: dict[str, Applet] | None = None,
    ) -> None:
        self._files = files
        self._applets: dict[str, Applet] = {
            "cat": self._cat,
            "ls": self._ls,
            "test": self._test,
            "[": self._test,
            "grep": self._grep,
            "tail": self._tail,
            "head": self._head,
            "wc": self._wc,
            "echo": self._echo,
            "true": lambda args, stdin: Outcome(),
            "false": lambda args, stdin: Outcome(exit_code=1),
            "sh": self._sh,
            "bash": self._sh,
        }
        self._applets.update(applets or {})

    def run(self, argv: list[str], stdin: str = "") -> Outcome:
        """Run one program; an unknown program yields the runtime's 'not found' error."""
        if not argv:
            return Outcome(error=not_found_message(""))
        program = posixpath.basename(argv[0])
        applet = self._applets.get(program)
        if applet is None:
            return Outcome(error=not_found_message(argv[0]))
        return applet(argv[1:], stdin)

    # -- sh -c ---------------------------------------------------------------------------------

    def _sh(self, args: list[str], stdin: str) -> Outcome:
        if len(args) < 2 or args[0] != "-c":
            return Outcome(stderr="sh: only 'sh -c COMMAND' is supported here\n", exit_code=2)
        return self.script(args[1])

    def script(self, text: str) -> Outcome:
        """Run a command line with pipelines joined by `&&`, `||` and `;`."""
        try:
            lexer = shlex.shlex(text, posix=True, punctuation_chars="|&;")
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError as exc:
            return Outcome(stderr=f"sh: syntax error: {exc}\n", exit_code=2)

        stdout: list[str] = []
        stderr: list[str] = []
        last = Outcome()
        connector = ";"
        for pipeline, next_connector in _split_lists(tokens):
            run_it = (
                connector == ";"
                or (connector == "&&" and last.exit_code == 0)
                or (connector == "||" and last.exit_code != 0)
            )
            if run_it:
                last = self._pipeline(pipeline)
                stdout.append(last.stdout)
                stderr.append(last.stderr)
            connector = next_connector
        return Outcome(stdout="".join(stdout), stderr="".join(stderr), exit_code=last.exit_code)

    def _pipeline(self, commands: list[list[str]]) -> Outcome:
        data = ""
        errors: list[str] = []
        result = Outcome()
        for argv in commands:
            result = self.run(argv, data)
            if result.error is not None:
                # sh reports a missing program itself, with exit code 127.
                errors.append(f"sh: {argv[0]}: not found\n")
                result = Outcome(exit_code=127)
            errors.append(result.stderr)
            data = result.stdout
        return Outcome(stdout=data, stderr="".join(errors), exit_code=result.exit_code)

    # -- file applets --------------------------------------------------------------------------

    def _cat(self, args: list[str], stdin: str) -> Outcome:
        if not args:
            return Outcome(stdout=stdin)
        files = self._files()
        out: list[str] = []
        err: list[str] = []
        code = 0
        for path in args:
            if path in files:
                out.append(files[path])
            elif _is_dir(path, files):
                err.append("cat: read error: Is a directory\n")
                code = 1
            else:
                err.append(f"cat: can't open '{path}': No such file or directory\n")
                code = 1
        return Outcome(stdout="".join(out), stderr="".join(err), exit_code=code)

    def _ls(self, args: list[str], stdin: str) -> Outcome:
        long = any(a.startswith("-") and "l" in a for a in args)
        paths = [a for a in args if not a.startswith("-")] or ["/"]
        files = self._files()
        out: list[str] = []
        code = 0
        err: list[str] = []
        for path in paths:
            if path in files:
                out.append(_ls_line(path, files[path], long) + "\n")
                continue
            if not _is_dir(path, files):
                err.append(f"ls: {path}: No such file or directory\n")
                code = 1
                continue
            prefix = path.rstrip("/") + "/"
            entries = sorted(
                {p[len(prefix) :].split("/")[0] for p in files if p.startswith(prefix)}
            )
            for entry in entries:
                full = prefix + entry
                out.append(_ls_line(entry, files.get(full), long) + "\n")
        return Outcome(stdout="".join(out), stderr="".join(err), exit_code=code)

    def _test(self, args: list[str], stdin: str) -> Outcome:
        if args and args[-1] == "]":
            args = args[:-1]
        files = self._files()
        if len(args) == 2 and args[0] in ("-f", "-e", "-s", "-d", "-r"):
            path = args[1]
            if args[0] == "-d":
                ok = _is_dir(path, files)
            elif args[0] == "-s":
                ok = bool(files.get(path))
            elif args[0] == "-e":
                ok = path in files or _is_dir(path, files)
            else:
                ok = path in files
            return Outcome(exit_code=0 if ok else 1)
        if len(args) == 1:
            return Outcome(exit_code=0 if args[0] else 1)
        return Outcome(exit_code=1)

    # -- text applets --------------------------------------------------------------------------

    def _input(self, paths: list[str], stdin: str, applet: str) -> tuple[str, str, int]:
        if not paths:
            return stdin, "", 0
        files = self._files()
        text: list[str] = []
        err: list[str] = []
        code = 0
        for path in paths:
            if path in files:
                text.append(files[path])
            else:
                err.append(f"{applet}: {path}: No such file or directory\n")
                code = 1
        return "".join(text), "".join(err), code

    def _grep(self, args: list[str], stdin: str) -> Outcome:
        flags = set()
        pattern: str | None = None
        paths: list[str] = []
        position = 0
        while position < len(args):
            arg = args[position]
            if arg == "-e" and position + 1 < len(args):
                pattern = args[position + 1]
                position += 2
                continue
            if arg.startswith("-") and len(arg) > 1 and pattern is None:
                flags.update(arg[1:])
            elif pattern is None:
                pattern = arg
            else:
                paths.append(arg)
            position += 1
        if pattern is None:
            return Outcome(stderr="Usage: grep [-civqE] PATTERN [FILE]...\n", exit_code=2)
        text, err, code = self._input(paths, stdin, "grep")
        try:
            regex = re.compile(
                pattern if "E" in flags else _basic_to_extended(pattern),
                re.IGNORECASE if "i" in flags else 0,
            )
        except re.error:
            return Outcome(stderr=f"grep: bad regex '{pattern}'\n", exit_code=2)
        invert = "v" in flags
        matched = [line for line in text.splitlines() if bool(regex.search(line)) != invert]
        status = 0 if matched else 1
        if code:
            status = 2
        if "q" in flags:
            return Outcome(stderr=err, exit_code=status)
        if "c" in flags:
            return Outcome(stdout=f"{len(matched)}\n", stderr=err, exit_code=status)
        out = "".join(line + "\n" for line in matched)
        return Outcome(stdout=out, stderr=err, exit_code=status)

    def _tail(self, args: list[str], stdin: str) -> Outcome:
        count, paths = _count_option(args, default=10)
        text, err, code = self._input(paths, stdin, "tail")
        lines = text.splitlines(keepends=True)
        return Outcome(stdout="".join(lines[-count:] if count else []), stderr=err, exit_code=code)

    def _head(self, args: list[str], stdin: str) -> Outcome:
        count, paths = _count_option(args, default=10)
        text, err, code = self._input(paths, stdin, "head")
        lines = text.splitlines(keepends=True)
        return Outcome(stdout="".join(lines[:count]), stderr=err, exit_code=code)

    def _wc(self, args: list[str], stdin: str) -> Outcome:
        paths = [a for a in args if not a.startswith("-")]
        text, err, code = self._input(paths, stdin, "wc")
        if "-l" in args:
            return Outcome(stdout=f"{text.count(chr(10))}\n", stderr=err, exit_code=code)
        words = len(text.split())
        return Outcome(
            stdout=f"{text.count(chr(10)):>7} {words:>7} {len(text.encode()):>7}\n",
            stderr=err,
            exit_code=code,
        )

    def _echo(self, args: list[str], stdin: str) -> Outcome:
        if args and args[0] == "-n":
            return Outcome(stdout=" ".join(args[1:]))
        return Outcome(stdout=" ".join(args) + "\n")


def _split_lists(tokens: list[str]) -> list[tuple[list[list[str]], str]]:
    """Split shell tokens into pipelines, each with the connector that follows it."""
    result: list[tuple[list[list[str]], str]] = []
    pipeline: list[list[str]] = []
    command: list[str] = []
    for token in tokens:
        if token == "|":
            pipeline.append(command)
            command = []
        elif token in ("&&", "||", ";"):
            pipeline.append(command)
            result.append(([c for c in pipeline if c], token))
            pipeline, command = [], []
        else:
            command.append(token)
    pipeline.append(command)
    if any(pipeline):
        result.append(([c for c in pipeline if c], ";"))
    return result


def _count_option(args: list[str], *, default: int) -> tuple[int, list[str]]:
    count = default
    paths: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        if arg == "-n" and position + 1 < len(args):
            count = int(args[position + 1].lstrip("+-") or default)
            position += 2
            continue
        if re.fullmatch(r"-n?\d+", arg):
            count = int(arg.lstrip("-n"))
        elif not arg.startswith("-"):
            paths.append(arg)
        position += 1
    return count, paths


def _basic_to_extended(pattern: str) -> str:
    # In basic regular expressions `|`, `+`, `?`, `(` and `)` are literal unless escaped.
    out = []
    escaped = False
    for char in pattern:
        if escaped:
            out.append(char if char in "|+?(){}" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in "|+?(){}":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _is_dir(path: str, files: dict[str, str]) -> bool:
    prefix = path.rstrip("/") + "/"
    return path == "/" or any(p.startswith(prefix) for p in files)


def _ls_line(name: str, content: str | None, long: bool) -> str:
    if not long:
        return name
    if content is None:
        return f"drwxr-xr-x    2 root     root          4096 {name}"
    return f"-rw-r--r--    1 root     root     {len(content.encode()):>9} {name}"
