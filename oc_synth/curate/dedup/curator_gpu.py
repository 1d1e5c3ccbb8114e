"""The GPU engine: NeMo Curator's exact-duplicate identification and fuzzy dedup workflow (cuDF, cuGraph, RAPIDS MPF
shuffles on Ray), adapted at three seams so that its output feeds the shared keep rule and removal pass.

1. Document ids. Records are read by our ``ShardReader`` (JSONL and Parquet, bad lines counted) and carry
   ``_curator_dedup_id = shard_number << 32 | row``, the same ``doc`` number the CPU engine uses. NeMo Curator's
   ``MinHashStage`` accepts such DocumentBatches directly; no id-generator mapping is needed.
2. Survivors. NeMo Curator keeps an arbitrary member of each group (``duplicated(keep="first")`` after a shuffle).
   We read the groups instead - every member of every exact group (``ClusteredExactIdentification``), and the
   connected components the fuzzy workflow writes to ``cache/ConnectedComponentsStage`` - and apply RefineCode's
   keep rule (most stars, latest commit, smallest id) in ``decisions.py``, as for the CPU engine.
3. Hash and shingles. Exact groups use SHA-256 (cuDF ``hash_values(method="sha256")``) instead of NeMo's MD5; word
   shingles (the OpenCoder preset) cut words with the same regex as the CPU engine (``shingles.WORD_RE``) and
   MinHash n-grams of words with cuDF's list-column ``str.minhash``; char shingles are NeMo's own code path.

Same parameters, not the same bits: both engines take the shingle type and width, permutation count, bands x rows
and seed, but cuDF hashes shingles with MurmurHash3 and permutes with ``(a*h + b) mod (2^61 - 1)`` drawn from
``numpy.random.RandomState(seed)``, while rensa uses its own token hash and R-MinHash sketch. Each engine's
per-permutation collision probability is the pair's Jaccard similarity, so both follow the same LSH S-curve and
find the same clusters up to the randomness of borderline pairs; their band keys are not comparable bit for bit.

The pipelines need Ray and GPUs (RayActorPoolExecutor: a local Ray, or the cluster named by RAY_ADDRESS).
Tests: tests/oc_synth/curate/dedup/test_dedup_gpu.py (``@pytest.mark.gpu``), run by scripts/gpu_check_dedup.sh.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from nemo_curator.pipeline import Pipeline
from nemo_curator.stages.base import ProcessingStage
from nemo_curator.tasks import DocumentBatch

from oc_common.log import get_logger
from oc_common.stats import Stats
from oc_synth.curate.dedup.index import ROW_BITS, TEXT, IndexData, run_index, shard_numbers, shard_tasks
from oc_synth.curate.dedup.settings import DedupSettings
from oc_synth.minhash.shingles import WORD_RE
from oc_synth.pipeline.executors import curator_ray_executor
from oc_synth.pipeline.runner import Shard
from oc_synth.pipeline.stages import ShardReader

log = get_logger(__name__)

CURATOR_ID = "_curator_dedup_id"  # nemo_curator.stages.deduplication.id_generator.CURATOR_DEDUP_ID_STR
EXACT_GROUP = "_exact_duplicate_group"  # ...exact.identification.EXACT_DUPLICATE_GROUP_FIELD
FUZZY_GROUP = "_duplicate_group_id"  # ...fuzzy.utils.CURATOR_FUZZY_DUPLICATE_GROUP_FIELD


class CuratorIdStage(ProcessingStage[DocumentBatch, DocumentBatch]):
    """Keeps only what NeMo Curator's dedup stages read: ``_curator_dedup_id`` (our doc number) and the text
    (lower-cased when asked). Records without text are left out, as in the CPU engine."""

    name = "curator_dedup_ids"

    def __init__(self, numbers: dict[str, int], lowercase: bool = False):
        self.numbers = numbers  # shard name -> shard number
        self.lowercase = lowercase

    def inputs(self) -> tuple[list[str], list[str]]:
        return ["data"], []

    def outputs(self) -> tuple[list[str], list[str]]:
        return ["data"], [CURATOR_ID, TEXT]

    def process(self, batch: DocumentBatch) -> DocumentBatch:
        df = batch.to_pandas()
        text = df[TEXT] if TEXT in df.columns else pd.Series([None] * len(df), dtype=object)
        has_text = text.map(lambda t: isinstance(t, str)).to_numpy(bool)
        rows = np.nonzero(has_text)[0].astype(np.int64)
        docs = (np.int64(self.numbers[batch.dataset_name]) << np.int64(ROW_BITS)) | rows
        texts = text[has_text].astype(str)
        out = pd.DataFrame({CURATOR_ID: docs, TEXT: (texts.str.lower() if self.lowercase else texts).to_numpy()})
        return DocumentBatch(dataset_name=batch.dataset_name, data=out, _metadata=batch._metadata,
                             _stage_perf=batch._stage_perf)


def _exact_identification_class() -> type:
    from nemo_curator.stages.deduplication.exact.identification import ExactDuplicateIdentification

    class ClusteredExactIdentification(ExactDuplicateIdentification):
        """NeMo Curator's exact-duplicate shuffle, fed DocumentBatches, hashing with SHA-256 and writing every member
        of a duplicate group with its group (not only the ids to remove)."""

        def read_and_insert_batch(self, tasks: list[DocumentBatch]) -> list[DocumentBatch]:
            import cudf

            frames = [t.to_pandas()[[self.id_field, self.text_field]] for t in tasks]
            self.dataset_name = tasks[0].dataset_name
            self._hash_and_insert(cudf.from_pandas(pd.concat(frames, ignore_index=True)))
            return tasks

        def _hash_and_insert(self, df: Any) -> None:  # noqa: ANN401 - cudf.DataFrame
            self._check_actor_obj()
            hashed = df[[self.id_field]]
            hashed[EXACT_GROUP] = df[self.text_field].hash_values(method="sha256")
            self.output_columns = list(hashed.columns)
            self._actor_obj.insert_chunk(hashed, self.output_columns)

        def _get_removal_ids(self, df: Any) -> Any:  # noqa: ANN401
            return df[df[EXACT_GROUP].duplicated(keep=False)][[self.id_field, EXACT_GROUP]]

    return ClusteredExactIdentification


def _word_minhash_stage_class() -> type:
    from nemo_curator.stages.deduplication.fuzzy.minhash import GPUMinHash, MinHashStage

    class WordGPUMinHash(GPUMinHash):
        """MinHash over n-grams of words: cuDF's minhash of a list column hashes ``width`` consecutive list items."""

        def compute_minhashes(self, text_series: Any) -> Any:  # noqa: ANN401
            return super().compute_minhashes(text_series.str.findall(WORD_RE.pattern))

    class WordMinHashStage(MinHashStage):
        def setup(self, _worker_metadata: Any = None) -> None:  # noqa: ANN401
            super().setup(_worker_metadata)
            self.minhash_processor = WordGPUMinHash(seed=self.seed, num_hashes=self.num_hashes,
                                                    char_ngrams=self.char_ngrams, use_64bit_hash=self.use_64bit_hash,
                                                    pool=False)

    return WordMinHashStage


