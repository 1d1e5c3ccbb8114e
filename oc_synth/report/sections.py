"""The report's sections, in pipeline order: each reads the inventory and returns its figures and tables, or says
which inputs it did not find (and which command writes them)."""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oc_common.errors import OcError
from oc_common.records import iter_records, list_record_files
from oc_common.stats import human_bytes
from oc_synth.report import figures
from oc_synth.report.inventory import Inventory, StageOutput, TrainingRun, read_json

# Pipeline order of the data commands (unknown commands follow, alphabetically).
COMMAND_ORDER = ("curate ingest", "curate dedup", "curate transform", "curate filter", "curate sample",
                 "curate select-algorithmic", "recall label", "recall run", "recall score", "generate", "verify",
                 "decontaminate")
# The curation funnel; verify's sets are drawn with the synthesis they verify.
FUNNEL_COMMANDS = ("curate ingest", "curate dedup", "curate transform", "curate filter", "curate sample",
                   "curate select-algorithmic")
# Dedup cluster sizes are read from the kept records' cluster-size fields; enough records to draw the distribution.
MAX_DEDUP_RECORDS = 200_000
VERDICT_COLORS = {"passed": "#55A868", "failed": "#C44E52", "error": "#DD8452", "timeout": "#8172B3",
                  "no_tests": "#8C8C8C", "weak_tests": "#CCB974"}


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[Any]]
    collapsed: bool = False  # long detail tables start folded


@dataclass
class Figure:
    uri: str  # data:image/png;base64,...
    caption: str


@dataclass
class Section:
    id: str
    title: str
    about: str  # what the section shows, one or two sentences
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: str | None = None  # set when the inputs are absent: what is missing and what writes it

    @property
    def has_data(self) -> bool:
        return self.missing is None


def order_key(o: StageOutput) -> tuple[int, str, str]:
    rank = COMMAND_ORDER.index(o.command) if o.command in COMMAND_ORDER else len(COMMAND_ORDER)
    return rank, o.command, o.rel


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def record_files(directory: Path) -> list[Path]:
    """The record shards of an output directory; none (rather than an error) when it holds none."""
    try:
        return list_record_files(directory)
    except OcError:
        return []


def stage_label(o: StageOutput) -> str:
    return f"{o.command} ({o.rel})"


# ---- overview -------------------------------------------------------------------------------------------------------
def overview(inv: Inventory) -> Section:
    s = Section("overview", "What this run holds",
                "Every output of ours found under the run directory, by the command that wrote it.")
    if not (inv.outputs or inv.training or inv.tokenized):
        s.missing = (f"No outputs of oc-cookbook under {inv.run_dir}: no directory with .oc/manifest.json, no "
                     "training run (metrics.jsonl), no tokenized dataset (PREFIX.stats.json).")
        return s
    rows = [[o.rel, o.command, o.label, fmt(o.counters.get("records_out")), fmt(o.counters.get("seconds"))]
            for o in sorted(inv.outputs, key=order_key)]
    rows += [[t.rel, "train", "output_dir", "–", "–"] for t in inv.training]
    rows += [[t.rel, "preprocess / sft-data", "OUT_PREFIX", fmt(t.stats.get("documents")),
              fmt(round(float(t.stats.get("seconds") or 0), 3))] for t in inv.tokenized]
    s.tables.append(Table("outputs", ["path", "command", "role", "records out", "seconds"], rows,
                          collapsed=len(rows) > 20))
    timed = stage_seconds(inv)
    if timed:
        s.figures.append(Figure(figures.grouped_barh([name for name, _ in timed], {"seconds": [t for _, t in timed]},
                                                     xlabel="seconds", title="where the time went"),
                                "Seconds of work per stage as each one recorded it (data stages: processing, "
                                "without the command's start-up; training: the steps; eval: generation and "
                                "execution)."))
    if inv.problems:
        s.notes += [f"problem: {p}" for p in inv.problems]
    return s


