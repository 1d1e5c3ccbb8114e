"""Resumable sharded runs: one NeMo Curator pipeline over every input shard not finished by an earlier run.

Layout of an output directory written by ``run_sharded``::

    OUT/<shard>.jsonl          kept records (one output shard per input shard; sub-folders mirror the input)
    OUT/_stats/<shard>.json    that shard's counters, written last: the shard's done-marker
    OUT/_manifest.json         which command and options wrote OUT (a rerun with other options is refused)
    OUT/stats.json             totals over all shards, rewritten at the end of every run
    DROPPED/<shard>.jsonl      rejected records with keep=false and drop_reasons (when asked for)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemo_curator.pipeline import Pipeline
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import FileGroupTask
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oc_common.errors import OutputExistsError
from oc_common.fileio import atomic_write_json, remove_stale_temps
from oc_common.log import console, get_logger
from oc_common.records import list_record_files, strip_record_suffix
from oc_common.stats import Stats, render_stats
from oc_synth.pipeline.executors import check_executor, make_executor
from oc_synth.pipeline.stages import STATS_DIR, ShardReader, ShardWriter

log = get_logger(__name__)
MANIFEST = "_manifest.json"


@dataclass
class Shard:
    """One unit of work and of resume: its output is ``OUT/<name><suffix>``."""

    name: str  # relative path without suffix, e.g. "repo_a/part-00001"
    files: list[str]  # what the reader stage reads (one record file, or a group of source files for ingest)
    config: dict[str, Any] = field(default_factory=dict)  # passed to the reader stage


def plan_shards(inp: Path) -> list[Shard]:
    """One shard per record file under ``inp``; names mirror the input's relative paths."""
    files = list_record_files(inp)
    base = inp if inp.is_dir() else inp.parent
    return [Shard(strip_record_suffix(str(f.relative_to(base))), [str(f)]) for f in files]


def fingerprint(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_output(out: Path, command: str, options: dict[str, Any], overwrite: bool,
                   extra_dirs: Sequence[Path] = ()) -> None:
    """Create OUT, or resume it if an earlier run of the same command and options wrote it; refuse anything else."""
    manifest = {"command": command, "options": options, "fingerprint": fingerprint(options)}
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if overwrite:
        for d in (out, *extra_dirs):
            if d.exists():
                shutil.rmtree(d)
    elif out.exists() and any(out.iterdir()):
        mf = out / MANIFEST
        if not mf.exists():
            raise OutputExistsError(f"{out}: exists and was not written by oc-synth; choose a new path or pass "
                                    "--overwrite to replace it")
        old = json.loads(mf.read_text())
        if old.get("command") != command or old.get("fingerprint") != manifest["fingerprint"]:
            raise OutputExistsError(
                f"{out}: was written by `{old.get('command')}` with other options; pass --overwrite to start over "
                "(or rerun with the same options to resume)")
        n = remove_stale_temps(out)
        log.info("resuming into %s%s", out, f" (removed {n} partial files of a killed run)" if n else "")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MANIFEST, manifest)


def collect_stats(out: Path) -> Stats:
    total = Stats()
    for p in sorted((out / STATS_DIR).rglob("*.json")):
        total.merge(Stats.from_dict(json.loads(p.read_text())))
    return total


def run_sharded(
    *,
    command: str,
    inp: Path,
    out: Path,
    stages: Sequence[ProcessingStage],
    options: dict[str, Any],
    dropped: Path | None = None,
    annotate: bool = False,
    executor: str = "local",
    overwrite: bool = False,
    output_suffix: str = ".jsonl",
    title: str | None = None,
    keep_rate_groups: tuple[str, str] | None = ("language_in", "language_out"),
    quiet: bool = False,
    shards: Sequence[Shard] | None = None,
    reader: ProcessingStage | None = None,
    extra_stats: Stats | None = None,
) -> Stats:
    """Run ``reader -> stages -> ShardWriter`` over every unfinished shard; return the totals.

    By default the shards are the record files under ``inp`` and the reader is ``ShardReader``; ingest passes its own
    shards (groups of source files) and reader. ``extra_stats`` (e.g. counts from planning) join the totals.
    """
    check_executor(executor)
    inp, out = Path(inp), Path(out)
    shards = list(shards) if shards is not None else plan_shards(inp)
    prepare_output(out, command, options, overwrite, [dropped] if dropped else [])
    pending = [s for s in shards if not (out / STATS_DIR / f"{s.name}.json").exists()]
    done = len(shards) - len(pending)
    if done:
        log.info("%d of %d shards already done, %d to go", done, len(shards), len(pending))
    t0 = time.perf_counter()
    if pending:
        writer = ShardWriter(out_dir=str(out), dropped_dir=str(dropped) if dropped else None, suffix=output_suffix,
                             annotate=annotate)
        pipe = Pipeline(name=command.replace(" ", "_"), stages=[reader or ShardReader(), *stages, writer])
        tasks = [FileGroupTask(dataset_name=s.name, data=list(s.files), reader_config={"shard": s.name, **s.config})
                 for s in pending]
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=quiet or executor != "local", transient=True) as progress:
            bar = progress.add_task(f"{command}: shards", total=len(tasks))
            ex = make_executor(executor, on_task_done=lambda _t: progress.advance(bar))
            pipe.run(ex, initial_tasks=tasks)
    total = collect_stats(out)
    if extra_stats is not None:
        total.merge(extra_stats)
    total.counters["shards"] = len(shards)
    total.counters["seconds"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(out / "stats.json", {"command": command, **total.to_dict()})
    if not quiet:
        render_stats(title or command, total, console, keep_rate_groups=keep_rate_groups)
        console.print(f"[bold]{command}[/]: {total.counters.get('records_out', 0):,} records written to {out}"
                      + (f", dropped ones to {dropped}" if dropped else "") + f"; stats in {out / 'stats.json'}")
    return total
