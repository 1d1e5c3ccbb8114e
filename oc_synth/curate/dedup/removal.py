"""Pass 3: a ``run_sharded`` stage that applies one shard's decisions to its records.

Kept records come out with every field intact plus the cluster fields; removed ones are rejected with their reason
(``--dropped`` writes them with ``keep=false``, ``drop_reasons``, the cluster fields and ``duplicate_of``).
Decisions are matched by row: the stage checks that the shard still has the number of records it had when indexed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import DocumentBatch

from oc_common.errors import OcError
from oc_common.outcome import DROP_REASONS, KEEP, reject
from oc_synth.curate.dedup.decisions import decision_path
from oc_synth.pipeline.stages import ensure_keep_columns, frame_from_records, records_from_frame

CLUSTER_FIELDS = ("dup_cluster", "dup_count", "minhash_cluster", "minhash_count")


@dataclass
class DedupRemovalStage(ProcessingStage[DocumentBatch, DocumentBatch]):
    """Decisions are per row of a shard, so this stage works on the whole shard rather than record by record."""

    decisions_dir: str = ""
    name: str = "dedup_removal"

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], [KEEP, DROP_REASONS]

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        path = decision_path(Path(self.decisions_dir), batch.dataset_name)
        decisions = pq.read_table(path).to_pylist()
        records = records_from_frame(ensure_keep_columns(batch.to_pandas()))
        if len(records) != len(decisions):
            raise OcError(f"{batch._metadata.get('source')}: has {len(records)} records but had {len(decisions)} "
                            "when it was indexed; the input changed during the run (rerun with --overwrite)")
        for rec, dec in zip(records, decisions, strict=True):
            for key in CLUSTER_FIELDS:
                if dec.get(key) is not None:
                    rec[key] = dec[key]
            if dec.get("reason"):
                rec["duplicate_of"] = dec["duplicate_of"]
                reject(rec, dec["reason"])  # the writer counts drop reasons
        return DocumentBatch(dataset_name=batch.dataset_name, data=ensure_keep_columns(frame_from_records(records)),
                             _metadata=batch._metadata, _stage_perf=batch._stage_perf)
