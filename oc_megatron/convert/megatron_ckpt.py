"""Megatron-Core torch_dist checkpoints for conversion: one streaming read, one streaming write, one process.

A torch_dist checkpoint stores *global* tensors cut into the pieces each rank saved, so one process can place any
piece whatever TP / PP wrote it. Conversion does both directions with the format read and written directly
(``torch_dist``): no process group, no Megatron-Core model, no CPU shim.

* reading (to-hf): :class:`CheckpointReader` lists the saved chunks of the mapping table's tensors from the
  checkpoint's metadata, reads every file once, front to back, verifying its checksum as it goes, and turns each chunk
  into the HF pieces it holds (:meth:`CheckpointReader.hf_pieces`): with the table's row runs a chunk (a layer's
  tensor, or a TP rank's rows or columns of it) goes straight to its rows and columns of the HF tensors. Peak memory
  is a few chunks (the largest is the embedding), not the model;
* writing (from-hf): :func:`write_checkpoint` writes the records Megatron-Core's own save of the model writes (the
  local layer spec at TP = PP = 1: per-layer chunks of the stacked ``decoder.layers.*`` tensors, the two SwiGLU halves
  of ``linear_fc1`` as separate chunks, the ``_extra_state`` objects), each produced from the HF files when its turn
  comes. Tests compare the metadata with Megatron-Core's sharded state dict and load the result there at TP / PP.

The checkpoint layout (``iter_NNNNNNN/``, ``latest_checkpointed_iteration.txt``, ``train_state`` in the common
state) is the trainer's (``oc_megatron.training.checkpoint``); this module reuses its helpers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from oc_common.errors import ConversionError
from oc_common.log import get_logger
from oc_megatron.convert import llama_mapping as lm
from oc_megatron.convert import torch_dist as td
from oc_megatron.convert import torch_record as tr

log = get_logger(__name__)

LAYER_PLACEHOLDER = "{i}."

# The linear modules whose ``_extra_state`` Megatron-Core's local layer spec saves, per layer, as ShardedObjects
# (their data is None; Transformer Engine's modules save FP8 metadata under the same keys).
EXTRA_STATE_MODULES = ("self_attention.linear_proj", "self_attention.linear_qkv", "mlp.linear_fc1",
                       "mlp.linear_fc2")


def disk_key(template: str) -> str:
    """The checkpoint key of a mapping's Megatron tensor: per-layer names live in one stacked tensor."""
    return template.replace(LAYER_PLACEHOLDER, "")


def is_stacked(mapping: lm.Mapping) -> bool:
    return LAYER_PLACEHOLDER in mapping.megatron


# --------------------------------------------------------------------------------------------------------------------
# Finding a checkpoint and its model config


def find_checkpoint(ckpt_dir: str | Path, iteration: int | None) -> Path:
    """The iteration directory to convert: ``--iteration N`` or the latest complete one (or ``ckpt_dir`` itself)."""
    from oc_megatron.training.checkpoint import iteration_dir, resolve_checkpoint

    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise ConversionError(f"{ckpt_dir}: checkpoint directory not found")
    if iteration is None:
        try:
            return resolve_checkpoint(ckpt_dir)
        except (FileNotFoundError, ValueError) as e:
            raise ConversionError(str(e)) from None
    path = iteration_dir(ckpt_dir, iteration)
    if not (path / "metadata.json").is_file():
        done = sorted(int(p.name[5:]) for p in ckpt_dir.glob("iter_[0-9]*")
                      if p.name[5:].isdigit() and (p / "metadata.json").is_file())
        raise ConversionError(f"{ckpt_dir}: no complete checkpoint for iteration {iteration} "
                              f"(available: {', '.join(map(str, done)) or 'none'})")
    return path


def read_common_state(path: Path, recorded: td.RecordedChecksums | None = None) -> dict[str, Any]:
    """The checkpoint's common state (``common.pt``: ``train_state``), read as Megatron-Core reads it (``torch.load``
    with torch's default ``weights_only``), verified against its checksum when ``recorded`` is given."""
    recorded = recorded if recorded is not None else td.RecordedChecksums(path)
    raw = td.read_small_file(path, td.COMMON_FILE, recorded)
    try:
        common = torch.load(io.BytesIO(raw), map_location="cpu")
    except Exception as e:  # noqa: BLE001 - a damaged common.pt surfaces as various errors
        raise ConversionError(f"{path / td.COMMON_FILE}: not readable ({type(e).__name__}: {e})") from None
    if not isinstance(common, dict):
        raise ConversionError(f"{path / td.COMMON_FILE}: not a checkpoint's common state")
    return common


def checkpoint_model_config(common: dict[str, Any]):
    """The ModelConfig saved in the checkpoint's ``train_state`` (None if the checkpoint has none)."""
    from oc_megatron.models.opencoder import ModelConfig

    model = (common.get("train_state") or {}).get("model")
    return ModelConfig.model_validate(model) if model else None


# --------------------------------------------------------------------------------------------------------------------
# Reading


