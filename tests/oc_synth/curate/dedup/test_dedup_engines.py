"""Engine choice, and the GPU engine's CPU-side glue (ids fed to NeMo Curator, its groups read back as clusters),
which runs without cuDF. The GPU stages themselves are covered by test_dedup_gpu.py on a GPU machine."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nemo_curator.tasks import DocumentBatch

from oc_common.errors import OcError
from oc_common.records import write_records
from oc_synth.curate.dedup.curator_gpu import CURATOR_ID, FUZZY_GROUP, CuratorIdStage, _read_groups, labels_from_groups
from oc_synth.curate.dedup.engines import CpuEngine, gpu_status, resolve_engine
from oc_synth.curate.dedup.index import load_index, run_index
from oc_synth.curate.dedup.settings import build_settings
from oc_synth.pipeline.runner import plan_shards


def test_auto_falls_back_to_cpu_and_says_why():
    ok, why = gpu_status()
    assert not ok and "cuDF" in why  # this box has no cuDF
    engine, reason = resolve_engine(build_settings(engine="auto"))
    assert isinstance(engine, CpuEngine) and reason.startswith("auto: cuDF")
    with pytest.raises(OcError, match="deduplication_cuda12"):
        resolve_engine(build_settings(engine="gpu"))


def test_curator_id_stage_sends_doc_numbers_and_text_only():
    frame = pd.DataFrame({"id": ["a", "b", "c"], "text": ["Hello", None, "World"], "stars": [1, 2, 3]}, dtype=object)
    out = CuratorIdStage({"s0": 0, "s1": 1}, lowercase=True).process(DocumentBatch(dataset_name="s1", data=frame))
    df = out.to_pandas()
    assert list(df.columns) == [CURATOR_ID, "text"]
    assert df[CURATOR_ID].tolist() == [(1 << 32) | 0, (1 << 32) | 2]  # the record without text is left out
    assert df["text"].tolist() == ["hello", "world"]


def test_groups_written_by_curator_become_position_labels(tmp_path):
    recs = [{"id": str(i), "text": f"doc {i}"} for i in range(4)]
    write_records(tmp_path / "in" / "a.jsonl", recs[:2])
    write_records(tmp_path / "in" / "b.jsonl", recs[2:])
    shards = plan_shards(tmp_path / "in")
    settings = build_settings(mode="fuzzy", engine="cpu")
    run_index(shards, tmp_path / "index", settings, compute_bands=False)
    data = load_index(tmp_path / "index", shards, fuzzy=True)
    # NeMo Curator's connected components: (_curator_dedup_id, _duplicate_group_id) rows, in any order and files
    cc = tmp_path / "ConnectedComponentsStage"
    cc.mkdir()
    pq.write_table(pa.table({CURATOR_ID: [(1 << 32) | 1, 0], FUZZY_GROUP: [7, 7]}), cc / "x.parquet")
    pq.write_table(pa.table({CURATOR_ID: [1], FUZZY_GROUP: [9]}), cc / "y.parquet")
    docs, groups = _read_groups(cc, FUZZY_GROUP)
    members = np.array([True, True, True, False])
    labels = labels_from_groups(data, docs, groups, members)
    assert labels.tolist() == [0, 1, 2, -1]  # doc 1 alone in group 9; shard b's row 1 is not a member
    labels = labels_from_groups(data, docs, groups, np.ones(4, bool))
    assert labels.tolist() == [0, 1, 2, 0]
    assert data.exact_labels().tolist() == [0, 1, 2, 3]
    with pytest.raises(RuntimeError, match="not in the index"):
        labels_from_groups(data, np.array([5 << 32]), np.array([1]), members)
