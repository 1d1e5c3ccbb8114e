"""``oc-synth curate dedup``: exact and/or fuzzy dedup of a sharded corpus, in three passes.

1. index (engine-specific, sharded, resumable): keep-rule fields, SHA-256 and, on CPU, LSH band keys per record
   -> ``OUT/.oc/dedup/index/``. The only pass that computes signatures; the text is streamed once for it.
2. decide (global): clusters -> survivors -> ``OUT/.oc/dedup/decisions/``; band keys one partition at a time
   (``bands.py``), per-record arrays in memory (38 bytes a record held, int64 arrays while clusters are sized).
3. remove (``run_sharded``, resumable): kept records -> ``OUT/<shard>``, removed ones -> ``--dropped``.

A rerun with the same options and inputs resumes (indexed shards and written output shards are skipped). Decisions
are global, so a rerun after any input changed is refused, naming what changed (size, content, new or gone files),
and so are other options (naming them); ``--overwrite`` starts over. ``OUT/.oc/stats.json`` gets a ``dedup`` section
with the summary printed at the end.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from rich.table import Table

from oc_common.errors import OcError
from oc_common.fileio import atomic_write_json
from oc_common.log import console, get_logger, quiet_logger
from oc_common.outputs import OutputDir, claim_outputs, input_state, meta_dir, stats_path
from oc_common.records import record_suffix
from oc_common.stats import Stats
from oc_synth.curate.dedup.decisions import decide, write_decisions, write_removed_ids
from oc_synth.curate.dedup.engines import resolve_engine
from oc_synth.curate.dedup.index import load_index
from oc_synth.curate.dedup.removal import DedupRemovalStage, DedupShardReader, DedupShardWriter, cluster_fields
from oc_synth.curate.dedup.settings import DedupSettings
from oc_synth.pipeline.runner import Shard, plan_shards, run_sharded

log = get_logger(__name__)
COMMAND = "curate dedup"
WORK_DIR = "dedup"  # under OUT/.oc/: never read back as records, never loaded by `datasets`
OUTPUT_SUFFIXES = {"jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz", "parquet": ".parquet"}


def work_dir(out: Path) -> Path:
    return meta_dir(out) / WORK_DIR


def dedup_input_state(shards: Sequence[Shard]) -> dict[str, dict[str, Any]]:
    """Identity of every input file (record numbers depend on shard order and row, decisions on every record)."""
    return input_state({f"{s.name}{record_suffix(s.files[0])}": s.files[0] for s in shards})


def peak_rss_bytes() -> dict[str, int]:
    """Peak resident memory of this process and of its largest child process (signature workers); Linux reports
    KiB."""
    return {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "largest_child": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}


def run_dedup(inp: Path, out: Path, settings: DedupSettings, *, dropped: Path | None = None,
              removed_ids: Path | None = None, executor: str = "local", output_format: str = "jsonl",
              overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Run the three passes; returns the summary (also written to ``OUT/stats.json`` under ``dedup``)."""
    inp, out = Path(inp), Path(out)
    if output_format not in OUTPUT_SUFFIXES:
        raise OcError(f"--output-format: {output_format!r} is not one of {', '.join(OUTPUT_SUFFIXES)}")
    shards = plan_shards(inp)
    engine, why = resolve_engine(settings)
    options = {# --workers changes speed, not output: a resume may use another value
               "settings": settings.model_dump(mode="json", exclude={"workers"}), "engine": engine.describe(),
               "dropped": dropped is not None, "output_format": output_format}
    suffix = OUTPUT_SUFFIXES[output_format]
    writes = [f"{s.name}{suffix}" for s in shards]
    dirs = [OutputDir(out, "OUT", writes)] + ([OutputDir(Path(dropped), "--dropped", writes)] if dropped else [])
    claim_outputs(COMMAND, options, inputs={"IN": inp}, dirs=dirs, overwrite=overwrite,
                  input_state=dedup_input_state(shards), also_check={"--removed-ids": removed_ids})
    work = work_dir(out)
    log.info("dedup engine: %s (%s)", engine.describe(), why)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    indexed = engine.index(shards, work, settings, executor, quiet)
    timings["index_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = load_index(work / "index", shards, settings.fuzzy)
    group_stats = Stats()
    fuzzy_fn = None
    if settings.fuzzy:
        def fuzzy_fn(candidates):  # noqa: ANN001, ANN202
            return engine.fuzzy_labels(data, candidates, work, settings, group_stats, quiet)
    cols = decide(data, engine.exact_labels(data, work) if settings.exact else None, fuzzy_fn, group_stats)
    write_decisions(data, cols, work / "decisions")
    if removed_ids is not None:
        group_stats.add("removed_ids_written", write_removed_ids(data, cols, removed_ids))
    timings["decide_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # pass 3 reopens OUT, which the runner and the output claim report as "resuming"; on a first run that misleads
    with quiet_logger("oc.oc_synth.pipeline.runner", "oc.oc_common.outputs"):
        totals = run_sharded(command=COMMAND, inp=inp, out=out, shards=shards, options=options, dropped=dropped,
                             reader=DedupShardReader(index_dir=str(work / "index"), output_suffix=suffix),
                             stages=[DedupRemovalStage(decisions_dir=str(work / "decisions"),
                                                       fields=cluster_fields(settings.exact, settings.fuzzy))],
                             writer=partial(DedupShardWriter, index_dir=str(work / "index"),
                                            decisions_dir=str(work / "decisions")),
                             executor=executor, output_suffix=suffix, title="dedup: records", quiet=quiet)
    timings["remove_s"] = time.perf_counter() - t0

    summary = build_summary(settings, engine.describe(), why, data.stats, group_stats, totals, timings, indexed)
    stats_file = stats_path(out)
    stats_json = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    atomic_write_json(stats_file, {**stats_json, "dedup": summary})
    if not quiet:
        render_summary(summary)
    return summary


def build_summary(settings: DedupSettings, engine: str, why: str, index_stats: Stats, group_stats: Stats,
                  totals: Stats, timings: dict[str, float], indexed: int) -> dict[str, Any]:
    records = int(index_stats.counters.get("records", 0))
    mh = settings.minhash
    params = {"mode": settings.mode}
    if settings.fuzzy:
        params.update(shingle=f"{mh.shingle} {mh.ngram}-grams{' (lowercased)' if mh.lowercase else ''}",
                      permutations=mh.num_perm, lsh=f"{mh.bands} bands x {mh.rows} rows",
                      lsh_threshold=round(mh.threshold(), 4), seed=mh.seed, jaccard_check=mh.jaccard_check)
    return {
        "engine": engine,
        "engine_choice": why,
        "parameters": params,
        "records": records,
        "records_kept": int(totals.counters.get("records_out", 0)),
        "index": dict(sorted(index_stats.counters.items())),
        "clusters": dict(sorted(group_stats.counters.items())),
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "records_indexed_now": indexed,
        "index_docs_per_s": round(indexed / timings["index_s"], 1) if indexed and timings["index_s"] > 0 else None,
        "peak_rss_bytes": peak_rss_bytes(),
    }


def render_summary(summary: dict[str, Any]) -> None:
    t = Table(title="dedup summary", title_justify="left")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_row("engine", summary["engine"])
    t.add_row("engine choice", summary["engine_choice"])
    for k, v in summary["parameters"].items():
        if v is not None:
            t.add_row(k.replace("_", " "), str(v))
    t.add_row("records", f"{summary['records']:,}")
    t.add_row("records kept", f"{summary['records_kept']:,}")
    for k, v in summary["clusters"].items():
        t.add_row(k.replace("_", " "), f"{v:,}")
    for k in ("no_text", "no_shingles", "missing_id", "missing_stars", "unusable_stars", "missing_commit_time",
              "unusable_commit_time"):
        if summary["index"].get(k):
            t.add_row(k.replace("_", " "), f"{summary['index'][k]:,}")
    for k, v in summary["seconds"].items():
        t.add_row(f"time {k[:-2]}", f"{v:.2f} s")
    if summary["index_docs_per_s"]:
        t.add_row("index throughput", f"{summary['index_docs_per_s']:,.0f} docs/s")
    rss = summary["peak_rss_bytes"]
    t.add_row("peak RSS", f"{rss['main'] / 2**20:,.0f} MiB (largest child process "
                          f"{rss['largest_child'] / 2**20:,.0f} MiB)")
    console.print(t)
