"""The recall loop (OpenCoder §2, after DeepSeekMath): train -> score -> domains -> URL patterns -> new seeds, x3.

Layout of ``DIR``::

    DIR/.oc/manifest.json       the options and inputs that wrote DIR (a rerun with other options or changed inputs
                                is refused); what --overwrite may remove
    DIR/tokenizer.json          the BPE tokenizer of every round (trained in round 1, or the one given)
    DIR/round_<k>/classifier/   model.bin, tokenizer.json, classifier.json (held-out precision/recall)
    DIR/round_<k>/scored/       every usable page with code_score (and domain); .oc/stats.json
    DIR/round_<k>/domains.json  domain -> {pages, positives, positive_fraction, code_related}
    DIR/round_<k>/new_seeds.jsonl  pattern-matched pages of code domains scored negative: seeds of round k+1
    DIR/round_<k>/report.json   the round's figures; written last, it marks the round done
    DIR/recalled/               the final round's positive pages (score >= threshold, each URL once), with code_score;
                                nothing else, so `datasets.load_dataset("json", data_dir=DIR/recalled)` reads them
    DIR/report.json             all rounds

A rerun resumes: finished rounds are skipped, a half-done round resumes at its first unfinished step (a finished
classifier is kept, scoring resumes per shard). ``--rounds`` is not part of the options check, so a finished
3-round run can be extended to 4 rounds.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from oc_common.fileio import atomic_write_json
from oc_common.log import console, get_logger
from oc_common.outputs import OutputDir, claim_outputs, input_state, meta_dir, read_manifest, remove_written
from oc_common.records import list_record_files, strip_record_suffix, write_shard
from oc_common.stats import Stats, human_bytes
from oc_synth.recall.classifier import META_FILE, ClassifierFiles
from oc_synth.recall.config import AUTO_KEYS, SCORE_FIELD, RecallConfig
from oc_synth.recall.domains import (
    UniquePages,
    code_domains,
    domain_table,
    read_domains,
    render_domains,
    write_domains,
)
from oc_synth.recall.evaluation import format_metric, summary_line
from oc_synth.recall.scoring import run_score
from oc_synth.recall.tokenize import BpePretokenizer
from oc_synth.recall.training import GateError, seed_url_keys, train_classifier
from oc_synth.recall.urls import NegativeExclusion, UrlPattern, collect_pattern_seeds, load_url_patterns

log = get_logger(__name__)

REPORT = "report.json"
NEW_SEEDS = "new_seeds.jsonl"
ROUND_FIELD = "recall_round"


def round_dir(out: Path, k: int) -> Path:
    return out / f"round_{k}"


def run_recall(seeds: Path, corpus: Path, out: Path, cfg: RecallConfig, *, url_patterns: Path | None = None,
               tokenizer: Path | None = None, negatives: Path | None = None, dropped: Path | None = None,
               executor: str = "local", overwrite: bool = False, quiet: bool = False,
               output_format: str = "jsonl") -> list[dict[str, Any]]:
    """Run ``cfg.rounds`` rounds into ``out`` (resuming), write ``out/recalled``; return the round reports.

    A round whose classifier fails the quality gate raises ``GateError`` before the corpus is scored."""
    for path in (seeds, corpus, *([negatives] if negatives else [])):
        list_record_files(path)  # missing or empty inputs fail before any work
    patterns = load_url_patterns(url_patterns) if url_patterns else []
    if not patterns:
        log.warning("no URL patterns: code domains are found, but no new seeds join the later rounds")
    given_tok = BpePretokenizer.load(tokenizer, cfg.tokenizer.max_chars) if tokenizer else None
    options = {"seeds": str(seeds), "corpus": str(corpus), "url_patterns": [p.text for p in patterns],
               "tokenizer": str(tokenizer) if tokenizer else None, "negatives": str(negatives) if negatives else None,
               "config": cfg.model_dump(mode="json", exclude={"rounds"}), "output_format": output_format}
    claim_recall_output(out, options, cfg.rounds, overwrite=overwrite, dropped=dropped,
                        inputs={"--seeds": seeds, "--corpus": corpus, "--url-patterns": url_patterns,
                                "--tokenizer": tokenizer, "--negatives": negatives})
    tok_path = out / "tokenizer.json"
    if given_tok is not None and not tok_path.exists():
        given_tok.save(tok_path)

    reports: list[dict[str, Any]] = []
    for k in range(1, cfg.rounds + 1):
        rd = round_dir(out, k)
        if (rd / REPORT).exists():
            log.info("round %d: done in an earlier run, skipped", k)
            reports.append(json.loads((rd / REPORT).read_text()))
            continue
        if k > 1 and same_training_set(cfg, reports[-1], reports[-2] if k > 2 else None):
            reports.append(repeat_round(out, k, reports[-1]))
            continue
        reports.append(run_round(k, seeds, corpus, out, cfg, patterns, negatives, dropped if k == 1 else None,
                                 executor, quiet))
    write_recalled(out, cfg.rounds, reports[-1]["threshold"], quiet, output_format)
    atomic_write_json(out / REPORT, {"rounds": reports})
    if not quiet:
        render_rounds(reports)
    return reports


def claim_recall_output(out: Path, options: dict[str, Any], rounds: int, *, overwrite: bool, dropped: Path | None,
                        inputs: dict[str, Path | None]) -> None:
    """The output contract (oc_common/outputs.py) for DIR. The rounds build on each other over every input, so a
    resume after an input changed is refused, naming the change (stat fields: the corpus may be large)."""
    files = {f"{label} {f}": f for label, p in inputs.items() if p is not None and Path(p).is_dir()
             for f in list_record_files(p)}
    files.update({label: Path(p) for label, p in inputs.items() if p is not None and Path(p).is_file()})
    writes = ["tokenizer.json", REPORT, "recalled/", *(f"{round_dir(Path(), k)}/" for k in range(1, rounds + 1))]
    claim_outputs("recall run", options, inputs=inputs, dirs=[OutputDir(out, "--out", writes)], overwrite=overwrite,
                  also_check={"--dropped": dropped}, input_state=input_state(files, content=False))
    if overwrite and dropped is not None:  # round 1 writes it (its own manifest); start it over too
        manifest = read_manifest(dropped)
        if manifest is not None and str(manifest.get("command", "")).startswith("recall run"):
            remove_written(Path(dropped), manifest)


def same_training_set(cfg: RecallConfig, prev: dict[str, Any], before: dict[str, Any] | None) -> bool:
    """Whether the next round would train on exactly what the previous one did: no new seeds, and negatives kept
    away from the same code domains. Training is deterministic, so it would give the same classifier, scores,
    domains and (no) new seeds: a fixed point."""
    if prev["new_seeds"]:
        return False
    if cfg.train.negatives_exclude == "none":
        return True
    return sorted(prev["code_domains"]) == sorted(before["code_domains"] if before else [])


def repeat_round(out: Path, k: int, prev: dict[str, Any]) -> dict[str, Any]:
    """Round ``k`` as a copy of round ``k - 1`` (hard links where the file system allows: no new disk, no new
    scoring pass over the corpus)."""
    src, dst = round_dir(out, k - 1), round_dir(out, k)
    if dst.exists():
        shutil.rmtree(dst)  # a copy a killed run left half-made
    for f in sorted(src.rglob("*")):
        if f.is_file() and f != src / REPORT:
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)
    report = {**prev, "round": k, "same_as_round": prev.get("same_as_round", k - 1), "new_domains": [],
              "dropped_domains": [], "disk_bytes": directory_bytes(dst, exclude_linked_from=src),
              "seconds": {"total": 0.0}}
    atomic_write_json(dst / REPORT, report)
    console.print(f"[bold]round {k}[/]: trains on what round {k - 1} trained on (no new seeds, the same code "
                  f"domains), so its classifier, scores and domains are round {k - 1}'s; nothing retrained or "
                  "rescored", highlight=False)
    return report


def run_round(k: int, seeds: Path, corpus: Path, out: Path, cfg: RecallConfig, patterns: list[UrlPattern],
              negatives: Path | None, dropped: Path | None, executor: str, quiet: bool) -> dict[str, Any]:
    rd = round_dir(out, k)
    t0 = time.perf_counter()
    seed_paths = [seeds] + [p for j in range(1, k) if (p := round_dir(out, j) / NEW_SEEDS).stat().st_size]
    prev_domains = read_domains(round_dir(out, k - 1) / "domains.json") if k > 1 else {}
    prev_code = code_domains(prev_domains)
    timings: dict[str, float] = {}

    # 1. classifier (kept if an earlier run finished it); the quality gate stops the run before any scoring
    t = time.perf_counter()
    clf_dir = rd / "classifier"
    tok_path = out / "tokenizer.json"
    if (clf_dir / META_FILE).exists():
        meta = json.loads((clf_dir / META_FILE).read_text())
    else:
        console.print(f"[bold]round {k}[/]: training on {len(seed_paths)} seed source(s)"
                      + (f"; no negatives from what round {k - 1} found to be code" if prev_code else ""))
        tok = BpePretokenizer.load(tok_path, cfg.tokenizer.max_chars) if tok_path.exists() else None
        exclude = NegativeExclusion(frozenset(prev_code), tuple(patterns), cfg.train.negatives_exclude)
        try:
            meta, _ = train_classifier(seed_paths, corpus, clf_dir, cfg, tokenizer=tok, exclude=exclude,
                                       tokenizer_out=tok_path, negatives=[negatives] if negatives else [])
        except GateError as e:
            raise GateError(f"round {k}: {e}") from None
    threshold = meta["threshold"]
    timings["train"] = round(time.perf_counter() - t, 3)
    if not quiet:
        gone = len(meta.get("negatives_dropped_code_like", []))
        console.print(f"round {k}: {meta['train_positives']:,} seed pages, {meta['train_negatives']:,} negatives"
                      + (f" ({gone} sampled pages dropped as code-like)" if gone else "")
                      + f"; {summary_line(meta['evaluation'])}", highlight=False)

    # 2. score the corpus in a NeMo Curator pipeline (resumes per shard)
    t = time.perf_counter()
    files = ClassifierFiles.resolve(clf_dir)
    score_stats = run_score(corpus, rd / "scored", files, threshold=threshold, dropped=dropped, executor=executor,
                            quiet=quiet, command=f"recall run: round {k} score")
    timings["score"] = round(time.perf_counter() - t, 3)

    # 3. domains
    t = time.perf_counter()
    dom_stats = Stats()
    table = domain_table(rd / "scored", score_threshold=threshold, domain_threshold=cfg.domain_threshold,
                         min_pages=cfg.min_domain_pages, stats=dom_stats)
    write_domains(rd / "domains.json", table)
    now_code = code_domains(table)
    timings["domains"] = round(time.perf_counter() - t, 3)
    if not quiet:
        render_domains(table, top=10, title=f"round {k} domains")

    # 4. URL patterns inside code domains -> next round's seeds
    t = time.perf_counter()
    seed_stats = collect_pattern_seeds(rd / "scored", now_code, patterns, rd / NEW_SEEDS,
                                       score_threshold=threshold, known_seeds=seed_url_keys(seed_paths))
    timings["urls"] = round(time.perf_counter() - t, 3)

    report = {
        "round": k,
        "classifier": {"train_positives": meta["train_positives"], "train_negatives": meta["train_negatives"],
                       "fasttext": {key: meta["fasttext"][key] for key in AUTO_KEYS},
                       "fasttext_auto": meta["fasttext_auto"], "model_bytes": meta["model_bytes"],
                       "negatives_dropped_code_like": len(meta.get("negatives_dropped_code_like", [])),
                       "evaluation": meta["evaluation"]},
        "threshold": threshold,
        "pages": dom_stats.counters["pages"],
        "recalled_pages": dom_stats.counters["positive_pages"],
        "score_histogram": dict(sorted(score_stats.groups.get(f"{SCORE_FIELD} histogram", {}).items())),
        "skipped_pages": dict(dom_stats.groups.get("skipped", {})),
        "domains": len(table),
        "code_domains": sorted(now_code),
        "new_domains": sorted(now_code - prev_code),
        "dropped_domains": sorted(prev_code - now_code),
        "pattern_matches": seed_stats.counters["pattern_matches"],
        "pattern_matches_positive": seed_stats.counters["pattern_matches_positive"],
        "new_seeds": seed_stats.counters["new_seeds"],
        "disk_bytes": directory_bytes(rd),
        "seconds": {**timings, "total": round(time.perf_counter() - t0, 3)},
    }
    atomic_write_json(rd / REPORT, report)
    new = ", ".join(report["new_domains"]) or "none"
    console.print(f"[bold]round {k}[/]: recalled {report['recalled_pages']:,} of {report['pages']:,} pages (score "
                  f">= {threshold:.3f}); {len(now_code)} code domains (new: {new}); {report['new_seeds']:,} new seeds",
                  highlight=False)
    return report


def directory_bytes(path: Path, exclude_linked_from: Path | None = None) -> int:
    """Bytes of the files under ``path``, each inode once (hard links cost no space); files that are hard links of
    files under ``exclude_linked_from`` count nothing."""
    def inodes(root: Path):  # noqa: ANN202
        for f in root.rglob("*"):
            if f.is_file():
                st = f.stat()
                yield (st.st_dev, st.st_ino), st.st_size

    seen = {key for key, _ in inodes(exclude_linked_from)} if exclude_linked_from else set()
    total = 0
    for key, size in inodes(path):
        if key not in seen:
            seen.add(key)
            total += size
    return total


def write_recalled(out: Path, last_round: int, threshold: float, quiet: bool, output_format: str = "jsonl") -> Stats:
    """``out/recalled/<shard>.<output_format>``: the last round's positive pages, each URL once, with
    ``recall_round``."""
    dest = out / "recalled"
    marker = meta_dir(out) / "recalled.json"  # not in recalled/: that folder holds only the pages
    earlier = json.loads(marker.read_text()) if marker.exists() else {}
    if earlier.get("round") == last_round:
        return Stats()
    scored = round_dir(out, last_round) / "scored"
    st = Stats()
    pages = UniquePages(st)
    names = []
    for shard in list_record_files(scored):  # one output shard per scored shard
        kept = [{**rec, ROUND_FIELD: last_round} for rec in pages.read(shard) if rec[SCORE_FIELD] >= threshold]
        names.append(f"{strip_record_suffix(str(shard.relative_to(scored)))}.{output_format}")
        st.add("records_out", write_shard(dest / names[-1], kept))  # an empty Parquet shard is not written
    for stale in set(earlier.get("files", [])) - set(names):  # pages of an earlier round's shards that are gone
        (dest / stale).unlink(missing_ok=True)
    atomic_write_json(marker, {"round": last_round, "files": names, **st.to_dict()})
    if not quiet:
        console.print(f"recalled: {st.counters['records_out']:,} pages written to {dest}")
    return st


def render_rounds(reports: list[dict[str, Any]]) -> None:
    t = Table(title="recall rounds (AUC, P, R: held-out ROC AUC, precision and recall at the threshold; domains: "
                    "code-related)", title_justify="left")
    for c in ("round", "train pos/neg", "AUC", "threshold", "P", "R", "recalled", "domains", "new", "new seeds",
              "disk", "s"):
        t.add_column(c, justify="right")
    for r in reports:
        c = r["classifier"]
        ev = c["evaluation"]
        t.add_row(str(r["round"]), f"{c['train_positives']:,}/{c['train_negatives']:,}", format_metric(ev["auc"]),
                  f"{r['threshold']:.3f}", format_metric(ev["at_threshold"]["precision"]),
                  format_metric(ev["at_threshold"]["recall"]), f"{r['recalled_pages']:,}",
                  str(len(r["code_domains"])), str(len(r["new_domains"])), f"{r['new_seeds']:,}",
                  human_bytes(r["disk_bytes"]), f"{r['seconds']['total']:.1f}")
    console.print(t)
