"""From the generation log to the output: dedup and decontamination over every sample, output and rejected shards,
the funnel stats. Recomputed from the whole log on every (unranked) run, so totals and dedup are always global.

Only the generations of the seeds in the input as it is now count: a log line whose seed is no longer in the input,
or whose ``seed_digest`` is not the seed's content now (an older generation of an edited seed), is left out and
counted (``seeds_gone``, ``records_of_gone_seeds``, ``records_superseded``).

Two streaming passes over the log: the first finds each current sample's last copy (a torn chunk may have been
redone) and collects the dedup texts of the samples still kept; the second writes each shard's kept and rejected
records. A shard left with no current record (its seeds file was removed) is not written, and its earlier output
is removed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from oc_common.fileio import atomic_open, atomic_write_json
from oc_common.log import console, get_logger
from oc_common.outcome import DROP_DETAILS, DROP_REASONS, KEEP, reject
from oc_common.outputs import META_DIR, stats_path
from oc_common.records import dumps_record, write_shard
from oc_common.stats import Stats
from oc_synth.backends.base import PROMPT_TOO_LONG
from oc_synth.synth.store import SEED_DIGEST, GenerationStore, iter_log

if TYPE_CHECKING:
    from oc_synth.synth.config import GenerateConfig

log = get_logger(__name__)
REJECTED = f"{META_DIR}/rejected"  # beside the run's metadata: `datasets.load_dataset(OUT)` reads the kept records
# The funnel, in order: a record's first drop reason says at which stage it left.
FUNNEL = (("generated", ("seed:", PROMPT_TOO_LONG)), ("parsed", ("parse:", "render:")), ("judged", ("judge:",)),
          ("checked", ("check:",)), ("passed", ("verify:",)), ("deduped", ("dedup:",)),
          ("decontaminated", ("decontam:",)))
# Working fields of the log that the kept records do not carry.
LOG_ONLY = (KEEP, DROP_REASONS, DROP_DETAILS, "raw", "samples", SEED_DIGEST)


def finalize(cfg: GenerateConfig, store: GenerationStore, current: Mapping[str, str]) -> Stats:
    """Rebuild OUT from the log. ``current``: seed id -> seed digest of every seed in the input now
    (``seeds.seed_index``)."""
    recipe = cfg.recipe
    out = Path(cfg.out)
    files = store.log_files()
    # pass 1: the last copy of each current sample, and the dedup texts of kept samples in log order
    last: dict[tuple[str, Any], tuple[Path, int]] = {}
    live_shards: set[str] = set()
    gone: dict[str, set[tuple[Any, Any]]] = {}  # seed id no longer in the input -> its (digest, sample)s
    superseded: set[tuple[str, Any, Any]] = set()
    for shard, paths in files.items():
        for path in paths:
            for line, rec in iter_log(path):
                sid, sample = rec.get("seed_id"), rec.get("sample")
                if sid not in current:
                    gone.setdefault(sid, set()).add((rec.get(SEED_DIGEST), sample))
                elif rec.get(SEED_DIGEST) != current[sid]:
                    superseded.add((sid, rec.get(SEED_DIGEST), sample))
                else:
                    last[(sid, sample)] = (path, line)
                    live_shards.add(shard)
    decisions: dict[tuple[str, Any], tuple[str, str]] = {}
    if cfg.dedup:
        decisions = _dedup(files, last, recipe.dedup_field, recipe.spec.dedup)
    decon = None
    if cfg.decontaminate:
        from oc_synth.synth.decontaminate import Decontaminator

        decon = Decontaminator.build(mbpp=cfg.mbpp)
    fields = recipe.spec.decontaminate or list(recipe.spec.output)
    stats = Stats()
    for key in ("seeds_rejected", *(stage for stage, _ in FUNNEL), "records_out"):
        stats.add(key, 0)  # a funnel stage nobody reached still shows, as 0
    stats.add("seeds_gone", len(gone))
    stats.add("records_of_gone_seeds", sum(len(v) for v in gone.values()))
    stats.add("records_superseded", len(superseded))
    if gone:
        log.warning("%d seeds of the log are no longer in the seeds input (e.g. %s): their %d records are left out",
                    len(gone), sorted(map(str, gone))[0], stats.counters["records_of_gone_seeds"])
    if superseded:
        log.info("%d records of earlier generations of edited seeds are superseded by their new generation",
                 len(superseded))
    done_seeds: set[str] = set()
    def kept_records(paths: list[Path], rej_f: Any) -> Iterator[dict[str, Any]]:
        """The shard's kept records, in log order; rejected ones go to ``rej_f`` on the way."""
        for path in paths:
            for line, rec in iter_log(path):
                key = (rec.get("seed_id"), rec.get("sample"))
                if last.get(key) != (path, line):
                    continue  # superseded by a later copy
                done_seeds.add(rec.get("seed_id"))
                if rec.get(KEEP) and key in decisions:
                    reject(rec, *decisions[key])
                if rec.get(KEEP) and decon is not None:
                    hit = decon.check_record(rec, fields)
                    if hit is not None:
                        reject(rec, *hit)
                _count(stats, rec)
                if rec.get(KEEP):
                    yield {k: v for k, v in rec.items() if k not in LOG_ONLY}
                else:
                    rej_f.write(dumps_record(rec) + "\n")

    for shard, paths in sorted(files.items()):
        if shard not in live_shards:  # every seed it had is gone from the input
            (out / f"{shard}.{cfg.output_format}").unlink(missing_ok=True)
            (out / REJECTED / f"{shard}.jsonl").unlink(missing_ok=True)
            continue
        with atomic_open(out / REJECTED / f"{shard}.jsonl") as rej_f:
            # JSONL streams; Parquet (--output-format) holds one shard's kept records
            write_shard(out / f"{shard}.{cfg.output_format}", kept_records(paths, rej_f))
    outstanding = _compact_failures(store, done_seeds, current)
    stats.add("seeds", len(done_seeds) + outstanding)
    stats.add("backend_failed", outstanding)
    if decon is not None:
        for name, n in decon.benchmarks().items():
            stats.add_to("decontamination benchmarks", name, n)
    atomic_write_json(stats_path(out), {"command": "oc-synth generate", "recipe": recipe.name,
                                           "model": cfg.model, "backend": cfg.backend, **stats.to_dict()})
    return stats