def stage_seconds(inv: Inventory) -> list[tuple[str, float]]:
    """(stage, seconds of work) in pipeline order: data stages, recall, training runs as they ran, eval."""
    recall_seconds = {o.rel: float(sum((r.get("seconds") or {}).get("total", 0) for r in rounds))
                      for o, rounds in inv.recall_reports()}
    out = []
    for o in sorted(inv.outputs, key=order_key):
        if o.label == "--dropped" or o.command.startswith("recall run:"):
            continue
        seconds = recall_seconds.get(o.rel) if o.command == "recall run" else o.counters.get("seconds")
        if isinstance(seconds, int | float):
            out.append((stage_label(o), float(seconds)))
    for t in sorted(inv.training, key=started):
        out.append((f"train ({t.rel})", training_series(t)["seconds"]))
    for o in inv.of("eval"):
        summary = inv.json_of(o, "summary.json")
        if isinstance(summary, dict) and isinstance(summary.get("time_s"), dict):
            out.append((f"eval ({o.rel})", float(sum(v for v in summary["time_s"].values()
                                                     if isinstance(v, int | float)))))
    return out


# ---- data funnel ----------------------------------------------------------------------------------------------------
def records_in(o: StageOutput) -> int | None:
    c = o.counters
    for key in ("records_in", "files_in", "seeds"):
        if key in c:
            return c[key]
    return None


def funnel(inv: Inventory) -> Section:
    s = Section("funnel", "Data funnel",
                "Records and bytes into and out of each data stage, and why records were dropped. Bytes are the "
                "records as written (JSON), so a stage that adds fields can write more bytes than it read.")
    stages = sorted((o for o in inv.of(*FUNNEL_COMMANDS) if o.stats), key=order_key)
    if not stages:
        s.missing = ("No data stage outputs with stats (oc-synth curate ingest | dedup | transform | filter | sample | "
                     "select-algorithmic).")
    else:
        labels = [stage_label(o) for o in stages]
        s.figures.append(Figure(figures.grouped_barh_pair(
            labels,
            ("records", {"in": [records_in(o) or 0 for o in stages],
                         "out": [o.counters.get("records_out", 0) for o in stages]}),
            ("KiB", {"in": [o.counters.get("bytes_in", 0) / 1024 for o in stages],
                     "out": [o.counters.get("bytes_out", 0) / 1024 for o in stages]}),
            title="records (left) and KiB (right) into and out of each stage"),
            "Records and bytes into and out of each stage, in pipeline order."))
        s.tables.append(Table("per stage", ["stage", "records in", "records out", "dropped", "kept", "bytes in",
                                            "bytes out", "seconds"],
                              [[stage_label(o), fmt(records_in(o)), fmt(o.counters.get("records_out")),
                                fmt(o.counters.get("records_dropped")),
                                pct(o.counters.get("records_out", 0) / records_in(o)) if records_in(o) else "–",
                                human_bytes(o.counters.get("bytes_in", 0)),
                                human_bytes(o.counters.get("bytes_out", 0)), fmt(o.counters.get("seconds"))]
                               for o in stages]))
        reasons = [(o, r, n) for o in stages for r, n in (o.groups.get("drop_reasons") or {}).items()]
        if reasons:
            top = sorted(reasons, key=lambda x: -x[2])[:25]
            top.sort(key=lambda x: (order_key(x[0]), -x[2]))
            s.figures.append(Figure(figures.barh_by_group([r for _, r, _ in top], [n for _, _, n in top],
                                                          [stage_label(o) for o, _, _ in top], xlabel="records",
                                                          title="drop reasons (the 25 most frequent), by stage"),
                                    "Why records were dropped, colored by the stage that dropped them (a record that "
                                    "several filter rules reject counts under each)."))
            s.tables.append(Table("drop reasons", ["stage", "reason", "records"],
                                  [[stage_label(o), r, fmt(n)] for o, r, n in sorted(reasons, key=lambda x: (
                                      order_key(x[0]), -x[2]))], collapsed=len(reasons) > 12))
        else:
            s.notes.append("No stage dropped a record.")
    if inv.tokenized:
        s.figures.append(Figure(figures.grouped_barh([t.rel for t in inv.tokenized],
                                                     {"tokens": [int(t.stats.get("tokens") or 0)
                                                                 for t in inv.tokenized]},
                                                     xlabel="tokens", title="tokens of each dataset training reads"),
                                "Tokens of each indexed dataset (oc-megatron preprocess, sft-data): what reaches "
                                "training from each source."))
        s.tables.append(Table("tokenized for training (oc-megatron preprocess / sft-data)",
                              ["dataset", "documents", "tokens", "trained tokens (SFT)", "bad records"],
                              [[t.rel, fmt(t.stats.get("documents")), fmt(t.stats.get("tokens")),
                                fmt(t.stats.get("loss_tokens") or None), fmt(t.stats.get("bad_records"))]
                               for t in inv.tokenized]))
        if s.missing:
            s.missing = None
            s.notes.append("No data stage outputs with stats were found; only the tokenized datasets are shown.")
    return s