def _fuzzy_workflow(settings: DedupSettings, numbers: dict[str, int], cache: Path, out: Path) -> Any:  # noqa: ANN401
    from nemo_curator.stages.deduplication.fuzzy.minhash import MinHashStage
    from nemo_curator.stages.deduplication.fuzzy.workflow import FuzzyDeduplicationWorkflow

    mh = settings.minhash
    minhash_class = _word_minhash_stage_class() if mh.shingle == "word" else MinHashStage

    class ShardFuzzyWorkflow(FuzzyDeduplicationWorkflow):
        """The fuzzy workflow with our reader in front of its MinHash stage (everything after it is unchanged)."""

        def _create_minhash_pipeline(self, generate_input_filegroups: bool) -> Pipeline:
            stage = minhash_class(output_path=self.cache_path, text_field=TEXT, char_ngrams=self.char_ngrams,
                                  num_hashes=self.num_hashes, seed=self.seed, use_64bit_hash=self.use_64_bit_hash)
            return Pipeline(name="minhash_pipeline",
                            stages=[ShardReader(), CuratorIdStage(numbers, lowercase=mh.lowercase), stage])

    return ShardFuzzyWorkflow(cache_path=str(cache), output_path=str(out), text_field=TEXT, seed=mh.seed,
                              char_ngrams=mh.ngram, num_bands=mh.bands, minhashes_per_band=mh.rows)


