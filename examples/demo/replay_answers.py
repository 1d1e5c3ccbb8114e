"""Run a synthesis recipe on canned answers: `oc-synth generate` with a backend that answers from a file, not a model.

    python examples/demo/replay_answers.py RECIPE ANSWERS.yaml OUT [--seeds-file F] [--no-verify] [--no-decontaminate]

ANSWERS.yaml (e.g. examples/demo/canned/<recipe>.yaml) lists seeds, each with the answers a model would give to the
recipe's steps, in order. The seeds are written to F (default: OUT.seeds.jsonl beside OUT), the run's --seeds;
everything after the model (parsing,
checks, dedup, decontamination, the sandbox when --verify) is `oc-synth generate`'s own code, and OUT is a generate
output like any other (OUT/.oc/stats.json, rejected samples in OUT/.oc/rejected/). A tiny model's answers are
gibberish, so the demo runs each recipe twice: live with the model, and here with answers that show what the
stages keep and drop.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import yaml


def main(argv: list[str] | None = None) -> int:
    from oc_common.errors import OcError
    from oc_common.fileio import atomic_write_text
    from oc_synth.eval.canned import CannedBackend
    from oc_synth.synth.finalize import render_summary
    from oc_synth.synth.generator import Generator
    from oc_synth.synth.run import config_from_spec
    from oc_synth.synth.verification import sandbox_verifier

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipe")
    ap.add_argument("answers", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seeds-file", type=Path, help="where to write the seeds (default: OUT.seeds.jsonl)")
    ap.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                    help="run code + tests in the sandbox here (default), or leave it to `oc-synth verify`")
    ap.add_argument("--decontaminate", action=argparse.BooleanOptionalAction, default=True,
                    help="drop HumanEval/MBPP overlap here (default), or leave it to `oc-synth decontaminate`")
    args = ap.parse_args(argv)
    try:
        entries = yaml.safe_load(args.answers.read_text(encoding="utf-8"))
        seeds = [e["seed"] for e in entries]
        answers = {str(e["seed"]["id"]): list(e["answers"]) for e in entries}
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        print(f"error: {args.answers}: not a canned-answers file ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    seeds_file = args.seeds_file or args.out.parent / f"{args.out.name}.seeds.jsonl"
    atomic_write_text(seeds_file, "".join(json.dumps(s) + "\n" for s in seeds))
    asked: Counter = Counter()

    def answer(request, sample: int) -> str:
        """The seed's answer to the step it is at: each seed's requests arrive one step after the other."""
        step = asked[request.id]
        if sample == request.sampling.n - 1:
            asked[request.id] += 1
        given = answers[request.id]
        return given[step] if step < len(given) else ""

    spec = {"recipe": args.recipe, "seeds": str(seeds_file), "out": str(args.out), "backend": "canned",
            "model": f"canned answers (ours): {args.answers.as_posix()}", "verify": args.verify,
            "decontaminate": args.decontaminate, "quiet": True}
    try:
        cfg = config_from_spec(spec)
        verifier = sandbox_verifier() if args.verify and cfg.recipe.spec.verify else None
        result = Generator(cfg, lambda: CannedBackend(answer, model=spec["model"]), verifier).run()
    except OcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    render_summary(f"{args.recipe} on canned answers ({args.answers})", result.stats, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
