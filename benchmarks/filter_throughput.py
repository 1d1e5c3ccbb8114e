"""Throughput of the RefineCode filter stage on real source files, against a naive baseline measured in the same run.

    python benchmarks/filter_throughput.py [--max-files 600] [--max-file-kb 256] [--seed 0]

Input: source files found on this machine: the Python standard library (*.py) and C headers under /usr/include
(*.h), plus whatever of --extra DIR:LANGUAGE you add. One process, one core.

- shared (ours): ``RefineCodeFilterStage.process`` on DocumentBatches: one Document per file, every rule's signal
  reading the same cached lines / words / n-grams / code-comment split.
- naive (baseline): each rule tokenizes the file itself, as one stand-alone NeMo Curator ``DocumentFilter`` per rule
  does (``RefineCodeRule``): a fresh Document per rule, same signal code, same rules.

Both paths must reach the same keep/drop decision for every file (checked). Prints files/s, MB/s, the speedup, and
the rule-hit distribution of the shared run.
"""

from __future__ import annotations

import argparse
import random
import sys
import sysconfig
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from nemo_curator.tasks import DocumentBatch
from rich.console import Console
from rich.table import Table

from oc_synth.curate.filter import RefineCodeFilterStage
from oc_synth.curate.signals import SIGNALS, Document
from oc_synth.curate.signals.rules import RuleSet, load_filter_config
from oc_synth.curate.signals.scoring import document_key

BATCH = 200


def find_files(max_file_kb: int, extra: list[str]) -> list[tuple[Path, str]]:
    sources = [(Path(sysconfig.get_paths()["stdlib"]), "*.py", "Python"), (Path("/usr/include"), "*.h", "C")]
    for item in extra:
        folder, _, language = item.rpartition(":")
        sources.append((Path(folder), "*", language))
    found = []
    for root, pattern, language in sources:
        if root.is_dir():
            found += [(p, language) for p in sorted(root.rglob(pattern))
                      if p.is_file() and 0 < p.stat().st_size <= max_file_kb * 1024]
    return found


def load_records(files: list[tuple[Path, str]]) -> list[dict]:
    records = []
    for i, (path, language) in enumerate(files):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        records.append({"id": f"bench-{i}", "text": text, "path": str(path), "language": language,
                        "doc_type": "code", "size_bytes": len(text.encode("utf-8", "surrogatepass"))})
    return records


def run_shared(records: list[dict]) -> tuple[float, dict[str, bool], Counter]:
    stage = RefineCodeFilterStage()
    stage.setup_worker()
    keep, hits = {}, Counter()
    start = time.process_time()
    for i in range(0, len(records), BATCH):
        out = stage.process(DocumentBatch(dataset_name="bench", data=pd.DataFrame(records[i:i + BATCH], dtype=object)))
        for rec in out.to_pandas().to_dict("records"):
            keep[rec["id"]] = bool(rec["keep"])
            hits.update(rec["drop_reasons"])
    return time.process_time() - start, keep, hits


def run_naive(records: list[dict]) -> tuple[float, dict[str, bool]]:
    config = load_filter_config()
    rules = RuleSet(config)
    keep = {}
    start = time.process_time()
    for rec in records:
        profile = rules.profile_for(rec["doc_type"], rec["language"])
        key = document_key(rec, rec["text"])
        # every rule builds its own Document, so nothing is shared between rules (what a stand-alone
        # DocumentFilter per rule does); all rules run, as in the stage
        drops = [rule.drops(SIGNALS[rule.signal].compute(Document.from_record(rec)), key, config.seed)
                 for rule in profile.rules]
        keep[rec["id"]] = not any(drops)
    return time.process_time() - start, keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-files", type=int, default=600, help="files sampled from those found (0: all)")
    ap.add_argument("--max-file-kb", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", action="append", default=[], help="DIR:LANGUAGE, e.g. ~/src/go:Go (repeatable)")
    args = ap.parse_args()

    files = find_files(args.max_file_kb, args.extra)
    if args.max_files and len(files) > args.max_files:
        files = random.Random(args.seed).sample(files, args.max_files)
    records = load_records(files)
    if not records:
        sys.exit("no source files found")
    megabytes = sum(r["size_bytes"] for r in records) / 1e6
    languages = Counter(r["language"] for r in records)

    shared_s, shared_keep, hits = run_shared(records)
    naive_s, naive_keep = run_naive(records)
    mismatches = [rid for rid in shared_keep if shared_keep[rid] != naive_keep[rid]]

    console = Console()
    console.print(f"{len(records)} files ({', '.join(f'{n} {lang}' for lang, n in languages.most_common())}), "
                  f"{megabytes:.1f} MB, one process; rates per core from CPU time "
                  "(the box may be shared)")
    table = Table(title="RefineCode filter throughput", title_justify="left")
    for col in ("path", "CPU seconds", "files/s", "MB/s", "vs naive"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, seconds in (("shared: RefineCodeFilterStage", shared_s), ("naive: each rule re-tokenizes", naive_s)):
        table.add_row(name, f"{seconds:.1f}", f"{len(records) / seconds:.1f}", f"{megabytes / seconds:.2f}",
                      f"{naive_s / seconds:.1f}x")
    console.print(table)
    console.print(f"same keep/drop decision on {len(records) - len(mismatches)} of {len(records)} files"
                  + (f"; differing: {mismatches[:5]}" if mismatches else ""))
    dropped = sum(not k for k in shared_keep.values())
    hit_table = Table(title=f"rule hits ({dropped} of {len(records)} files dropped; a file can hit several rules)",
                      title_justify="left")
    for col in ("rule", "files", "share of files"):
        hit_table.add_column(col, justify="left" if col == "rule" else "right")
    for rule, n in hits.most_common():
        hit_table.add_row(rule, str(n), f"{n / len(records):.1%}")
    console.print(hit_table)


if __name__ == "__main__":
    main()
