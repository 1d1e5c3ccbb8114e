"""The RefineCode filter next to OpenCoder's own filtering code, on the same real files, in one run.

    python benchmarks/filter_throughput.py --reference-dir ~/src/opc_data_filtering \\
        --reference-python ~/venvs/opc/bin/python [--max-files 2000] [--runs 3] [--workers 2]

Input: ``--max-files`` files of this machine (benchmarks/corpus.py: Python's standard library and site-packages,
/usr/include, npm, the JDK sources), classified as ``curate ingest`` does.

Measured, each run in a fresh process, the runs of the compared sides alternating (ours, reference, ours, ...) so a
change in the machine's load hits both alike:

- ours, one process: ``RefineCodeFilterStage.process`` over batches of 200 records (what ``curate filter`` runs per
  shard), rules and signals as shipped, except that a sampled rule (``drop_probability`` 0.8) drops every file it
  fires on (below).
- reference, one process: OpenCoder-llm/opc_data_filtering's published workflow per file (``get_program_lang``,
  ``get_doc_type``, ``ComputeCodeQualitySignal.evaluate``, ``CodeFilter.evaluate``; as its example notebook and our
  scripts/build_reference_fixture.py call it), the natural language given as ours detects it. Its code is imported
  from ``--reference-dir`` (a checkout; never copied into this repository) in ``--reference-python``, an environment
  with its pinned requirements (nltk, beautifulsoup4, esprima, jieba, zhconv, regex, pygments, numpy). Without
  ``--reference-dir`` this side is skipped, with a message.
- decisions, file by file: the reference's sampled rules draw an unseeded ``random.random()``, so for the comparison
  its ``random`` is made to always let them fire, and ours drop with probability 1 (the cost of both is one draw or
  hash per fired rule). Printed: files with the same keep/drop decision, files where the same rules fired, and the
  first files that differ with the rules each side fired.
- ours with ``--workers`` 1 and N (``curate filter --executor local --workers N``, the whole command, output written)
  on ``--scaling-files`` files (default 3x ``--max-files``, the same sample and more) as 8 shards: wall time, the
  parallel speed-up. Each worker pays the per-process start (lexer tables, jieba's dictionary) once, as one process
  does, so the speed-up is measured on a corpus where that start is a small part, as in a real run.

Per side: CPU seconds of the measured work (what one core costs; the box may be shared), wall seconds, files/s per
core, peak RSS of the process; medians over the runs with the spread (min-max). The load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BATCH = 200
SHARDS = 8


# ---- children: one measured run each -------------------------------------------------------------------------------

def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def unsampled_config():
    """The shipped rules with every sampled rule dropping whatever it fires on (see the module docstring)."""
    from oc_synth.curate.signals.rules import load_filter_config

    config = load_filter_config()
    for profile in config.rules.values():
        for signal, spec in profile.items():
            if spec is not None and spec.drop_probability < 1:
                profile[signal] = spec.model_copy(update={"drop_probability": 1.0})
    return config


def child_ours(corpus: Path) -> dict:
    import pandas as pd
    from nemo_curator.tasks import DocumentBatch

    from oc_synth.curate.filter import RefineCodeFilterStage

    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    stage = RefineCodeFilterStage(config=unsampled_config())
    stage.setup_worker()
    outputs = []
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(0, len(records), BATCH):
        batch = DocumentBatch(dataset_name="bench", data=pd.DataFrame(records[i:i + BATCH], dtype=object))
        outputs.append(stage.process(batch).to_pandas())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    fired = {}
    for frame in outputs:
        reasons = frame["drop_reasons"] if "drop_reasons" in frame else [None] * len(frame)
        for rid, keep, why in zip(frame["id"], frame["keep"], reasons, strict=True):
            fired[rid] = [] if bool(keep) else sorted(why if isinstance(why, (list, tuple)) else list(why or []))
    return {"cpu_s": cpu, "wall_s": wall, "kept": sum(not v for v in fired.values()), "files": len(records),
            "peak_rss_mib": _peak_rss_mib(), "fired": fired}


def child_reference(corpus: Path, reference_dir: Path) -> dict:
    """OpenCoder's workflow, per file. Runs in the reference's environment: imports nothing of ours but the
    stdlib-only natural-language detector, loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "oc_natural_language", REPO / "oc_synth" / "curate" / "signals" / "natural_language.py")
    natural = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(natural)
    sys.path.insert(0, str(reference_dir))
    from pipeline import compute_filtering
    from pipeline.compute_quality_signals import ComputeCodeQualitySignal
    from utils.preprocessing import get_doc_type, get_program_lang

    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()]
    signals, code_filter = ComputeCodeQualitySignal(), compute_filtering.CodeFilter()
    compute_filtering.random = type("AlwaysFires", (), {"random": staticmethod(lambda: 1.0)})  # its sampled rules
    fired = {}
    cpu, wall = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every signal error
        for rec in records:
            name = os.path.basename(rec["path"])
            ext = os.path.splitext(name)[1][1:]
            program_lang = get_program_lang(name, ext)
            doc_type = get_doc_type(program_lang)
            lang = natural.natural_language_of(rec["text"])
            qs = json.loads(signals.evaluate(text=rec["text"], filename=name, lang=lang, ext=ext,
                                             file_size_in_byte=rec["size_bytes"], program_lang=program_lang,
                                             doc_type=doc_type))
            verdict = json.loads(code_filter.evaluate(doc_type=doc_type, lang=lang, program_lang=program_lang,
                                                      quality_signal=qs.get("quality_signal")))
            hits = sorted(k for k, v in json.loads(verdict.get("hit_map") or "{}").items() if v)
            fired[rec["id"]] = [] if verdict.get("effective") == "1" else hits or [f"doc_type:{doc_type}"]
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall,
            "kept": sum(not v for v in fired.values()), "files": len(records), "peak_rss_mib": _peak_rss_mib(),
            "fired": fired}


