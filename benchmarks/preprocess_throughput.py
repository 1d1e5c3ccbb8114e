"""Tokens/s of `oc-megatron preprocess` on real text, next to a baseline.

    python benchmarks/preprocess_throughput.py [--mb 20] [--vocab 16384] [--workers 1 2] [--out DIR]

Text: the Python standard library's sources (real code, offline), repeated up to ``--mb`` megabytes and written as
JSONL shards. Tokenizer: a byte-level BPE with ``--vocab`` ids trained on that text (OpenCoder's own tokenizer needs the
model hub). Measured:

* baseline: ``tokenizers.Tokenizer.encode_batch`` over the same documents in one process, nothing written (the
  tokenizer's own speed, Rust threads allowed);
* ``preprocess`` with each ``--workers`` value: read JSONL -> tokenize -> Megatron .bin/.idx parts -> merge.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def build_corpus(out: Path, megabytes: float, shards: int = 4) -> tuple[list[Path], int]:
    from oc_megatron.data.tiny import stdlib_code_records

    records = list(stdlib_code_records(max_bytes=200_000))
    target, size, docs = int(megabytes * 1e6), 0, []
    while size < target:
        for r in records:
            docs.append(r["text"])
            size += len(r["text"].encode())
            if size >= target:
                break
    paths = []
    for i in range(shards):
        p = out / f"shard_{i:02d}.jsonl"
        with open(p, "w", encoding="utf-8") as f:
            for j, text in enumerate(docs[i::shards]):
                f.write(json.dumps({"id": f"{i}-{j}", "text": text}) + "\n")
        paths.append(p)
    return paths, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0, help="megabytes of text (default 20)")
    ap.add_argument("--vocab", type=int, default=16384, help="BPE vocabulary size (default 16384)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="preprocess worker counts to measure")
    ap.add_argument("--out", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    args = ap.parse_args()

    from oc_common.records import iter_records
    from oc_megatron.data.preprocess import preprocess
    from oc_megatron.data.tiny import train_bpe_tokenizer
    from oc_megatron.data.tokenizer import load_tokenizer

    work = args.out or Path(tempfile.mkdtemp(prefix="oc_preprocess_bench_"))
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    shards, size = build_corpus(work / "corpus", args.mb)
    texts = [r["text"] for p in shards for r in iter_records(p)]
    t0 = time.perf_counter()
    tok_dir = train_bpe_tokenizer(texts[:2000], args.vocab, work / "tokenizer")
    print(f"corpus: {len(texts):,} documents, {size / 1e6:.1f} MB in {len(shards)} JSONL shards; "
          f"BPE {args.vocab} trained in {time.perf_counter() - t0:.1f} s; {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    import megatron.core.datasets.indexed_dataset  # noqa: F401  (a fixed start-up cost, not per token)

    print(f"import megatron.core (once per run): {time.perf_counter() - t0:.1f} s, excluded below")
    tok = load_tokenizer(tok_dir)
    t0 = time.perf_counter()
    n = sum(len(e.ids) for i in range(0, len(texts), 256)
            for e in tok.encode_batch(texts[i:i + 256], add_special_tokens=False))
    base = time.perf_counter() - t0
    print(f"{'baseline encode_batch (no I/O)':34s} {n / base:>12,.0f} tokens/s  {size / 1e6 / base:6.2f} MB/s  "
          f"({n:,} tokens, {base:.1f} s)")
    for w in args.workers:
        prefix = work / f"out_w{w}" / "code"
        shutil.rmtree(prefix.parent, ignore_errors=True)
        t0 = time.perf_counter()
        stats = preprocess(work / "corpus", prefix, tok_dir, workers=w, append_eod=True, progress=False)
        el = time.perf_counter() - t0
        print(f"{f'oc-megatron preprocess --workers {w}':34s} {stats.tokens / el:>12,.0f} tokens/s  "
              f"{size / 1e6 / el:6.2f} MB/s  ({stats.tokens:,} tokens incl. EOD, {el:.1f} s)")
    if args.out is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