def _read_groups(directory: Path, group_field: str) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(directory.glob("*.parquet")) if directory.exists() else []
    if not files:
        return np.zeros(0, np.int64), np.zeros(0, object)
    table = pq.read_table(files, columns=[CURATOR_ID, group_field])
    docs = table.column(CURATOR_ID).to_numpy().astype(np.int64)
    return docs, table.column(group_field).to_numpy(zero_copy_only=False)


def labels_from_groups(data: IndexData, docs: np.ndarray, groups: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Turn (doc, group) rows into position labels (a group's label = its smallest position among ``members``);
    records in no group are their own cluster, records outside ``members`` get -1."""
    all_docs = data.docs  # ascending: shard-major, row-minor
    labels = np.where(members, np.arange(len(data)), -1).astype(np.int64)
    if len(docs) == 0:
        return labels
    pos = np.searchsorted(all_docs, docs)
    if (pos >= len(all_docs)).any() or not np.array_equal(all_docs[np.minimum(pos, len(all_docs) - 1)], docs):
        raise RuntimeError("NeMo Curator returned document ids that are not in the index")
    keep = members[pos]
    pos, groups = pos[keep], groups[keep]
    _, group_no = np.unique(groups, return_inverse=True)
    first = np.full(group_no.max() + 1 if len(group_no) else 0, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, group_no, pos)
    labels[pos] = first[group_no]
    return labels


class GpuEngine:
    name = "gpu"

    def describe(self) -> str:
        from importlib.metadata import version

        return f"GPU: NeMo Curator {version('nemo-curator')} (cuDF SHA-256 shuffle, MinHash + LSH + cuGraph WCC)"

    def index(self, shards: Sequence[Shard], work: Path, settings: DedupSettings, executor: str,
              quiet: bool) -> int:
        # Keep-rule fields and SHA-256 cluster names come from the same CPU index pass as on CPU (no band keys).
        # NeMo Curator's stages do not resume, so they run over every shard each time.
        indexed = run_index(shards, work / "index", settings, compute_bands=False, executor=executor, quiet=quiet)
        numbers = shard_numbers(shards)
        if settings.exact:
            out = work / "gpu_exact"
            shutil.rmtree(out, ignore_errors=True)
            stage = _exact_identification_class()(text_field=TEXT, output_path=str(out), assign_id=False,
                                                  id_field=CURATOR_ID)
            Pipeline(name="dedup_exact_gpu", stages=[ShardReader(), CuratorIdStage(numbers), stage]).run(
                curator_ray_executor(), initial_tasks=shard_tasks(shards))
        if settings.fuzzy:
            cache, out = work / "gpu_fuzzy" / "cache", work / "gpu_fuzzy" / "out"
            shutil.rmtree(work / "gpu_fuzzy", ignore_errors=True)
            _fuzzy_workflow(settings, numbers, cache, out).run(initial_tasks=shard_tasks(shards),
                                                      executor=curator_ray_executor())
        return indexed

    def exact_labels(self, data: IndexData, work: Path) -> np.ndarray:
        docs, groups = _read_groups(work / "gpu_exact" / "ExactDuplicateIds", EXACT_GROUP)
        labels = labels_from_groups(data, docs, groups, data.has_text)
        cpu = data.exact_labels()  # the index holds SHA-256 too: the two must agree exactly
        if not np.array_equal(labels, cpu):
            raise RuntimeError("GPU exact groups differ from the SHA-256 groups of the index")
        return labels

    def fuzzy_labels(self, data: IndexData, candidates: np.ndarray, work: Path, settings: DedupSettings,
                     stats: Stats, quiet: bool) -> np.ndarray:
        docs, groups = _read_groups(work / "gpu_fuzzy" / "cache" / "ConnectedComponentsStage", FUZZY_GROUP)
        stats.add("records_in_candidate_pairs", len(docs))
        return labels_from_groups(data, docs, groups, candidates)