class CheckpointReader:
    """The mapping table's tensors of one checkpoint, in saved chunks (any TP / PP layout).

    The embedding rows are the checkpoint's own (its padded vocabulary, ``vocab_rows``); the model config gives the
    real vocabulary, which to-hf keeps. ``recorded``: the checkpoint's checksums (verified as files are read).
    """

    def __init__(self, path: Path, model, recorded: td.RecordedChecksums | None = None) -> None:  # noqa: ANN001
        self.path = path
        self.model = model
        self.recorded = recorded if recorded is not None else td.RecordedChecksums(path)
        td.check_backend(path, td.read_small_file(path, td.CONFIG_FILE, self.recorded))
        self.metadata = td.read_metadata(path, td.read_small_file(path, td.METADATA_FILE, self.recorded))
        self.table = lm.Table.of(model)
        embedding = disk_key(self.table.first[0].megatron)
        shape = td.global_shape(self.metadata, embedding)
        if shape is None:
            raise ConversionError(f"{path}: checkpoint does not match the model config: missing {embedding}")
        self.vocab_rows = shape[0]
        if self.vocab_rows < model.vocab_size:
            raise ConversionError(f"{path}: the checkpoint's embedding has {self.vocab_rows} rows, fewer than the "
                                  f"model config's vocab_size {model.vocab_size}")
        self.dims = lm.Dims.of(model, vocab_rows=self.vocab_rows)
        self._check_shapes()
        self._by_key = {disk_key(m.megatron): m for m in self.table.entries}

    def _check_shapes(self) -> None:
        """Every table tensor must be in the checkpoint with the shape the model config implies."""
        L = self.model.num_layers
        problems = []
        for m in self.table.entries:
            key = disk_key(m.megatron)
            expected = m.megatron_shape(self.dims)
            if is_stacked(m):
                expected = (L, *expected)
            saved = td.global_shape(self.metadata, key)
            if saved is None:
                per_layer = m.megatron.format(i=0)
                hint = " (per-layer keys: a non-homogeneous checkpoint layout, not supported)" \
                    if per_layer in self.metadata.state_dict_metadata else ""
                problems.append(f"missing {key}{hint}")
            elif saved != expected:
                problems.append(f"{key} has shape {list(saved)}, the model config implies {list(expected)}")
        if problems:
            raise ConversionError(f"{self.path}: checkpoint does not match the model config: " + "; ".join(problems))

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the weights were saved in."""
        return self.metadata.state_dict_metadata[disk_key(self.table.first[0].megatron)].properties.dtype

    def chunks(self) -> list[td.Chunk]:
        """The saved chunks of every table tensor (a vector or a matrix per layer)."""
        out = []
        for m in self.table.entries:
            key = disk_key(m.megatron)
            if len(td.global_shape(self.metadata, key)) - is_stacked(m) not in (1, 2):
                raise ConversionError(f"{self.path}: {key} is neither a vector nor a matrix per layer")
            out += td.tensor_chunks(self.path, self.metadata, key)
        return out

    def stream(self) -> Iterator[td.Rows]:
        """Every chunk's data in runs of rows, in file order; each file read once and verified on the way (see
        ``torch_dist.ChunkStream``: a ``Rows`` is valid until the next one is asked for)."""
        return iter(td.ChunkStream(self.path, self.chunks(), self.recorded))

    def hf_pieces(self, rows: td.Rows) -> Iterator[tuple[str, int, int, torch.Tensor]]:
        """``(hf name, first row, first column, piece)`` for each part of an HF tensor that ``rows`` (of a chunk
        seen as ``torch_dist.rows_view``) hold."""
        chunk, first_row, block = rows.chunk, rows.first, rows.tensor
        mapping = self._by_key[chunk.key]
        stacked = is_stacked(mapping)
        offsets = chunk.offsets[1:] if stacked else chunk.offsets  # within one layer's tensor
        sizes = chunk.sizes[1:] if stacked else chunk.sizes
        parts: list[tuple[int | None, int, int, torch.Tensor]] = []  # (layer, first row, first column, piece)
        if len(sizes) == 1:  # a vector per layer: each block row is one layer's piece (or the whole chunk)
            for k in range(block.shape[0]):
                parts.append((chunk.offsets[0] + first_row + k if stacked else None, offsets[0], 0, block[k]))
        else:  # a matrix per layer: block rows are its rows, layer after layer
            rows = sizes[0]
            f, end = first_row, first_row + block.shape[0]
            while f < end:
                layer, r = divmod(f, rows) if stacked else (0, f)
                n = min(end, f - r + rows) - f if stacked else end - f
                parts.append((chunk.offsets[0] + layer if stacked else None, offsets[0] + r, offsets[1],
                              block[f - first_row:f - first_row + n]))
                f += n
        for layer, row0, col0, piece in parts:
            end = row0 + piece.shape[0]
            for run in mapping.hf_rows(self.dims, layer):
                a, b = max(run.megatron_row, row0), min(run.megatron_row + run.count, end)
                if a < b:
                    yield run.hf, run.hf_row + (a - run.megatron_row), col0, piece[a - row0:b - row0]

    def load(self, mapping: lm.Mapping, layer: int | None = None) -> torch.Tensor:
        """One whole global tensor (one layer of a stacked one), assembled from its chunks: random access for tests
        and checks, unverified."""
        key = disk_key(mapping.megatron)
        shape = td.global_shape(self.metadata, key)
        want = shape[1:] if layer is not None else shape
        out = torch.empty(want, dtype=self.metadata.state_dict_metadata[key].properties.dtype)
        for c in td.tensor_chunks(self.path, self.metadata, key):
            if layer is not None and not c.offsets[0] <= layer < c.offsets[0] + c.sizes[0]:
                continue
            with open(self.path / c.file, "rb") as f:
                f.seek(c.begin)
                buf = bytearray(f.read(c.length))
            t = tr.tensor_from_record(buf, f"{self.path / c.file}")
            offsets, t = (c.offsets[1:], t[layer - c.offsets[0]]) if layer is not None else (c.offsets, t)
            out[tuple(slice(o, o + s) for o, s in zip(offsets, t.shape, strict=True))] = t
        return out


# --------------------------------------------------------------------------------------------------------------------
# Writing


def megatron_sources(mapping: lm.Mapping, layer: int | None, dims: lm.Dims, hf, rows: tuple[int, int]  # noqa: ANN001
                     ) -> list[td.Source]:
    """Where rows ``[rows[0], rows[1])`` of the Megatron tensor of ``mapping`` (one layer's) are in the HF files, in
    order: slices of the HF tensors' bytes (the table's row runs), and the vocabulary padding rows, which repeat the
    last real row (Megatron-LM's converter's rule, as ``VocabRows.to_megatron``). ``hf``: the ``HFModelDir``."""
    from oc_megatron.convert.hf import TensorEntry, read_tensor

    out: list[td.Source] = []
    row = rows[0]
    for run in sorted(mapping.hf_rows(dims, layer), key=lambda r: r.megatron_row):
        a, b = max(run.megatron_row, row), min(run.megatron_row + run.count, rows[1])
        if a >= b:
            continue
        if a != row:
            raise RuntimeError(f"{mapping.megatron}: rows {row}..{a} have no HF source")
        entry = hf.tensors[run.hf]
        row_bytes = entry.dtype.itemsize * max(1, _numel(entry.shape[1:]))
        first = run.hf_row + (a - run.megatron_row)
        out.append(td.FileSlice(entry.file, entry.begin + first * row_bytes, (b - a) * row_bytes, entry.dtype))
        row = b
    if row < rows[1]:
        if not isinstance(mapping, lm.VocabRows):
            raise RuntimeError(f"{mapping.megatron}: rows {row}..{rows[1]} have no HF source")
        entry = hf.tensors[mapping.hf]
        row_bytes = entry.dtype.itemsize * _numel(entry.shape[1:])
        last = read_tensor(TensorEntry(entry.file, entry.dtype, (1, *entry.shape[1:]), entry.end - row_bytes,
                                       entry.end))  # the padding repeats the last real row
        out.append(last.expand(rows[1] - row, -1))
    return out


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def write_checkpoint(path: Path, model, dtype: torch.dtype, hf, train_state: dict[str, Any],  # noqa: ANN001
                     vocab_rows: int) -> None:
    """Write the torch_dist checkpoint of ``model`` from HF model directory ``hf`` into ``path`` (an empty ``iter_N``
    directory), checksums included: the records Megatron-Core's save of the model writes at TP 1 (per-layer chunks of
    the stacked layer tensors, ``linear_fc1`` as its two SwiGLU halves, the ``_extra_state`` objects), each written
    straight from the HF files' bytes (``megatron_sources``). ``vocab_rows``: the embedding rows (the padded
    vocabulary).
    """
    table = lm.Table.of(model)
    dims = lm.Dims.of(model, vocab_rows=vocab_rows)
    L = model.num_layers

    def add(writer: td.CheckpointWriter, mapping: lm.Mapping, layer: int | None) -> None:
        shape = mapping.megatron_shape(dims)
        key = disk_key(mapping.megatron)
        # Megatron-Core's SwiGLU factory saves linear_fc1 as two chunks, the gate and the up halves
        pieces = [(0, dims.ffn), (dims.ffn, 2 * dims.ffn)] if isinstance(mapping, lm.GatedMLP) else [(0, shape[0])]
        for first, end in pieces:
            sources = megatron_sources(mapping, layer, dims, hf, (first, end))
            sizes = (end - first, *shape[1:])
            zeros = [0] * (len(shape) - 1)
            if layer is None:
                writer.add_tensor(key, shape, (first, *zeros), sizes, dtype, sources)
            else:
                writer.add_tensor(key, (L, *shape), (layer, first, *zeros), (1, *sizes), dtype, sources)

    with td.CheckpointWriter(path) as writer:
        for m in table.first:
            add(writer, m, None)
        for i in range(L):
            for m in table.per_layer:
                add(writer, m, i)
            for module in EXTRA_STATE_MODULES:
                writer.add_object(f"decoder.layers.{module}._extra_state/shard_{i}_{L}", None)
        for m in table.last:
            add(writer, m, None)
        writer.close({"train_state": train_state})
