"""A small run directory with an output of every kind the report draws, made by the real commands where they are fast
(curation, verify, recall, eval through the harness with fixed answers, generate with a fixed answer) and, for
training, by the real metrics writer (MetricsLogger) fed fixed loss values (a Megatron run takes minutes)."""

import json
from pathlib import Path

from typer.testing import CliRunner

from oc_synth.cli import app

REPO = Path(__file__).resolve().parents[3]
# The loss values the training fixture logs: the report's final-loss figures must be these.
PRETRAIN_LOSSES = {5: 6.9, 10: 6.1, 15: 5.2, 20: 4.7}
ANNEAL_LOSSES = {2: 4.6, 4: 4.4}
PRETRAIN_TOKENS_PER_STEP = 2048


def oc(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def write_jsonl(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def curate(run: Path) -> None:
    oc("curate", "ingest", REPO / "examples/sample_repos", run / "ingest", "--dropped", run / "dropped/ingest", "-q")
    oc("curate", "dedup", run / "ingest", run / "dedup", "--dropped", run / "dropped/dedup", "-q")
    oc("curate", "transform", run / "dedup", run / "transform", "-q")
    oc("curate", "filter", run / "transform", run / "filtered", "--dropped", run / "dropped/filter", "-q")
    # the sample's languages are all at keep fraction 1 by default: drop half the Python files to see a change
    oc("curate", "sample", run / "filtered", run / "sampled", "-s", "keep_fraction.Python=0.5", "-q")


def verify(run: Path, tmp: Path) -> None:
    samples = write_jsonl(tmp / "samples" / "snippets.jsonl", [
        {"id": "ok", "recipe": "annealing-snippets", "language": "python",
         "code": "def add(a, b):\n    return a + b\n", "tests": "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"},
        {"id": "wrong", "recipe": "annealing-snippets", "language": "python",
         "code": "def add(a, b):\n    return a - b\n", "tests": "assert add(2, 3) == 5\n"},
        {"id": "none", "recipe": "annealing-snippets", "language": "python", "code": "def f():\n    return 1\n",
         "tests": ""},
    ])
    oc("verify", samples, run / "verified", "--dropped", run / "dropped/verify", "--timeout", "10", "-q")


def generate(run: Path) -> None:
    from oc_synth.eval.canned import CannedBackend
    from oc_synth.synth.generator import Generator
    from oc_synth.synth.run import config_from_spec

    cfg = config_from_spec({"recipe": "annealing-snippets", "seeds": str(REPO / "examples/synth/algorithmic.jsonl"),
                            "out": str(run / "generated"), "backend": "canned", "model": "no-code-answers",
                            "limit": 2, "verify": False, "quiet": True})
    Generator(cfg, lambda: CannedBackend(lambda request, i: "I would rather not write code."), None).run()


def recall(run: Path, tmp: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "examples/recall/make_corpus.py")
    make_corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_corpus)
    make_corpus.generate(tmp / "web", scale=0.4, seed=1)
    oc("recall", "run", "--seeds", tmp / "web/seeds.jsonl", "--corpus", tmp / "web/web", "--out", run / "recall",
       "--rounds", "2", "--url-patterns", REPO / "examples/recall/url_patterns.yaml",
       "--config", REPO / "examples/recall/config.yaml", "-q")


def train(run: Path) -> None:
    import yaml

    from oc_megatron.training.metrics import MetricsLogger

    for name, losses, config in (
            ("pretrain", PRETRAIN_LOSSES, {"model": {"preset": "tiny"}, "data": {"blend": [{"path": "x"}]}}),
            ("anneal", ANNEAL_LOSSES, {"model": {"preset": "tiny"}, "data": {"blend": [{"path": "x"}]},
                                       "checkpoint": {"init_from": {"path": "../pretrain/checkpoints"}}})):
        out = run / name
        logger = MetricsLogger(out, enabled=True, tensorboard=False)
        for step, loss in losses.items():
            logger.log(step, {"loss": loss, "lr": 1e-3 / step, "tokens": PRETRAIN_TOKENS_PER_STEP, "samples": 16})
        last = max(losses)
        logger.log(last, {"loss": losses[last] + 0.1, "ppl": 100.0}, prefix="valid")
        logger.close()
        (out / "config.yaml").write_text(yaml.safe_dump(config))
        (out / "checkpoints").mkdir()
        (out / "checkpoints" / "latest_checkpointed_iteration.txt").write_text(str(last))


def evaluate(run: Path) -> None:
    from oc_synth.eval.canned import table_backend
    from oc_synth.eval.data import ProblemSet, load_problems
    from oc_synth.eval.runner import EvalSettings, run_eval

    he = load_problems("humaneval")
    ps = ProblemSet(he.benchmark, he.variant, he.source, he.problems[:2])
    # the first problem answered right, the second wrong: pass@1 = 0.5
    answers = {ps.problems[0].task_id: ps.problems[0].canonical_completion, ps.problems[1].task_id: "    pass\n"}
    run_eval(ps, table_backend(answers), run / "eval", EvalSettings(harness="oc"))


def make_full_run(run: Path, tmp: Path) -> Path:
    """A run directory holding every kind of output the report draws."""
    curate(run)
    oc("curate", "select-algorithmic", run / "sampled", run / "algorithmic", "-q")
    verify(run, tmp)
    generate(run)
    recall(run, tmp)
    train(run)
    evaluate(run)
    return run
