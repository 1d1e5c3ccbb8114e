"""oc-megatron preprocess: JSONL/Parquet text -> Megatron indexed dataset, multi-process, resumable."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from oc_megatron.data.preprocess import preprocess
from oc_megatron.data.tokenizer import load_tokenizer, load_tokenizer_info


@pytest.fixture
def inputs(tiny_data, tmp_path):
    records = [json.loads(line) for line in tiny_data["corpus"].read_text().splitlines()[:30]]
    d = tmp_path / "in"
    d.mkdir()
    lines = [json.dumps(r) for r in records[:15]]
    lines.insert(3, "{not json")  # a bad line is counted and skipped, not fatal
    lines.insert(5, json.dumps({"id": "empty", "text": ""}))
    (d / "a.jsonl").write_text("\n".join(lines) + "\n")
    pq.write_table(pa.Table.from_pylist(records[15:]), d / "b.parquet")
    return d, [r["text"] for r in records]


def _read_dataset(prefix):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    ds = IndexedDataset(str(prefix))
    return ds, [np.asarray(ds[i]).tolist() for i in range(len(ds))]


def test_preprocess_matches_direct_tokenization(tiny_data, inputs, tmp_path):
    in_dir, texts = inputs
    stats = preprocess(in_dir, tmp_path / "out" / "code", tiny_data["tokenizer"], workers=2, append_eod=True,
                       batch_size=4, progress=False)
    tok, eod = load_tokenizer(tiny_data["tokenizer"]), load_tokenizer_info(tiny_data["tokenizer"]).eod_id
    want = [tok.encode(t, add_special_tokens=False).ids + [eod] for t in texts]
    ds, got = _read_dataset(tmp_path / "out" / "code")
    assert got == want  # order kept across files and worker batches
    assert ds.index.dtype == np.uint16  # 1,024-token vocabulary
    assert (stats.documents, stats.bad_records, stats.empty_documents) == (30, 1, 1)
    assert stats.tokens == sum(map(len, want)) and stats.tokens_per_second > 0
    assert not (tmp_path / "out" / "code.parts").exists()


def test_preprocess_resumes_after_interruption(tiny_data, inputs, tmp_path):
    in_dir, _ = inputs
    prefix = tmp_path / "code"
    preprocess(in_dir, prefix, tiny_data["tokenizer"], append_eod=True, keep_parts=True, progress=False)
    full = (prefix.with_suffix(".bin").read_bytes(), prefix.with_suffix(".idx").read_bytes())
    # A run killed while tokenizing the second file: first part finished, no merged output yet.
    for name in ("code.bin", "code.idx", "code.stats.json", "code.parts/00001.done.json"):
        (tmp_path / name).unlink()
    stats = preprocess(in_dir, prefix, tiny_data["tokenizer"], append_eod=True, progress=False)
    assert stats.files_skipped_done == 1 and stats.documents == 30
    assert (prefix.with_suffix(".bin").read_bytes(), prefix.with_suffix(".idx").read_bytes()) == full
    # A finished dataset is not rebuilt.
    assert preprocess(in_dir, prefix, tiny_data["tokenizer"], append_eod=True, progress=False).files_skipped_done == 2


def test_cli_preprocess(tiny_data, inputs, tmp_path):
    in_dir, _ = inputs
    help_text = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "preprocess", "--help"],
                               capture_output=True, text=True, timeout=60).stdout
    for option in ("--tokenizer", "--workers", "--append-eod", "--text-key", "--keep-parts"):
        assert option in help_text
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "preprocess", str(in_dir), str(tmp_path / "x"),
                           "--tokenizer", str(tiny_data["tokenizer"]), "--append-eod"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "30 documents" in proc.stderr and "tokens/s" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "preprocess", str(in_dir), str(tmp_path / "y"),
                          "--tokenizer", str(tmp_path / "missing")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "missing" in bad.stderr and "Traceback" not in bad.stderr
