"""``oc-megatron preprocess`` side by side with Megatron-LM's ``tools/preprocess_data.py``: tokens/s, CPU, peak RSS,
and byte-identical output.

    python benchmarks/preprocess_throughput.py --megatron-lm-dir DIR [--mb 100] [--workers 2] [--repeats 3]

``DIR`` is a checkout of NVIDIA/Megatron-LM whose ``megatron/core`` matches the installed Megatron-Core (tested:
tag ``core_v0.16.1``); its script runs from there (``PYTHONPATH=DIR``), as its README says. Without
``--megatron-lm-dir`` only our side runs, with a message.

Text: the Python standard library's sources (real code, offline), repeated up to ``--mb`` megabytes, one JSONL file
(Megatron's tool reads one file). Tokenizer: a byte-level BPE with ``--vocab`` ids trained on that text, as a Hugging
Face tokenizer directory, which both tools load (Megatron's as ``HuggingFaceTokenizer`` with ``--tokenizer-hf-use-fast``
and ``--append-eod``; ours with ``--append-eod``). Each run is a fresh process (start-up and imports count) measured
from outside (``sidebyside.py``, ``measure.py``), alternating, the order flipping every round; the outputs of the
last runs must be byte-identical (``.bin`` and ``.idx``).

Megatron-LM's ``megatron.training`` imports ``triton`` (a batch-invariant kernel module), which CPU machines lack; the
runner registers a stub for that one module (never for ``triton`` itself), as ``oc_megatron`` does for
Megatron-Core's MoE kernels. Nothing of the tokenization path is replaced.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import REPO, alternate, fmt, load_average, summarize  # noqa: E402
from sidebyside import run_command  # noqa: E402

RUNNER = '''"""Runs a Megatron-LM script: `python RUNNER SCRIPT ARGS...`, with a stub for the one triton module."""
import importlib.util, runpy, sys, types
if importlib.util.find_spec("triton") is None:
    name = "megatron.core.transformer.custom_layers.batch_invariant_kernels"
    stub = types.ModuleType(name)
    def _unavailable(*args, **kwargs):
        raise RuntimeError("batch-invariant kernels need triton")
    stub.enable_batch_invariant_mode = _unavailable
    sys.modules[name] = stub
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
'''


def build_corpus(out: Path, megabytes: float) -> tuple[int, int]:
    """One JSONL file of standard-library sources, about ``megabytes`` MB; returns (documents, bytes of text)."""
    from oc_megatron.data.tiny import stdlib_code_records

    records = list(stdlib_code_records(max_bytes=200_000))
    target, size, docs = int(megabytes * 1e6), 0, 0
    with open(out, "w", encoding="utf-8") as f:
        while size < target:
            for r in records:
                f.write(json.dumps({"id": f"doc-{docs}", "text": r["text"]}) + "\n")
                size += len(r["text"].encode())
                docs += 1
                if size >= target:
                    break
    return docs, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megatron-lm-dir", type=Path, default=None,
                    help="checkout of NVIDIA/Megatron-LM (tested: core_v0.16.1); without it only ours runs")
    ap.add_argument("--mb", type=float, default=100.0, help="megabytes of text (default 100)")
    ap.add_argument("--vocab", type=int, default=16384, help="BPE vocabulary size (default 16384)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for both tools (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of each side (default 3)")
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from oc_megatron.data.tiny import train_bpe_tokenizer

    work = args.work or Path(tempfile.mkdtemp(prefix="oc_preprocess_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        corpus = work / "corpus.jsonl"
        t0 = time.perf_counter()
        docs, size = build_corpus(corpus, args.mb)
        with open(corpus, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for _, line in zip(range(2000), f, strict=False)]
        tok_dir = train_bpe_tokenizer(texts, args.vocab, work / "tokenizer")
        print(f"corpus: {docs:,} documents, {size / 1e6:.1f} MB of text in one JSONL file; BPE {args.vocab} "
              f"(prepared in {time.perf_counter() - t0:.0f} s); load {load_average()}", flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",  # this checkout's packages
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
        ours_prefix, theirs_prefix = work / "ours" / "code", work / "megatron" / "code"
        ours_cmd = [sys.executable, "-m", "oc_megatron.cli", "preprocess", str(corpus), str(ours_prefix),
                    "--tokenizer", str(tok_dir), "--append-eod", "--workers", str(args.workers)]

        def ours() -> dict:
            shutil.rmtree(ours_prefix.parent, ignore_errors=True)
            return run_command(ours_cmd, env=env)

        sides = {f"oc-megatron preprocess -w {args.workers}": ours}
        if args.megatron_lm_dir is not None:
            script = args.megatron_lm_dir / "tools" / "preprocess_data.py"
            if not script.is_file():
                sys.exit(f"--megatron-lm-dir {args.megatron_lm_dir}: no tools/preprocess_data.py there")
            runner = work / "run_megatron_lm.py"
            runner.write_text(RUNNER)
            theirs_cmd = [sys.executable, str(runner), str(script), "--input", str(corpus), "--output-prefix",
                          str(theirs_prefix), "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model",
                          str(tok_dir), "--tokenizer-hf-use-fast", "--append-eod", "--workers", str(args.workers),
                          "--log-interval", "1000000"]
            theirs_env = {**env, "PYTHONPATH": os.pathsep.join(
                p for p in (str(args.megatron_lm_dir.resolve()), env.get("PYTHONPATH")) if p)}

            def theirs() -> dict:
                shutil.rmtree(theirs_prefix.parent, ignore_errors=True)
                theirs_prefix.parent.mkdir(parents=True)
                return run_command(theirs_cmd, env=theirs_env)

            sides = {f"Megatron-LM preprocess_data.py --workers {args.workers}": theirs, **sides}
        else:
            print("Megatron-LM: skipped (pass --megatron-lm-dir DIR, a checkout of NVIDIA/Megatron-LM, tested at "
                  "tag core_v0.16.1, to compare with its tools/preprocess_data.py)", flush=True)

        runs = alternate(sides, args.repeats)
        stats = json.loads(Path(f"{ours_prefix}.stats.json").read_text())
        tokens = stats["tokens"]
        results: dict = {"mb": size / 1e6, "documents": docs, "tokens": tokens, "vocab": args.vocab,
                         "workers": args.workers, "cpus": os.cpu_count(), "load_after": load_average(), "sides": {}}
        print(f"\n{size / 1e6:.1f} MB, {docs:,} documents, {tokens:,} tokens (EOD included); load after "
              f"{results['load_after']}")
        print(f"{'':46s} {'tokens/s':>11s} {'wall s, median (spread)':>24s} {'CPU s':>20s} {'peak RSS MiB':>18s}")
        for name, side_runs in runs.items():
            s = summarize(side_runs)
            results["sides"][name] = {**s, "tokens_per_s": tokens / s["wall_s"]["median"]}
            print(f"{name:46s} {tokens / s['wall_s']['median']:>11,.0f} {fmt(s, 'wall_s', 2):>24s} "
                  f"{fmt(s, 'cpu_s', 2):>20s} {fmt(s, 'peak_rss_mib', 0):>18s}")
        if args.megatron_lm_dir is not None:
            theirs_name, ours_name = list(runs)
            ratio = results["sides"][theirs_name]["wall_s"]["median"] / results["sides"][ours_name]["wall_s"]["median"]
            identical = all(filecmp.cmp(f"{ours_prefix}{ext}", f"{theirs_prefix}_text_document{ext}", shallow=False)
                            for ext in (".bin", ".idx"))
            results.update(speedup=ratio, byte_identical=identical)
            print(f"ours / Megatron-LM (tokens/s, medians): {ratio:.2f}x; outputs byte-identical: {identical}")
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        if results.get("byte_identical") is False:
            sys.exit(1)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
