"""Training and validation data: Megatron-Core's blended GPTDataset over weighted indexed-dataset prefixes.

``build_datasets`` returns the train and validation datasets (``BlendedMegatronDatasetBuilder``: each prefix is
split train/valid/test by ``data.split`` unless ``data.valid_blend`` is given, then blended by weight; index caches
are built once by rank 0 and reused by every rank and run).

Batches are drawn by position, not by iterator state: a step starting at data position ``c`` (``consumed_samples``,
saved in checkpoints) uses samples ``[c, c+G)`` (G = global batch size), and microbatch ``m`` of data-parallel rank
``r`` takes the ``k = m*DP + r``-th block of ``micro_batch_size`` samples in it. The global batch and the microbatch
contents are therefore the same for every parallel layout. Validation always uses the same first ``eval_iters``
global batches of the validation split, so its loss is comparable across evaluations and runs.

``blend_report`` says what a run samples: each source's configured weight and share, and how many of the run's
samples really come from it (read from the blended dataset's index); the trainer logs it and writes
``OUTPUT/data_blend.json``.

The trainer asks a batch source for ``step(position)`` -> ``StepBatch`` (how many microbatches, samples and tokens
the step has, and this rank's microbatches); ``PretrainBatches`` is the GPTDataset's, ``oc_megatron.data.sft.
SFTBatches`` the SFT one. With ``train.phases`` each phase has its own GPTDataset (its sequence length) and the data
continues at the same token position: a phase starting after ``c`` samples of length ``L`` reads its dataset from
sample ``c * L // L'`` (``phase_position``).

``check_splits`` (called by ``TrainConfig.check_data``, before any work) refuses a blend or split that leaves a
dataset without a document for a split it must build (Megatron-Core's GPTDataset would loop forever looking for
tokens), naming the key and the numbers; ``source_splits`` gives the documents and tokens of every source's splits
(``train --plan`` prints them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oc_common.errors import ConfigError
from oc_common.log import get_logger

log = get_logger(__name__)


class DatasetTokenizer:
    """The little of a tokenizer that GPTDataset uses: the EOD id. Token dtype comes from each .idx header."""

    def __init__(self, eod_id: int, name: str) -> None:
        self._eod = eod_id
        self.vocab_size = None  # None: read the token dtype from the .idx file instead of guessing from the vocab
        self.unique_identifiers = {"class": "oc_megatron.DatasetTokenizer", "eod": eod_id, "tokenizer": name}

    @property
    def eod(self) -> int:
        return self._eod

    @property
    def eos(self) -> int:
        return self._eod

    @property
    def pad(self) -> int:
        return -1  # never a real token id; GPTDataset masks labels equal to it


def _blend(sources) -> tuple[list[str], list[float]]:
    return [s.path for s in sources], [s.weight for s in sources]


SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class SourceSplits:
    """One blend source's documents and tokens in each split (``data.split``, or all of it for ``valid_blend``)."""

    key: str  # e.g. data.blend[0]
    path: str
    documents: int
    tokens: int
    split_documents: tuple[int | None, int | None, int | None]  # None: the split is not built (share 0)
    split_tokens: tuple[int | None, int | None, int | None]


def _index_lengths(prefix: str):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    dataset = IndexedDataset(prefix)  # kept alive while copying: its index is an mmap closed on deletion
    lengths = np.array(dataset.sequence_lengths, dtype=np.int64)
    del dataset
    return lengths


def source_splits(cfg) -> list[SourceSplits]:
    """Documents and tokens of every ``data.blend`` / ``data.valid_blend`` source per split, as Megatron-Core's
    builder cuts them (``split_matrix``: documents ``[round(lo * N), round(hi * N))``). Reads only the .idx files."""
    from megatron.core.datasets.blended_megatron_dataset_config import (
        convert_split_vector_to_split_matrix,
        parse_and_normalize_split,
    )

    d = cfg.data
    out = []
    if d.valid_blend:
        groups = [("data.blend", d.blend, [(0.0, 1.0), None, None]),
                  ("data.valid_blend", d.valid_blend, [None, (0.0, 1.0), None])]
    else:
        groups = [("data.blend", d.blend, convert_split_vector_to_split_matrix(parse_and_normalize_split(d.split)))]
    for key, sources, matrix in groups:
        for i, src in enumerate(sources):
            lengths = _index_lengths(src.path)
            n = len(lengths)
            docs, tokens = [], []
            for bounds in matrix:
                if bounds is None:
                    docs.append(None)
                    tokens.append(None)
                    continue
                lo, hi = int(round(bounds[0] * n)), int(round(bounds[1] * n))
                docs.append(hi - lo)
                tokens.append(int(lengths[lo:hi].sum()))
            out.append(SourceSplits(f"{key}[{i}]", src.path, n, int(lengths.sum()), tuple(docs), tuple(tokens)))
    return out