def _dedup(files: dict[str, list[Path]], last: dict, field: str, spec: Any) -> dict[tuple[str, Any], tuple[str, str]]:
    from oc_synth.synth.dedup import find_duplicates

    rows = []
    for shard, paths in sorted(files.items()):
        for path in paths:
            for line, rec in iter_log(path):
                key = (rec.get("seed_id"), rec.get("sample"))
                if rec.get(KEEP) and last.get(key) == (path, line):
                    order = (shard, (rec.get("provenance") or {}).get("seed_line") or 0, rec.get("sample") or 0)
                    rows.append((order, key, str(rec.get(field) or "")))
    rows.sort(key=lambda r: r[0])  # input order, whatever the log layout (ranks, resumes): the first one is kept
    keys, texts = [r[1] for r in rows], [r[2] for r in rows]
    decisions = {}
    for key, dup in zip(keys, find_duplicates(texts, spec), strict=True):
        if dup is not None:
            kept_key = keys[dup[0]]
            decisions[key] = (f"dedup:{dup[1]}", f"{dup[1]} duplicate of {kept_key[0]}-s{kept_key[1]} ({field})")
    return decisions


def _count(stats: Stats, rec: dict[str, Any]) -> None:
    reasons = rec.get(DROP_REASONS) or []
    first = reasons[0] if reasons else None
    if first and first.startswith("seed:"):
        stats.add("seeds_rejected")
    else:
        for stage, prefixes in FUNNEL:
            if first and first.startswith(prefixes):
                break
            stats.add(stage)
    if first:
        stats.add_to("drop reasons", first)
    if rec.get("verdict"):
        stats.add_to("verdicts", rec["verdict"])
    if rec.get(KEEP):
        stats.add("records_out")
        if rec.get("language"):
            stats.add_to("kept per language", rec["language"])


def _compact_failures(store: GenerationStore, done: set[str], current: Mapping[str, str]) -> int:
    """Keep in .oc/failed only the seeds of the input still not done (last error each); return how many there are."""
    outstanding: dict[str, dict[str, Any]] = {}
    for shard, paths in store.log_files(store.failed).items():
        pending: dict[str, dict[str, Any]] = {}
        for path in paths:
            for _, rec in iter_log(path):
                if rec.get("seed_id") in current and rec["seed_id"] not in done:
                    pending[rec["seed_id"]] = rec
        for path in paths:
            path.unlink()
        if pending:
            with atomic_open(store.failed / f"{shard}.jsonl") as f:
                for rec in pending.values():
                    f.write(dumps_record(rec) + "\n")
        outstanding.update(pending)
    return len(outstanding)


def render_summary(title: str, stats: Stats, out: Path) -> None:
    """The closing table: the funnel (how many records reached each stage), then why the others left."""
    c = stats.counters
    t = Table(title=title, title_justify="left")
    for col, justify in (("stage", "left"), ("records", "right"), ("dropped here", "right")):
        t.add_column(col, justify=justify)
    too_long = stats.groups.get("drop reasons", Counter()).get(PROMPT_TOO_LONG, 0)
    t.add_row("seeds", f"{c.get('seeds', 0):,}", f"{c.get('seeds_rejected', 0):,} bad seeds, "
                                                  f"{c.get('backend_failed', 0):,} backend failures"
                                                  + (f", {too_long:,} prompt(s) too long" if too_long else ""))
    prev = None
    for stage, _ in FUNNEL:
        n = c.get(stage, 0)
        t.add_row(stage, f"{n:,}", "" if prev is None else f"{prev - n:,}")
        prev = n
    t.add_row("[bold]kept[/]", f"[bold]{c.get('records_out', 0):,}[/]", "")
    console.print(t)
    if c.get("seeds_gone") or c.get("records_superseded"):
        console.print(f"left out of the log: {c.get('records_of_gone_seeds', 0):,} records of "
                      f"{c.get('seeds_gone', 0):,} seeds no longer in the seeds input, "
                      f"{c.get('records_superseded', 0):,} records of earlier versions of edited seeds")
    for group in ("drop reasons", "verdicts", "kept per language"):
        counts: Counter = stats.groups.get(group, Counter())
        if not counts:
            continue
        g = Table(title=group, title_justify="left")
        g.add_column("key")
        g.add_column("count", justify="right")
        for key, n in counts.most_common(20):
            g.add_row(str(key), f"{n:,}")
        console.print(g)
    console.print(f"[bold]oc-synth generate[/]: {c.get('records_out', 0):,} records in {out}; rejected ones with "
                  f"reasons in {out / REJECTED}; stats in {stats_path(out)}")
