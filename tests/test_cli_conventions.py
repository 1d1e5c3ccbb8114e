"""Both CLIs follow one set of conventions (docs/cli.md), and every usage mistake is one line, exit code 2.

- The option list is frozen in tests/cli_options.txt: adding or renaming an option is a deliberate change
  (regenerate with `python tests/cli_inventory.py --write` and say why in the commit).
- A short flag means one thing everywhere; a concept has one spelling; the old spellings are deprecated aliases
  that still work, with a warning.
- Usage mistakes through the real console scripts: unknown option, missing argument, unknown command, bad value.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest
from cli_inventory import FROZEN, frozen_text, options

from oc_megatron.cli import DEPRECATED_FLAGS as MEGATRON_DEPRECATED
from oc_synth.cli import DEPRECATED_FLAGS as SYNTH_DEPRECATED

# One spelling per concept: these never appear as a visible option of either CLI.
FORBIDDEN_SPELLINGS = {
    "--force": "--overwrite",
    "--backend-opt": "--backend-option",
    "--output": "--out",
    "--output-dir": "--out",
    "--override": "--set",
    "--tensor-parallel-size": "--tp",
    "--data-parallel": "--dp",
    "--num-workers": "--workers",
}
# The short flags the conventions reserve, and what they mean (in every command that has them).
RESERVED_SHORTS = {"-c": "--config", "-s": "--set", "-o": "--out", "-w": "--workers", "-e": "--executor",
                   "-b": "--backend", "-B": "--backend-option", "-m": "--model", "-q": "--quiet"}


def test_the_option_list_is_frozen():
    assert frozen_text() == FROZEN.read_text(), (
        "the CLI options changed: check the change against docs/cli.md, then run "
        "`python tests/cli_inventory.py --write` and commit tests/cli_options.txt")


def test_a_short_flag_means_one_thing_in_both_clis():
    meaning: dict[str, set[str]] = defaultdict(set)
    for o in options():
        for short in o.shorts:
            meaning[short].add(o.long or "")
    clashes = {s: sorted(longs) for s, longs in meaning.items() if len(longs) > 1}
    assert not clashes, f"short flags with several meanings: {clashes}"
    for short, long in RESERVED_SHORTS.items():
        assert meaning.get(short, {long}) == {long}, f"{short} must mean {long}"


def test_one_spelling_per_concept():
    used = {f: o.command for o in options() if not o.hidden for f in o.flags}
    wrong = {f"{flag} in {used[flag]}": instead for flag, instead in FORBIDDEN_SPELLINGS.items() if flag in used}
    assert not wrong, f"use the project's spelling instead: {wrong}"
    # the same long flag is the same parameter everywhere (e.g. --out is always the output location)
    names: dict[str, set[str]] = defaultdict(set)
    for o in options():
        if o.long:
            names[o.long].add(o.name)
    assert names["--out"] == {"out"} and names["--overwrite"] == {"overwrite"}
    assert names["--set"] <= {"overrides", "recipe_set"}


@pytest.mark.parametrize("table, prog", [(SYNTH_DEPRECATED, "oc-synth"), (MEGATRON_DEPRECATED, "oc-megatron")])
def test_deprecated_spellings_point_at_existing_options(table, prog):
    by_command = defaultdict(set)
    for o in options():
        by_command[o.command].update(o.flags)
    for path, renames in table.items():
        command = " ".join([prog, *path])
        assert command in by_command, f"{command}: no such command"
        for old, new in renames.items():
            assert new in by_command[command], f"{command}: {old} -> {new}, but {new} does not exist"
            assert old not in by_command[command], f"{command}: {old} is still a real option"


def test_deprecated_spellings_are_rewritten_with_a_warning(capsys):
    import typer.main

    from oc_common.cli import rewrite_deprecated
    from oc_synth.cli import app

    root = typer.main.get_command(app)
    argv = ["--log-level", "INFO", "verify", "in.jsonl", "out", "-t", "5", "--", "-t"]
    assert rewrite_deprecated(argv, root, SYNTH_DEPRECATED, "oc-synth") == [
        "--log-level", "INFO", "verify", "in.jsonl", "out", "--timeout", "5", "--", "-t"]
    assert "`-t` is deprecated in `oc-synth verify`" in capsys.readouterr().err
    argv = ["generate", "r", "--backend-opt=dtype=float32", "--tensor-parallel-size", "2"]
    assert rewrite_deprecated(argv, root, SYNTH_DEPRECATED, "oc-synth") == [
        "generate", "r", "--backend-option=dtype=float32", "--tp", "2"]
    # other commands are left alone: -t is not a flag of eval's neighbours
    assert rewrite_deprecated(["curate", "filter", "-t"], root, SYNTH_DEPRECATED, "oc-synth") == [
        "curate", "filter", "-t"]


def _run(prog: str, *args: str) -> subprocess.CompletedProcess:
    module = {"oc-synth": "oc_synth.cli", "oc-megatron": "oc_megatron.cli"}[prog]
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


USAGE_MISTAKES = [
    # (cli, args, what the one line must say)
    ("oc-synth", ["curate", "dedup", "a", "b", "--mod", "both"], "No such option: --mod"),
    ("oc-synth", ["curate", "dedup", "a", "b", "--mode", "bogus"], "'--mode'"),
    ("oc-synth", ["curate", "filtr", "a", "b"], "No such command 'filtr'"),
    ("oc-synth", ["verify", "only-in.jsonl"], "Missing argument"),
    ("oc-synth", ["eval", "humaneval", "m", "--n", "many"], "'--n'"),
    ("oc-megatron", ["train"], "Missing argument"),
    ("oc-megatron", ["trian", "x.yaml"], "No such command 'trian'"),
    ("oc-megatron", ["convert", "to-hf", "a", "b", "--dtype", "fp64"], "'--dtype'"),
    ("oc-megatron", ["preprocess", "a", "b", "--tokenizer", "t", "--workers", "0"], "'--workers'"),
]


@pytest.mark.parametrize("prog, args, says", USAGE_MISTAKES, ids=[" ".join(a) for _, a, _ in USAGE_MISTAKES])
def test_a_usage_mistake_is_one_line_naming_the_help(prog, args, says):
    proc = _run(prog, *args)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]
    assert "--help`" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("prog, args", [("oc-synth", []), ("oc-synth", ["curate"]), ("oc-megatron", [])])
def test_a_bare_command_prints_its_help(prog, args):
    proc = _run(prog, *args)
    assert proc.returncode == 2 and "Usage:" in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
