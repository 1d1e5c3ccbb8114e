"""Running a CLI entry point (oc_common.cli.run_app) in the test process, and the one-line error check that every
user mistake must pass: exit code 2, one `error:` line, no traceback."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ran:
    returncode: int
    stderr: str


def run_main(main, capfd, *args: str) -> Ran:
    """Run a CLI entry point (oc_common.cli.run_app) in this process: the exit code and stderr a user sees, without
    paying a Python start and the imports for each call."""
    capfd.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return Ran(code, capfd.readouterr().err)


def one_line_error(r: Ran, *needles: str) -> str:
    """The CLI failed the way the conventions say: exit code 2, one `error:` line holding every needle, no
    traceback."""
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-3000:]  # rich wraps nothing (soft_wrap): one physical line
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
