"""Training and validation data: Megatron-Core's blended GPTDataset over weighted indexed-dataset prefixes.

``build_datasets`` returns the train and validation datasets (``BlendedMegatronDatasetBuilder``: each prefix is
split train/valid/test by ``data.split`` unless ``data.valid_blend`` is given, then blended by weight; index caches
are built once by rank 0 and reused by every rank and run).

Batches are drawn by position, not by iterator state: step ``s`` uses samples ``[s*G, (s+1)*G)`` (G = global batch
size), and microbatch ``m`` of data-parallel rank ``r`` takes the ``k = m*DP + r``-th block of ``micro_batch_size``
samples in it. The global batch and the microbatch contents are therefore the same for every parallel layout, and
the data position is just ``consumed_samples`` (saved in checkpoints). Validation always uses the same first
``eval_iters`` global batches of the validation split, so its loss is comparable across evaluations and runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from oc_common.config import ConfigError
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


def build_datasets(cfg, eod_id: int, seed: int | None = None):
    """(train_dataset, valid_dataset or None) for ``cfg`` (a TrainConfig). Call on every rank."""
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    t, d = cfg.train, cfg.data
    gbs = t.global_batch_size
    train_samples = max(t.iters, 1) * gbs
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

    def sample_indices(self, step: int, microbatch: int) -> range:
        block = microbatch * self.data_parallel_size + self.data_parallel_rank
        first = step * self.global_batch_size + block * self.micro_batch_size
        return range(first, first + self.micro_batch_size)


def collate(dataset, indices: range) -> dict[str, torch.Tensor]:
    """Stack GPTDataset samples into a microbatch: tokens, labels, loss_mask [b, s], position_ids [b, s]."""
    samples = [dataset[i] for i in indices]
    return {k: torch.stack([s[k] for s in samples]) for k in ("tokens", "labels", "loss_mask", "position_ids")}


def microbatch_iterator(dataset, layout: BatchLayout, step: int, needs_data: bool = True):
    """The microbatches of one step for this rank; pipeline stages that need no data get ``None`` each time."""
    for m in range(layout.num_microbatches):
        yield collate(dataset, layout.sample_indices(step, m)) if needs_data else None