# ---- language mix ---------------------------------------------------------------------------------------------------
def languages(inv: Inventory) -> Section:
    s = Section("languages", "Language mix before and after sampling",
                "Records per language entering and leaving `curate sample`, which downsamples over-represented "
                "languages (OpenCoder: Java and HTML; docs/opencoder.md §1).")
    outs = [o for o in inv.of("curate sample") if o.groups.get("language_in")]
    if not outs:
        s.missing = "No `oc-synth curate sample` output with per-language counts."
        return s
    for o in outs:
        gin, gout = Counter(o.groups["language_in"]), Counter(o.groups.get("language_out") or {})
        langs = [lang for lang, _ in gin.most_common(25)]
        s.figures.append(Figure(figures.grouped_barh(langs, {"before": [gin[x] for x in langs],
                                                             "after": [gout.get(x, 0) for x in langs]},
                                                     xlabel="records", title=f"languages ({o.rel})"),
                                f"Records per language before and after sampling ({o.rel})."))
        total_in, total_out = sum(gin.values()), sum(gout.values())
        s.tables.append(Table(f"languages ({o.rel})", ["language", "before", "share", "after", "share", "kept"],
                              [[x, fmt(gin[x]), pct(gin[x] / total_in if total_in else None), fmt(gout.get(x, 0)),
                                pct(gout.get(x, 0) / total_out if total_out else None),
                                pct(gout.get(x, 0) / gin[x] if gin[x] else None)] for x in langs]))
        fractions = o.options.get("keep_fraction")
        if isinstance(fractions, dict) and fractions:
            s.notes.append("keep fractions: " + ", ".join(f"{k} {v:.3g}" for k, v in sorted(fractions.items())))
    return s


# ---- dedup ----------------------------------------------------------------------------------------------------------
def cluster_sizes(o: StageOutput) -> tuple[dict[str, Counter], int, bool]:
    """cluster kind -> Counter(size -> clusters), from the kept records' ``dup_count`` / ``minhash_count`` (each kept
    record stands for its cluster); how many records were read; whether the read stopped at the cap."""
    sizes = {"exact (SHA-256)": Counter(), "near (MinHash LSH)": Counter()}
    n = 0
    files = record_files(o.path)
    for rec in itertools.islice(itertools.chain.from_iterable(iter_records(f) for f in files), MAX_DEDUP_RECORDS):
        n += 1
        for kind, key in (("exact (SHA-256)", "dup_count"), ("near (MinHash LSH)", "minhash_count")):
            v = rec.get(key)
            if isinstance(v, int):
                sizes[kind][v] += 1
    return {k: v for k, v in sizes.items() if v}, n, n >= MAX_DEDUP_RECORDS


