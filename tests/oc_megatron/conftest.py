"""Fixtures for oc_megatron tests: a small real corpus, a BPE tokenizer trained on it, its indexed dataset, and a
training config for the `tiny` model (all built once per session, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest



@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict[str, Path]:
    from oc_megatron.data.preprocess import preprocess
    from oc_megatron.data.tiny import stdlib_code_records, train_bpe_tokenizer, write_jsonl

    root = tmp_path_factory.mktemp("tiny_data")
    corpus = root / "corpus.jsonl"
    records = list(stdlib_code_records(max_files=80, max_bytes=60_000))
    write_jsonl(records, corpus)
    tokenizer = train_bpe_tokenizer((r["text"] for r in records), 1024, root / "tokenizer")
    preprocess(corpus, root / "code", tokenizer, workers=1, append_eod=True, progress=False)
    return {"root": root, "corpus": corpus, "tokenizer": tokenizer, "prefix": root / "code"}
