"""Train the demo's tokenizer on the data it will tokenize: a 1,024-token byte-level BPE (the `tiny` preset's
vocabulary) with <|endoftext|> and the ChatML tokens, saved as a Hugging Face tokenizer directory.

    python examples/demo/train_tokenizer.py OUT_DIR RECORDS [RECORDS ...]

RECORDS: JSONL/Parquet files or directories of records with `text` (e.g. the curated sample and the recalled pages).
OpenCoder trained its tokenizer on its own corpus too; at full scale it is 96,640 tokens (docs/opencoder.md §5).
"""

from __future__ import annotations

import sys
from itertools import chain
from pathlib import Path

VOCAB_SIZE = 1024  # the tiny preset's vocab_size


def main(argv: list[str]) -> int:
    from oc_common.errors import OcError
    from oc_common.records import iter_records, list_record_files
    from oc_megatron.data.tiny import train_bpe_tokenizer

    if len(argv) < 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    out, sources = Path(argv[0]), [Path(p) for p in argv[1:]]
    try:
        files = [f for s in sources for f in list_record_files(s)]
    except OcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    texts = (r["text"] for r in chain.from_iterable(iter_records(f) for f in files) if r.get("text"))
    train_bpe_tokenizer(texts, VOCAB_SIZE, out)
    print(f"tokenizer: {out} ({VOCAB_SIZE} tokens, trained on {len(files)} record files)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
