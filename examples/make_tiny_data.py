"""Build the data examples/pretrain_tiny.yaml trains on (offline, ~10 s on 2 cores).

    python examples/make_tiny_data.py [OUT_DIR]       # default: runs/tiny_data

Writes OUT_DIR/corpus.jsonl (Python standard-library sources), OUT_DIR/tokenizer/ (a 1,024-token byte-level BPE
trained on them) and OUT_DIR/code_text_document.{bin,idx} (the same text through `oc-megatron preprocess`, one EOD
token after each file). Rerunning reuses what exists.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(out_dir: str = "runs/tiny_data") -> None:
    from oc_megatron.data.preprocess import preprocess
    from oc_megatron.data.tiny import stdlib_code_records, train_bpe_tokenizer, write_jsonl

    out = Path(out_dir)
    corpus = out / "corpus.jsonl"
    if not corpus.is_file():
        n = write_jsonl(stdlib_code_records(max_files=300), corpus)
        print(f"wrote {n} files of Python source to {corpus}")
    tokenizer = out / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        from oc_common.records import iter_records

        train_bpe_tokenizer((r["text"] for r in iter_records(corpus)), 1024, tokenizer)
        print(f"trained a 1024-token BPE tokenizer: {tokenizer}")
    stats = preprocess(corpus, out / "code_text_document", tokenizer, workers=2, append_eod=True)
    print(f"indexed dataset {out / 'code_text_document'}: {stats.documents} documents, {stats.tokens} tokens")


if __name__ == "__main__":
    main(*sys.argv[1:])
