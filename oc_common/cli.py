"""Shared CLI plumbing: every mistake the user can fix is one red line and exit code 2, never a traceback.

Three kinds reach ``run_app``: our own ``OcError`` (the message already names the file, key or option), usage
mistakes typer/click detect (unknown option or command, missing argument, bad value; the line names the command's
``--help``), and operating-system refusals (``OSError``: full disk, read-only location, permission, too many open
files), which say which path and what to do. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable

import typer

from oc_common import __version__
from oc_common.errors import OcError
from oc_common.log import console, setup_logging

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130

# What to do about each operating-system refusal a data command can meet (the path is printed before it).
_OS_ADVICE = {
    errno.ENOSPC: "no space left on device; free some space or write elsewhere, then rerun to resume",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere, then rerun to resume",
    errno.EROFS: "read-only file system; choose a writable location",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory (a file is in the way)",
    errno.EISDIR: "is a directory, a file was expected",
    errno.EEXIST: "already exists",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer workers",
    errno.ENFILE: "too many open files in the system; use fewer workers",
    errno.ENAMETOOLONG: "file name too long",
}


def describe_os_error(e: OSError) -> str:
    advice = _OS_ADVICE.get(e.errno or -1) or e.strerror or str(e)
    path = e.filename if e.filename is not None else None
    if path is None:
        return advice
    if e.filename2 is not None:
        return f"{path} -> {e.filename2}: {advice}"
    return f"{os.fsdecode(path)}: {advice}"


# Old spellings of options, kept for one release: {command path: {old flag: new flag}}. run_app rewrites them before
# typer parses the command line and says so; they are not in --help, and tests/test_cli_conventions.py checks
# that every new flag exists.
DeprecatedFlags = dict[tuple[str, ...], dict[str, str]]


def warn_deprecated(old: str, new: str, command: str) -> None:
    console.print(f"[yellow]warning:[/] `{old}` is deprecated in `{command}` and goes in the next release; use "
                  f"`{new}`", highlight=False, soft_wrap=True)


def command_path(root: object, argv: list[str]) -> tuple[tuple[str, ...], int]:
    """The subcommand names at the start of ``argv`` (skipping group options and their values) and the index where
    the command's own arguments begin."""
    cmd, path, i = root, [], 0
    while i < len(argv) and hasattr(cmd, "commands"):
        token = argv[i]
        if token.startswith("-"):
            option = next((p for p in cmd.params if token.split("=", 1)[0] in p.opts), None)  # type: ignore[attr-defined]
            takes_value = option is not None and not getattr(option, "is_flag", False) and "=" not in token
            i += 2 if takes_value else 1
            continue
        sub = cmd.commands.get(token)  # type: ignore[attr-defined]
        if sub is None:
            break
        cmd, path, i = sub, [*path, token], i + 1
    return tuple(path), i


def rewrite_deprecated(argv: list[str], root: object, table: DeprecatedFlags, prog: str) -> list[str]:
    path, start = command_path(root, argv)
    renames = table.get(path)
    if not renames:
        return argv
    out = list(argv[:start])
    for j, token in enumerate(argv[start:], start):
        if token == "--":
            out.extend(argv[j:])
            break
        flag, eq, value = token.partition("=")
        if flag in renames:
            warn_deprecated(flag, renames[flag], " ".join([prog, *path]))
            token = renames[flag] + eq + value
        out.append(token)
    return out


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"oc-cookbook {__version__}")
        raise typer.Exit()


def common_options(log_level: str) -> None:
    # Small models on 2-core boxes: more than one OpenMP thread made generation ~30x slower (docs/platform.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_logging(log_level)


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """typer >= 0.26 vendors its own click (``typer._click``); older typer raises click's. Catch whichever exists."""
    types: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        types.append(VendoredClickException)
    except ImportError:
        pass
    try:
        from click.exceptions import ClickException

        types.append(ClickException)
    except ImportError:
        pass
    return tuple(types)


def _usage_line(e: BaseException) -> tuple[str, int]:
    """One line for a typer/click exception: the message, and which ``--help`` to read for usage mistakes."""
    message = e.format_message() if hasattr(e, "format_message") else str(e)  # type: ignore[attr-defined]
    message = " ".join(message.split())
    ctx = getattr(e, "ctx", None)
    command = getattr(ctx, "command_path", None)
    code = getattr(e, "exit_code", USAGE_EXIT_CODE) or USAGE_EXIT_CODE
    if command and type(e).__name__ != "FileError":
        return f"{message} (see `{command} --help`)", code
    return message, code


def fail(message: str, code: int = USAGE_EXIT_CODE) -> None:
    _stop_ray_log_forwarding()
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)


def _stop_ray_log_forwarding() -> None:
    """Disconnect from Ray before the error line: a driver joined to a cluster prints its nodes' log lines from a
    thread, text and newline in two writes, so the error could land in the middle of one (seen: ``... rpc_code:
    14error: ...``) and no longer be one line of its own."""
    ray = sys.modules.get("ray")
    if ray is None:
        return
    with contextlib.suppress(Exception):  # an error is being reported; Ray's own trouble must not replace it
        if ray.is_initialized():
            ray.shutdown()
    sys.stderr.flush()


def run_app(app: typer.Typer, deprecated: DeprecatedFlags | None = None) -> Callable[..., None]:
    """The console-script entry point of a typer app, with the error contract above."""
    click_errors = _click_exception_types()
    prog = app.info.name or "oc"

    def main(argv: list[str] | None = None) -> None:
        args = list(sys.argv[1:] if argv is None else argv)
        try:
            if deprecated:
                args = rewrite_deprecated(args, typer.main.get_command(app), deprecated, prog)
            result = app(args=args, prog_name=prog, standalone_mode=False)
        except OcError as e:
            fail(_escape(str(e)))
        except typer.Exit as e:
            sys.exit(e.exit_code)
        except typer.Abort:
            console.print("aborted")
            sys.exit(INTERRUPTED_EXIT_CODE)
        except KeyboardInterrupt:
            console.print("interrupted: finished work is kept; rerun the same command to resume")
            sys.exit(INTERRUPTED_EXIT_CODE)
        except click_errors as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # bare `oc-synth` / `oc-synth curate`: typer printed help
                sys.exit(USAGE_EXIT_CODE)  # as click's standalone mode does
            message, code = _usage_line(e)
            fail(_escape(message), code)
        except OSError as e:
            fail(_escape(describe_os_error(e)))
        if isinstance(result, int) and result:  # standalone_mode=False returns the code of ctx.exit(n)
            sys.exit(result)

    return main


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
