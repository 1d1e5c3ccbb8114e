"""Shared CLI plumbing: known user errors become one clear red line and exit code 2, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import Callable

import typer

from oc_common import __version__
from oc_common.log import console, setup_logging


class UserError(Exception):
    """Raised for bad input that the user can fix; the message says what and where."""


def user_error_types() -> tuple[type[BaseException], ...]:
    from oc_common.config import ConfigError
    from oc_common.records import InputError

    return (UserError, ConfigError, InputError, FileNotFoundError, PermissionError, IsADirectoryError)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"oc-cookbook {__version__}")
        raise typer.Exit()


def common_options(log_level: str) -> None:
    # Small models on 2-core boxes: more than one OpenMP thread made generation ~30x slower (see docs/platform).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    setup_logging(log_level)


def run_app(app: typer.Typer) -> Callable[[], None]:
    def main() -> None:
        try:
            app(standalone_mode=False)
        except user_error_types() as e:
            msg = str(e)
            if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError)) and e.filename:
                msg = f"{e.filename}: {e.strerror}"
            console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except typer.Exit as e:
            sys.exit(e.exit_code)
        except typer.Abort:
            console.print("aborted")
            sys.exit(130)
        except KeyboardInterrupt:
            console.print("interrupted: finished shards are kept; rerun the same command to resume")
            sys.exit(130)
        except Exception as e:  # click usage errors carry their own formatting
            import click

            if isinstance(e, click.exceptions.ClickException):
                e.show()
                sys.exit(e.exit_code)
            raise

    return main
