"""Fixtures for oc_megatron tests, built once per session, offline: a small real corpus, a BPE tokenizer trained on it
(with the ChatML tokens), its indexed dataset, SFT data from examples/sft/, and a 12-step reference pretraining run of
the `tiny` model (the oracle of the layout tests, and the checkpoint annealing starts from)."""

from __future__ import annotations

from pathlib import Path

import pytest
from megatron_test_helpers import read_losses, run_cli, tiny_train_config, write_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


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


@pytest.fixture(scope="session")
def reference(tiny_data, tmp_path_factory):
    """12 steps of the tiny model (TP1, CLI), WSD: warmup 3, stable to step 8, decay to step 12; checkpoints every 4."""
    run = tmp_path_factory.mktemp("reference")
    cfg = write_config(tiny_train_config(tiny_data, run, train={"eval_interval": 6, "eval_iters": 1},
                                         logging={"tensorboard": True}), run.parent / "reference.yaml")
    run_cli(cfg)
    return {"dir": run, "losses": read_losses(run), "valid": read_losses(run, "valid")}


@pytest.fixture(scope="session")
def sft_data(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """examples/sft/{stage1,stage2,valid}.jsonl through `sft-data` with the tiny tokenizer (prefixes)."""
    from oc_megatron.data.sft import sft_data as build

    root = tmp_path_factory.mktemp("sft_data")
    out = {}
    for name in ("stage1", "stage2", "valid"):
        build(EXAMPLES / "sft" / f"{name}.jsonl", root / name, tiny_data["tokenizer"], progress=False)
        out[name] = root / name
    return out