def dedup(inv: Inventory) -> Section:
    s = Section("dedup", "Deduplication clusters",
                "How many copies each kept file had: a cluster of size k kept one file and removed k-1 (OpenCoder: "
                "exact SHA-256, then MinHash LSH on word 5-grams, 2,048 permutations, 16 bands x 128 rows; "
                "docs/dedup.md).")
    outs = inv.of("curate dedup")
    if not outs:
        s.missing = "No `oc-synth curate dedup` output."
        return s
    for o in outs:
        sizes, n, capped = cluster_sizes(o)
        if sizes:
            s.figures.append(Figure(figures.bar_histogram({k: dict(v) for k, v in sizes.items()},
                                                          xlabel="cluster size (copies of a file)",
                                                          ylabel="clusters", title=f"cluster sizes ({o.rel})"),
                                    f"Cluster sizes over the kept records of {o.rel}"
                                    + (f" (the first {n:,} records)" if capped else "") + "."))
        else:
            s.notes.append(f"{o.rel}: its records carry no dup_count / minhash_count.")
        info = (o.stats or {}).get("dedup") or {}
        clusters = info.get("clusters") or {}
        params = info.get("parameters") or {}
        rows = [[k, fmt(v)] for k, v in clusters.items()] + [[k, fmt(v)] for k, v in params.items()]
        if info.get("engine"):
            rows.append(["engine", info["engine"]])
        if rows:
            s.tables.append(Table(f"dedup ({o.rel})", ["figure", "value"], rows))
    return s


# ---- recall ---------------------------------------------------------------------------------------------------------
def recall(inv: Inventory) -> Section:
    s = Section("recall", "Code-related web recall",
                "Per round: the classifier's held-out precision and recall, pages recalled, code-related domains "
                "found (a domain is code-related when more than the threshold of its pages score positive; "
                "OpenCoder: 10%, three rounds; docs/recall.md).")
    outs = inv.of("recall run")
    found = False
    for o in outs:
        report = inv.json_of(o, "report.json")
        rounds = (report.get("rounds") if isinstance(report, dict) else None) or []
        if not rounds:
            s.notes.append(f"{o.rel}: no finished round (report.json).")
            continue
        found = True
        ks = [r["round"] for r in rounds]
        ev = [r.get("classifier", {}).get("evaluation", {}) for r in rounds]
        s.figures.append(Figure(figures.lines(ks, {
            "precision": [e.get("at_threshold", {}).get("precision") for e in ev],
            "recall": [e.get("at_threshold", {}).get("recall") for e in ev],
            "ROC AUC": [e.get("auc") for e in ev]}, xlabel="round", ylabel="held-out score",
            title=f"classifier quality per round ({o.rel})", ylim=(0, 1.05)),
            "Held-out precision and recall at the round's threshold, and ROC AUC."))
        s.figures.append(Figure(figures.grouped_barh([f"round {k}" for k in ks], {
            "pages recalled": [r.get("recalled_pages", 0) for r in rounds],
            "new seeds (URL patterns)": [r.get("new_seeds", 0) for r in rounds]}, xlabel="pages",
            title=f"pages per round ({o.rel})"), "Pages scored positive, and pages that joined the next round's "
                                                  "seeds through URL patterns in code domains."))
        s.tables.append(Table(f"rounds ({o.rel})", ["round", "train pos/neg", "threshold", "precision", "recall",
                                                    "AUC", "pages", "recalled", "code domains", "new domains",
                                                    "new seeds"],
                              [[r["round"], f"{r['classifier'].get('train_positives', 0):,}/"
                                            f"{r['classifier'].get('train_negatives', 0):,}", fmt(r.get("threshold")),
                                pct(e.get("at_threshold", {}).get("precision")),
                                pct(e.get("at_threshold", {}).get("recall")), fmt(e.get("auc")),
                                fmt(r.get("pages")), fmt(r.get("recalled_pages")), len(r.get("code_domains") or []),
                                ", ".join(r.get("new_domains") or []) or "–", fmt(r.get("new_seeds"))]
                               for r, e in zip(rounds, ev, strict=True)]))
        last = rounds[-1]["round"]
        domains_file = o.path / f"round_{last}" / "domains.json"
        domains = read_json(domains_file, inv.problems) if domains_file.is_file() else None
        if isinstance(domains, dict) and domains:
            top = sorted(domains.items(), key=lambda kv: (-kv[1].get("positive_fraction", 0), kv[0]))[:20]
            threshold = (o.options.get("config") or {}).get("domain_threshold")
            s.figures.append(Figure(figures.fraction_bars(
                [f"{d} ({v.get('pages', 0):,} pages)" for d, v in top],
                [float(v.get("positive_fraction") or 0) for _, v in top],
                threshold=threshold if isinstance(threshold, int | float) else None,
                xlabel="fraction of the domain's pages scored code-related",
                title=f"domains after round {last} ({o.rel})"),
                "Share of each domain's pages the last classifier scored positive; green: code-related (above the "
                "domain threshold)."))
            s.tables.append(Table(f"domains after round {last} ({o.rel}; top 20 by positive fraction)",
                                  ["domain", "pages", "positive fraction", "code-related"],
                                  [[d, fmt(v.get("pages")), pct(v.get("positive_fraction")),
                                    "yes" if v.get("code_related") else "no"] for d, v in top],
                                  collapsed=True))
    if not found:
        s.missing = "No finished `oc-synth recall run` output (DIR/report.json)."
    return s


