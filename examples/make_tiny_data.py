"""Build the data the tiny examples train on (offline, ~15 s on 2 cores): pretraining, annealing and SFT.

    python examples/make_tiny_data.py [OUT_DIR]       # default: runs/tiny_data

Writes, under OUT_DIR:

* ``corpus.jsonl`` (Python standard-library sources), ``tokenizer/`` (a 1,024-token byte-level BPE trained on them,
  with ``<|endoftext|>``, the ChatML tokens ``<|im_start|>`` / ``<|im_end|>`` and a ChatML chat template) and
  ``code_text_document.{bin,idx}`` (the corpus through `oc-megatron preprocess`, one EOD token after each file):
  ``examples/pretrain_tiny.yaml``;
* the annealing components of ``examples/anneal_tiny.yaml``: ``anneal_algorithmic`` (``examples/synth/
  algorithmic.jsonl``: files matching "class Solution" / "def solution", what `oc-synth curate select-algorithmic`
  keeps) and two stand-ins for what only an LLM can write (`oc-synth generate` with the annealing-snippets and
  code-textbook recipes): ``anneal_snippets`` (the seed snippets ``examples/synth/code.jsonl``) and
  ``anneal_textbooks`` (the code-related web text ``examples/synth/web.jsonl``);
* SFT data for ``examples/sft_tiny_stage{1,2}.yaml`` through `oc-megatron sft-data`: ``sft_stage1`` (chat
  records, ``examples/sft/stage1.jsonl``), ``sft_stage2`` (opc-sft instruction/output pairs, ``examples/sft/
  stage2.jsonl``) and ``sft_valid``.

Rerunning reuses what exists.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent


def main(out_dir: str = "runs/tiny_data") -> None:
    from oc_megatron.data.preprocess import preprocess
    from oc_megatron.data.sft import sft_data
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

    for name, source in (("anneal_algorithmic", "synth/algorithmic.jsonl"), ("anneal_snippets", "synth/code.jsonl"),
                         ("anneal_textbooks", "synth/web.jsonl")):
        stats = preprocess(EXAMPLES / source, out / name, tokenizer, append_eod=True, progress=False)
        print(f"annealing component {out / name}: {stats.documents} documents, {stats.tokens} tokens")
    for name, source in (("sft_stage1", "sft/stage1.jsonl"), ("sft_stage2", "sft/stage2.jsonl"),
                         ("sft_valid", "sft/valid.jsonl")):
        stats = sft_data(EXAMPLES / source, out / name, tokenizer, progress=False)
        print(f"SFT data {out / name}: {stats.documents} conversations, {stats.tokens} tokens, "
              f"{stats.loss_tokens} trained")


if __name__ == "__main__":
    main(*sys.argv[1:])