def check_splits(cfg) -> list[SourceSplits]:
    """Refuse, before any work, a source whose documents leave a split it must build empty. Returns the splits."""
    splits = source_splits(cfg)
    for s in splits:
        for k, name in enumerate(SPLIT_NAMES):
            if s.split_documents[k] is None or s.split_tokens[k] > 0:
                continue
            if cfg.data.valid_blend:  # each source is used whole
                raise ConfigError(f"{s.key}.path: {s.path} has no tokens ({s.documents} documents): every source "
                                  "needs at least one document")
            parts = [float(x) for x in cfg.data.split.split(",")]
            share = f"{parts[k]:g}/{sum(parts):g}"
            fix = ("add documents, give the split more share, or set data.split so that this split is 0 "
                   "(e.g. 100,0,0 with train.eval_interval 0) or use data.valid_blend")
            raise ConfigError(f"data.split: {cfg.data.split!r} leaves {s.key} ({s.path}: {s.documents} documents, "
                              f"{s.tokens} tokens) with {s.split_documents[k]} documents in the {name} split "
                              f"(a {share} share of {s.documents} documents rounds to none); Megatron-Core cannot "
                              f"draw samples from an empty split: {fix}")
    return splits


def build_datasets(cfg, eod_id: int, train_samples: int, seed: int | None = None, phase=None, valid: bool = True):
    """(train_dataset, valid_dataset or None) for ``cfg`` (a TrainConfig with ``data.blend``), the training split
    holding at least ``train_samples`` samples of the phase's length (default: the first phase); the validation
    split ``train.eval_iters`` batches when ``valid`` and the run validates. Call on every rank."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    t, d = cfg.train, cfg.data
    phase = phase or cfg.phases[0]
    gbs = phase.global_batch_size
    train_samples = max(train_samples, gbs)
    valid_samples = t.eval_iters * gbs if valid and t.eval_interval > 0 else 0
    kwargs: dict[str, Any] = {}
    if d.valid_blend:
        kwargs["blend_per_split"] = [_blend(d.blend), _blend(d.valid_blend), None]
    else:
        if valid_samples and float(d.split.split(",")[1]) == 0:
            raise ConfigError("data.split: the validation share is 0 but train.eval_interval > 0 (set a valid share "
                              "like 99,1,0, or data.valid_blend)")
        kwargs["blend"] = _blend(d.blend)
        kwargs["split"] = d.split
    config = GPTDatasetConfig(
        random_seed=t.seed if seed is None else seed,
        sequence_length=phase.seq_length,
        path_to_cache=d.cache_dir,
        tokenizer=DatasetTokenizer(eod_id, d.tokenizer),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        create_attention_mask=False,
        mmap_bin_files=True,
        **kwargs,
    )
    train, valid, _ = BlendedMegatronDatasetBuilder(
        GPTDataset, [train_samples, valid_samples, 0], lambda: True, config).build()
    return train, (valid if valid_samples else None)


@dataclass(frozen=True)
class BatchLayout:
    global_batch_size: int
    micro_batch_size: int
    data_parallel_size: int
    data_parallel_rank: int

    @property
    def num_microbatches(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.data_parallel_size)

    def sample_indices(self, first_sample: int, microbatch: int) -> range:
        """This rank's samples of microbatch ``microbatch`` in the global batch starting at ``first_sample``."""
        block = microbatch * self.data_parallel_size + self.data_parallel_rank
        first = first_sample + block * self.micro_batch_size
        return range(first, first + self.micro_batch_size)


BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids", "segment_ids")


