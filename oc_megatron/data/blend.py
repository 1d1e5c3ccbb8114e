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
``OUTPUT/data_blend.json``. SFT data (``oc_megatron.data.sft.SFTDataset``) goes through the same batch layout.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def build_datasets(cfg, eod_id: int, train_samples: int, seed: int | None = None):
    """(train_dataset, valid_dataset or None) for ``cfg`` (a TrainConfig with ``data.blend``), the training split
    holding at least ``train_samples`` samples. Call on every rank."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    t, d = cfg.train, cfg.data
    gbs = t.global_batch_size
    train_samples = max(train_samples, gbs)
    valid_samples = t.eval_iters * gbs if t.eval_interval > 0 else 0
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
        sequence_length=cfg.seq_length,
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