# ---- synthesis ------------------------------------------------------------------------------------------------------
def recipe_of(o: StageOutput) -> str | None:
    """The recipe of a generate output (its stats), or of a verified set (the `recipe` its records carry)."""
    recipe = (o.stats or {}).get("recipe") or o.options.get("recipe")
    if recipe:
        return str(recipe)
    for f in record_files(o.path)[:1]:
        for rec in itertools.islice(iter_records(f), 1):
            recipe = rec.get("recipe") or (rec.get("provenance") or {}).get("recipe")
    return str(recipe) if recipe else None


def distinct_labels(outs: list[StageOutput]) -> list[str]:
    """The recipe alone where it names one output, else recipe · the output's folder (· its path if still taken)."""
    bases = [recipe_of(o) or o.rel for o in outs]
    labels = [b if bases.count(b) == 1 else f"{b} · {o.path.name}" for b, o in zip(bases, outs, strict=True)]
    return [lab if labels.count(lab) == 1 else f"{b} · {o.rel}" for lab, b, o in zip(labels, bases, outs, strict=True)]


def model_name(o: StageOutput) -> str:
    model = str((o.stats or {}).get("model") or o.options.get("model") or "–")
    return "canned answers (ours)" if model.startswith("canned answers") else Path(model).name or model


def synthesis(inv: Inventory) -> Section:
    from oc_synth.synth.finalize import FUNNEL

    s = Section("synthesis", "Synthesis and verification",
                "`generate`: how many samples reached each step of a recipe (parsed, checked, passed in the sandbox "
                "when it verifies, deduplicated, decontaminated). `verify`: the sandbox verdict of every sample, per "
                "set. A `passed` verdict means the tests ran to their end and a check in them could have failed "
                "(docs/sandbox.md).")
    gens = sorted(inv.of("generate"), key=lambda o: (recipe_of(o) or "", o.rel))
    vers = [o for o in inv.of("verify") if o.groups.get("verdict")]
    if not gens and not vers:
        s.missing = "No `oc-synth generate` or `oc-synth verify` output."
        return s
    if gens:
        names = distinct_labels(gens)
        steps = ["seeds", *(stage for stage, _ in FUNNEL)]
        s.tables.append(Table("generate: samples reaching each step", ["run", "model", *steps, "kept"],
                              [[n, model_name(o), *(fmt(o.counters.get(k)) for k in steps),
                                fmt(o.counters.get("records_out"))] for n, o in zip(names, gens, strict=True)]))
        s.figures.append(Figure(figures.grouped_barh(names, {
            "generated": [o.counters.get("generated", 0) for o in gens],
            "parsed": [o.counters.get("parsed", 0) for o in gens],
            "checked": [o.counters.get("checked", 0) for o in gens],
            "kept": [o.counters.get("records_out", 0) for o in gens]},
            xlabel="samples", title="generate: the funnel per recipe run"),
            "Samples generated, parsed, passing the recipe's checks and kept (after dedup and decontamination), "
            "per recipe run."))
        reasons = [(n, r, c) for n, o in zip(names, gens, strict=True)
                   for r, c in (o.groups.get("drop reasons") or {}).items()]
        if reasons:
            s.tables.append(Table("generate: why samples were rejected", ["run", "reason", "samples"],
                                  [[n, r, fmt(c)] for n, r, c in reasons], collapsed=len(reasons) > 12))
    if vers:
        names = distinct_labels(vers)
        verdicts = sorted({v for o in vers for v in o.groups["verdict"]},
                          key=lambda v: (list(VERDICT_COLORS).index(v) if v in VERDICT_COLORS else 99, v))
        s.figures.append(Figure(figures.stacked_barh(names, {v: [o.groups["verdict"].get(v, 0) for o in vers]
                                                             for v in verdicts},
                                                     xlabel="samples", title="verify: verdicts per set",
                                                     colors=VERDICT_COLORS), "Sandbox verdicts per verified set."))
        s.tables.append(Table("verify: pass rate per set", ["set", "samples", *verdicts, "pass rate", "output"],
                              [[n, fmt(records_in(o)), *(fmt(o.groups["verdict"].get(v, 0)) for v in verdicts),
                                pct(o.groups["verdict"].get("passed", 0) / records_in(o) if records_in(o) else None),
                                o.rel] for n, o in zip(names, vers, strict=True)]))
    return s