def collate(dataset, indices: range) -> dict[str, torch.Tensor]:
    """Stack samples into a microbatch of [b, s] tensors: tokens, labels, loss_mask, position_ids (+ segment_ids for
    SFT sequences, whose samples must not attend to each other)."""
    samples = [dataset[i] for i in indices]
    return {k: torch.stack([s[k] for s in samples]) for k in BATCH_KEYS if k in samples[0]}


def collate_metadata(dataset, indices: range) -> dict[str, torch.Tensor] | None:
    """What a pipeline stage without the embedding and the loss still needs: the sample boundaries of packed
    sequences (positions and segments, for RoPE and the attention mask). None for pretraining data (plain causal)."""
    if not hasattr(dataset, "metadata"):
        return None
    samples = [dataset.metadata(i) for i in indices]
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def microbatch_iterator(dataset, layout: BatchLayout, first_sample: int, needs_data: bool = True):
    """The microbatches of one global batch for this rank. Pipeline stages that need no tokens or labels get only the
    sequence metadata (``collate_metadata``) -- every stage of a packed sequence needs its sample boundaries."""
    for m in range(layout.num_microbatches):
        indices = layout.sample_indices(first_sample, m)
        yield collate(dataset, indices) if needs_data else collate_metadata(dataset, indices)


@dataclass
class StepBatch:
    """One global batch: its size (all ranks) and this rank's microbatches.

    ``microbatches(needs_data)`` yields ``num_microbatches`` dicts of [b, s] tensors (tokens, labels, loss_mask,
    position_ids, + segment_ids for SFT), or for a pipeline stage that needs no tokens only the sequence metadata
    (None for pretraining, whose middle stages need nothing)."""

    num_microbatches: int
    micro_batch_size: int
    seq_length: int
    samples: int  # samples (pretraining: sequences; SFT: conversations) in the step
    tokens: int  # input positions holding a real token (padding excluded)
    positions: int  # input positions computed, padding included (what FLOPs are counted on)
    microbatches: Callable[[bool], Iterator[dict[str, torch.Tensor] | None]] = field(repr=False)
    extra: dict[str, int] = field(default_factory=dict)  # e.g. SFT: sequences, trained_tokens


class PretrainBatches:
    """Global batches of a GPTDataset: step at data position ``c`` = samples ``[c, c+G)``, in ``layout``'s blocks."""

    def __init__(self, dataset, layout: BatchLayout, seq_length: int) -> None:
        self.dataset, self.layout, self.seq_length = dataset, layout, seq_length

    def step(self, position: int) -> StepBatch:
        g = self.layout.global_batch_size
        positions = g * self.seq_length
        return StepBatch(self.layout.num_microbatches, self.layout.micro_batch_size, self.seq_length, g, positions,
                         positions,
                         lambda needs_data: microbatch_iterator(self.dataset, self.layout, position, needs_data))


def phase_position(consumed_samples: int, from_seq_length: int, to_seq_length: int) -> int:
    """The data position of a new phase: the sample of length ``to_seq_length`` at the token where the previous
    phase stopped (``consumed_samples`` of ``from_seq_length``)."""
    return consumed_samples * from_seq_length // to_seq_length


def blend_report(cfg, dataset, first_sample: int, num_samples: int) -> dict[str, Any]:
    """The configured blend and the realised one over samples ``[first_sample, first_sample + num_samples)``."""
    sources = cfg.data.blend
    total_weight = sum(s.weight for s in sources)
    index = getattr(dataset, "dataset_index", None)  # BlendedDataset: which source each sample comes from
    if index is None or len(sources) == 1:
        counts = [num_samples] + [0] * (len(sources) - 1)
    else:
        window = np.asarray(index[first_sample: first_sample + num_samples])
        counts = np.bincount(window, minlength=len(sources)).tolist()
    return {
        "first_sample": first_sample,
        "samples": num_samples,
        "sources": [{"name": s.label, "path": s.path, "weight": s.weight, "share": s.weight / total_weight,
                     "samples": int(n), "sampled_share": n / max(num_samples, 1)}
                    for s, n in zip(sources, counts, strict=True)],
    }


def format_blend(report: dict[str, Any]) -> str:
    return ", ".join(f"{s['name']} {s['share']:.2%} (weight {s['weight']:g}; {s['samples']} samples = "
                     f"{s['sampled_share']:.2%})" for s in report["sources"])