def child_command(shards: Path, out: Path, workers: int) -> dict:
    from oc_synth.curate.filter import run_filter

    cpu, wall = _cpu_with_children(), time.perf_counter()
    stats = run_filter(shards, out, workers=workers, quiet=True)
    return {"cpu_s": _cpu_with_children() - cpu, "wall_s": time.perf_counter() - wall,
            "kept": stats.counters.get("records_out", 0), "files": stats.counters.get("records_in", 0),
            "peak_rss_mib": max(_peak_rss_mib(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)}


def _cpu_with_children() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ---- driver ----------------------------------------------------------------------------------------------------------

def run_child(python: str, args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([python, __file__, "--child", *args], capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"a measured run failed ({' '.join(args[:2])}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict]) -> dict:
    out = {"runs": len(runs)}
    for key in ("cpu_s", "wall_s", "peak_rss_mib"):
        values = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
                    "max": round(max(values), 2)}
    out["files"], out["kept"] = runs[0]["files"], runs[0]["kept"]
    if "fired" in runs[0] and any(r["fired"] != runs[0]["fired"] for r in runs):
        raise SystemExit("one side decided differently from one run to the next: the runs compare unequal work")
    out["files_per_cpu_s"] = round(out["files"] / out["cpu_s"]["median"], 1)
    return out


def compare_decisions(ours: dict[str, list[str]], theirs: dict[str, list[str]], shown: int = 5) -> dict:
    """Keep/drop and fired rules, file by file; prints the totals and the first files that differ."""
    same_keep = sum((not ours[k]) == (not theirs[k]) for k in ours)
    same_rules = sum(ours[k] == theirs[k] for k in ours)
    differ = [k for k in ours if (not ours[k]) != (not theirs[k])]
    print(f"decisions: same keep/drop on {same_keep:,} of {len(ours):,} files, the same rules fired on "
          f"{same_rules:,}; kept {sum(not v for v in ours.values()):,} (ours) vs "
          f"{sum(not v for v in theirs.values()):,} (reference)")
    why = Counter((tuple(sorted(set(ours[k]) - set(theirs[k]))), tuple(sorted(set(theirs[k]) - set(ours[k]))))
                  for k in differ)
    for (only_ours, only_theirs), n in why.most_common():
        print(f"  {n:,} files differ: fired only in ours {list(only_ours)}, only in the reference {list(only_theirs)}")
    for k in differ[:shown]:
        print(f"  e.g. {k}: ours {ours[k] or 'keep'}; reference {theirs[k] or 'keep'}")
    return {"files": len(ours), "same_keep": same_keep, "same_rules": same_rules,
            "differ_by_rules": [{"only_ours": list(a), "only_reference": list(b), "files": n}
                                for (a, b), n in why.most_common()],
            "differ": {k: {"ours": ours[k], "reference": theirs[k]} for k in differ}}


def fmt(s: dict, key: str) -> str:
    return f"{s[key]['median']:.1f} ({s[key]['min']:.1f}-{s[key]['max']:.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-files", type=int, default=2000)
    ap.add_argument("--max-file-kb", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=3, help="measured runs per side (default 3)")
    ap.add_argument("--reference-dir", type=Path, help="a checkout of OpenCoder-llm/opc_data_filtering")
    ap.add_argument("--reference-python", default=sys.executable,
                    help="an interpreter with the reference's requirements (default: this one)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the multi-process run (0: skip)")
    ap.add_argument("--scaling-files", type=int, default=0, help="files of the multi-process run (0: 3x --max-files)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        result = {"ours": lambda: child_ours(Path(rest[0])),
                  "reference": lambda: child_reference(Path(rest[0]), Path(rest[1])),
                  "command": lambda: child_command(Path(rest[0]), Path(rest[1]), int(rest[2]))}[kind]()
        print(json.dumps(result))
        return

    sys.path.insert(0, str(HERE))
    from corpus import code_records, describe

    records = code_records(args.max_files, args.max_file_kb, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="filter_bench_"))
    try:
        corpus = tmp / "corpus.jsonl"
        corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        shards = tmp / "shards"
        shards.mkdir()
        scaling_records = code_records(args.scaling_files or 3 * args.max_files, args.max_file_kb, args.seed)
        for s in range(SHARDS):
            (shards / f"part-{s:02d}.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in scaling_records[s::SHARDS]), encoding="utf-8")
        print(f"input: {describe(records)}; {os.cpu_count()} CPUs, load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
        reference = args.reference_dir
        if reference is None:
            print("reference: skipped (give --reference-dir, a checkout of OpenCoder-llm/opc_data_filtering, and "
                  "--reference-python, an environment with its requirements)")
        elif not (reference / "pipeline" / "compute_quality_signals.py").is_file():
            raise SystemExit(f"--reference-dir {reference}: not a checkout of opc_data_filtering "
                             "(no pipeline/compute_quality_signals.py)")
        sides: dict[str, list[dict]] = {"ours": [], "reference": []}
        loads = []
        for r in range(args.runs):
            sides["ours"].append(run_child(sys.executable, ["ours", str(corpus)]))
            if reference is not None:
                sides["reference"].append(run_child(args.reference_python,
                                                    ["reference", str(corpus), str(reference.resolve())]))
            loads.append(os.getloadavg()[0])
            print(f"  run {r + 1}/{args.runs}: ours {sides['ours'][-1]['cpu_s']:.1f} CPU-s"
                  + (f", reference {sides['reference'][-1]['cpu_s']:.1f} CPU-s" if reference else "")
                  + f" (load {loads[-1]:.1f})", flush=True)
        scaling: dict[int, list[dict]] = {}
        if args.workers > 1:
            for r in range(args.runs):
                for w in (1, args.workers):
                    out = tmp / f"out_{w}_{r}"
                    scaling.setdefault(w, []).append(run_child(sys.executable, ["command", str(shards), str(out),
                                                                                str(w)]))
                    shutil.rmtree(out, ignore_errors=True)
                loads.append(os.getloadavg()[0])
        report(records, sides, scaling, loads, args, scaling_records)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(records: list[dict], sides: dict, scaling: dict, loads: list[float], args: argparse.Namespace,
           scaling_records: list[dict]) -> None:
    figures = {"input": {"files": len(records), "bytes": sum(r["size_bytes"] for r in records),
                         "max_file_kb": args.max_file_kb, "seed": args.seed},
               "cpus": os.cpu_count(), "load_average": {"min": min(loads), "max": max(loads)}}
    ours = summarize(sides["ours"])
    figures["ours"] = ours
    print(f"\nRefineCode filter, {len(records):,} files, one process; medians (min-max) of {args.runs} runs")
    print(f"{'side':<34} {'CPU s':>18} {'wall s':>18} {'files/CPU-s':>12} {'peak RSS MiB':>20} {'kept':>6}")
    rows = [("ours (RefineCodeFilterStage)", ours)]
    if sides["reference"]:
        ref = figures["reference"] = summarize(sides["reference"])
        rows.append(("OpenCoder reference code", ref))
    for name, s in rows:
        print(f"{name:<34} {fmt(s, 'cpu_s'):>18} {fmt(s, 'wall_s'):>18} {s['files_per_cpu_s']:>12.1f} "
              f"{fmt(s, 'peak_rss_mib'):>20} {s['kept']:>6}")
    if sides["reference"]:
        figures["decisions"] = compare_decisions(sides["ours"][0]["fired"], sides["reference"][0]["fired"])
        ratio = figures["ratio_per_core"] = round(figures["reference"]["cpu_s"]["median"] / ours["cpu_s"]["median"],
                                                  2)
        print(f"ours vs reference, per core (CPU time): {ratio:.2f}x")
    if scaling:
        w = max(scaling)
        one, many = summarize(scaling[1]), summarize(scaling[w])
        speedup = figures["workers_speedup"] = round(one["wall_s"]["median"] / many["wall_s"]["median"], 2)
        figures["workers"] = {"1": one, str(w): many}
        figures["workers_input"] = {"files": len(scaling_records),
                                    "bytes": sum(r["size_bytes"] for r in scaling_records), "shards": SHARDS}
        print(f"\ncurate filter, {len(scaling_records):,} files in {SHARDS} shards, --workers 1 vs {w} "
              "(wall s, medians (min-max)): "
              f"{fmt(one, 'wall_s')} vs {fmt(many, 'wall_s')}: {speedup:.2f}x; CPU s {fmt(one, 'cpu_s')} vs "
              f"{fmt(many, 'cpu_s')}")
    print(f"load average during the runs: {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