# ---- training -------------------------------------------------------------------------------------------------------
def training_kind(run: TrainingRun) -> str:
    cfg = run.config or {}
    data = cfg.get("data") or {}
    if data.get("sft"):
        return "SFT"
    if (cfg.get("checkpoint") or {}).get("init_from"):
        return "anneal / continued pretraining"
    return "pretrain"


def started(run: TrainingRun) -> float:
    return min((m["time"] for m in run.metrics if isinstance(m.get("time"), int | float)), default=0.0)


def training_series(run: TrainingRun) -> dict[str, Any]:
    train = [m for m in run.metrics if m.get("split", "train") == "train" and "loss" in m]
    valid = [m for m in run.metrics if m.get("split") == "valid" and "loss" in m]
    steps = max((int(m["step"]) for m in run.metrics if "step" in m), default=0)
    tokens, seconds, prev = 0, 0.0, 0
    for m in train:  # each logged step stands for the steps since the previous log
        tokens += int(m.get("tokens") or 0) * (int(m["step"]) - prev)
        seconds += float(m.get("step_seconds") or 0) * (int(m["step"]) - prev)
        prev = int(m["step"])
    return {"name": run.rel, "steps": steps, "tokens": tokens, "seconds": seconds,
            "train": [(int(m["step"]), float(m["loss"])) for m in train],
            "valid": [(int(m["step"]), float(m["loss"])) for m in valid],
            "lr": [(int(m["step"]), float(m["lr"])) for m in train if m.get("lr")]}


