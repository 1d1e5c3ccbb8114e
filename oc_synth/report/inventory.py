"""What a run directory holds: every output of ours found under it, read through the interfaces that own it.

* data commands (``curate *``, ``verify``, ``generate``, ``recall run``, ``eval``, ...): the directories with our
  manifest (oc_common/outputs.py); their totals are the stats that module locates;
* training runs: directories holding ``metrics.jsonl`` (oc_megatron/training/metrics.py) and ``config.yaml``;
* tokenized datasets: ``PREFIX.stats.json`` beside ``PREFIX.bin`` (``oc-megatron preprocess`` / ``sft-data``).

Nothing here decides what to draw; a damaged or unreadable file becomes a line in ``problems``, never an exception,
so that one bad file costs one section, not the page.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oc_common.errors import OutputError
from oc_common.outputs import META_DIR, read_manifest, read_stats, stats_path

METRICS_FILE = "metrics.jsonl"  # what MetricsLogger writes in a training run's output_dir
TRAIN_CONFIG = "config.yaml"  # the resolved config a training run writes beside it
TOKENIZED_STATS_SUFFIX = ".stats.json"  # PREFIX.stats.json beside PREFIX.bin
# Folders that hold no outputs of ours to report and can be large: never walked.
SKIP_DIRS = {"checkpoints", "tensorboard", "__pycache__", "node_modules"}
MAX_DEPTH = 8
COMMAND_PREFIXES = ("oc-synth ", "oc-megatron ")


def command_name(raw: str | None) -> str:
    """``oc-synth generate`` and ``generate`` are the same command."""
    name = (raw or "").strip()
    for prefix in COMMAND_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


@dataclass
class StageOutput:
    """One output directory a data command of ours wrote."""

    path: Path
    rel: str  # relative to the run directory, for labels
    command: str  # normalized, e.g. "curate dedup", "generate", "recall run"
    label: str  # "OUT", "--out", "--dropped", ...
    options: dict[str, Any]
    inputs: dict[str, str]
    stats: dict[str, Any] | None

    @property
    def counters(self) -> dict[str, Any]:
        return (self.stats or {}).get("counters", {})

    @property
    def groups(self) -> dict[str, dict[str, Any]]:
        return (self.stats or {}).get("groups", {})


@dataclass
class TrainingRun:
    path: Path
    rel: str
    metrics: list[dict[str, Any]]
    config: dict[str, Any] | None


@dataclass
class TokenizedData:
    prefix: Path
    rel: str
    stats: dict[str, Any]


@dataclass
class Inventory:
    run_dir: Path
    outputs: list[StageOutput] = field(default_factory=list)
    training: list[TrainingRun] = field(default_factory=list)
    tokenized: list[TokenizedData] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def json_of(self, o: StageOutput, name: str) -> Any:
        """A JSON file the command documents in its output (recall's report.json, eval's summary.json), or None."""
        path = o.path / name
        return read_json(path, self.problems) if path.is_file() else None

    def recall_reports(self) -> list[tuple[StageOutput, list[dict[str, Any]]]]:
        """Each ``recall run`` output with its finished rounds (DIR/report.json)."""
        out = []
        for o in self.of("recall run"):
            report = self.json_of(o, "report.json")
            rounds = report.get("rounds") if isinstance(report, dict) else None
            if rounds:
                out.append((o, rounds))
        return out

    def of(self, *commands: str, label: str | None = None) -> list[StageOutput]:
        """Outputs of these commands (the main output only, not --dropped, unless ``label`` says otherwise)."""
        return [o for o in self.outputs if o.command in commands and (label is None or o.label == label)
                and (label is not None or o.label != "--dropped")]


def read_json(path: Path, problems: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        problems.append(f"{path}: unreadable ({e})")
        return None


def _rel(path: Path, root: Path) -> str:
    rel = os.path.relpath(path, root)
    return "." if rel == "." else rel


def scan(run_dir: str | Path) -> Inventory:
    """Walk ``run_dir`` (hidden folders, checkpoints and TensorBoard logs excepted) and collect what it holds."""
    root = Path(run_dir)
    inv = Inventory(root)
    for here, dirs, files in os.walk(root):
        d = Path(here)
        depth = len(d.relative_to(root).parts)
        dirs[:] = sorted(x for x in dirs if not x.startswith(".") and x not in SKIP_DIRS and not x.endswith(".parts")
                         and depth < MAX_DEPTH)
        rel = _rel(d, root)
        if (d / META_DIR).is_dir():
            _add_output(inv, d, rel)
        if METRICS_FILE in files:
            _add_training(inv, d, rel)
        for name in sorted(files):
            if name.endswith(TOKENIZED_STATS_SUFFIX):
                prefix = d / name[: -len(TOKENIZED_STATS_SUFFIX)]
                if prefix.with_name(prefix.name + ".bin").is_file():
                    stats = read_json(d / name, inv.problems)
                    if isinstance(stats, dict):
                        inv.tokenized.append(TokenizedData(prefix, _rel(prefix, root), stats))
    return inv


def _add_output(inv: Inventory, d: Path, rel: str) -> None:
    try:
        manifest = read_manifest(d)
    except OutputError as e:
        inv.problems.append(str(e))
        return
    if manifest is None:
        return
    stats = None
    if stats_path(d).is_file():
        try:
            stats = read_stats(d)
        except (OSError, ValueError) as e:
            inv.problems.append(f"{stats_path(d)}: unreadable ({e})")
    inv.outputs.append(StageOutput(path=d, rel=rel, command=command_name(manifest.get("command")),
                                   label=str(manifest.get("label") or "OUT"), options=manifest.get("options") or {},
                                   inputs=manifest.get("inputs") or {}, stats=stats))


def _add_training(inv: Inventory, d: Path, rel: str) -> None:
    metrics = []
    with open(d / METRICS_FILE, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                metrics.append(json.loads(line))
            except ValueError:
                inv.problems.append(f"{d / METRICS_FILE}:{n}: not JSON (a torn last line of a killed run?)")
    config = None
    if (d / TRAIN_CONFIG).is_file():
        try:
            config = yaml.safe_load((d / TRAIN_CONFIG).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            inv.problems.append(f"{d / TRAIN_CONFIG}: unreadable ({e})")
    inv.training.append(TrainingRun(d, rel, metrics, config if isinstance(config, dict) else None))
