"""Our indexed-dataset writer (``oc_megatron/data/indexed.py``) against Megatron-Core's ``IndexedDatasetBuilder``:
the same calls give byte-identical ``.bin`` and ``.idx`` files (uint16 and int32 tokens, documents of several
sequences, datasets merged with ``add_index``, an empty dataset), and Megatron-Core's ``IndexedDataset`` reads ours."""

from __future__ import annotations

import numpy as np
import pytest

from oc_megatron.data.indexed import IndexedWriter, read_index


def _documents(seed: int, n: int, vocab: int) -> list[tuple[np.ndarray, list[int]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lengths = [int(x) for x in rng.integers(1, 50, size=int(rng.integers(1, 4)))]
        out.append((rng.integers(0, vocab, size=sum(lengths)), lengths))
    return out


@pytest.mark.parametrize("dtype, vocab", [(np.uint16, 65_000), (np.int32, 200_000)])
def test_writer_matches_megatron_core_builder(tmp_path, dtype, vocab):
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

    parts = {"a": _documents(0, 40, vocab), "b": _documents(1, 25, vocab), "empty": []}
    for side, cls in (("ours", IndexedWriter), ("megatron", IndexedDatasetBuilder)):
        (tmp_path / side).mkdir()
        for name, docs in parts.items():
            w = cls(str(tmp_path / side / f"{name}.bin"), dtype=dtype)
            for tokens, lengths in docs:
                w.add_document(tokens, lengths)
            w.finalize(str(tmp_path / side / f"{name}.idx"))
        merged = cls(str(tmp_path / side / "merged.bin"), dtype=dtype)
        for name in ("a", "empty", "b"):
            merged.add_index(str(tmp_path / side / name))
        merged.finalize(str(tmp_path / side / "merged.idx"))
    for name in (*parts, "merged"):
        for ext in (".bin", ".idx"):
            ours, theirs = (tmp_path / side / f"{name}{ext}" for side in ("ours", "megatron"))
            assert ours.read_bytes() == theirs.read_bytes(), f"{name}{ext}"
    ds = IndexedDataset(str(tmp_path / "ours" / "merged"))
    want = [t for docs in (parts["a"], parts["b"]) for tokens, lengths in docs
            for t in np.split(tokens, np.cumsum(lengths)[:-1])]
    assert len(ds) == len(want) and all(np.array_equal(ds[i], w) for i, w in enumerate(want))
    got_dtype, lengths, documents = read_index(tmp_path / "ours" / "merged.idx")
    assert got_dtype == dtype and lengths.tolist() == [len(w) for w in want] and documents[0] == 0


def test_read_index_refuses_other_files(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"not an index")
    with pytest.raises(ValueError, match="not a Megatron indexed dataset index"):
        read_index(tmp_path / "x.idx")