def training(inv: Inventory) -> Section:
    s = Section("training", "Training: pretraining, annealing, SFT",
                "Loss and learning rate of every training run, in the order they ran (Megatron-Core; "
                "metrics.jsonl of each run's output_dir).")
    runs = [r for r in inv.training if any("loss" in m for m in r.metrics)]
    if not runs:
        s.missing = "No training run (an `oc-megatron train` output_dir with metrics.jsonl)."
        return s
    runs.sort(key=started)
    series = [training_series(r) for r in runs]
    s.figures.append(Figure(figures.training_curves(series), "Loss (train line, validation squares) and learning "
                                                             "rate; grey lines separate the stages."))
    rows = []
    for r, ser in zip(runs, series, strict=True):
        ckpt = r.path / "checkpoints"
        latest = ckpt / "latest_checkpointed_iteration.txt"
        rows.append([r.rel, training_kind(r), fmt(ser["steps"]), f"≈{ser['tokens']:,}" if ser["tokens"] else "–",
                     f"{ser['train'][-1][1]:.4f}" if ser["train"] else "–",
                     f"{ser['valid'][-1][1]:.4f}" if ser["valid"] else "–",
                     f"{ckpt} (iteration {latest.read_text().strip()})" if latest.is_file() else "–"])
    s.tables.append(Table("runs", ["run", "kind", "steps", "tokens (from the logged steps)", "final train loss",
                                   "final validation loss", "checkpoint"], rows))
    return s


# ---- eval -----------------------------------------------------------------------------------------------------------
def evaluation(inv: Inventory) -> Section:
    from oc_synth.eval.reference import PUBLISHED

    s = Section("eval", "Evaluation beside OpenCoder's published scores",
                "pass@1 of the evaluated model, next to OpenCoder's published greedy pass@1 on the same benchmark "
                "(docs/opencoder.md §7; oc_synth/eval/reference.py). A tiny demo model scoring 0 is expected.")
    found = False
    for o in inv.of("eval"):
        summary = inv.json_of(o, "summary.json")
        if not isinstance(summary, dict) or "pass@1" not in summary:
            s.notes.append(f"{o.rel}: no finished summary.json.")
            continue
        found = True
        bench, variant = summary.get("benchmark", "?"), summary.get("variant", "base")
        model = str((summary.get("model") or {}).get("model", o.rel))
        shown = os.path.relpath(model, inv.run_dir) if Path(model).is_absolute() and Path(model).is_relative_to(
            inv.run_dir.resolve()) else model
        labels = [f"ours: {shown} ({summary.get('problems', '?')} problems)"]
        values = [100 * float(summary["pass@1"])]
        highlight = [True]
        for ref, scores in PUBLISHED.items():
            v = (scores.get(bench) or {}).get(variant)
            if v is not None:
                labels.append(f"OpenCoder {ref} (published)")
                values.append(v)
                highlight.append(False)
        s.figures.append(Figure(figures.score_bars(labels, values, highlight, xlabel="pass@1 (%)",
                                                   title=f"{bench} ({variant}) pass@1 ({o.rel})"),
                                f"{bench} ({variant}): ours and OpenCoder's published pass@1."))
        rows = [[k, fmt(v)] for k, v in summary.items() if k.startswith("pass@")]
        rows += [["benchmark", f"{bench} ({variant})"], ["harness", fmt(summary.get("harness"))],
                 ["problems", fmt(summary.get("problems"))], ["samples", fmt(summary.get("samples"))],
                 ["verdicts", ", ".join(f"{k} {v}" for k, v in (summary.get("verdicts") or {}).items())],
                 ["model", f"{model} ({(summary.get('model') or {}).get('backend', '?')})"]]
        s.tables.append(Table(f"eval ({o.rel})", ["figure", "value"], rows))
    if not found:
        s.missing = "No finished `oc-synth eval` output (OUT/summary.json)."
    return s


SECTIONS: tuple[Callable[[Inventory], Section], ...] = (overview, funnel, languages, dedup, recall, synthesis,
                                                        training, evaluation)
