"""Megatron-Core torch_dist checkpoint -> HF ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` directory (``oc-megatron
convert to-hf``).

Works from a checkpoint saved at any TP / PP, in one CPU process, in one pass: each checkpoint file is read once,
front to back, its SHA-256 computed on the way and checked against ``checksums.json`` (a corrupt file is refused by
name and nothing is published), and each saved chunk is written straight to its rows and columns of the HF tensors
(the mapping table's row runs) in the pre-sized safetensors files. Peak memory is a few chunks (the largest is the
embedding or output matrix), independent of ``--max-shard-size``. The padded vocabulary rows are dropped: the HF
model has the model config's ``vocab_size`` rows. No process group, no Megatron-Core import (see ``megatron_ckpt``).

Output: ``config.json`` (``LlamaForCausalLM``, or ``Qwen2ForCausalLM`` for a model with q/k/v biases: RoPE theta,
RMSNorm eps, tied or untied embeddings, vocab size), ``generation_config.json``, tokenizer files,
``model-0000k-of-0000n.safetensors`` + ``model.safetensors.index.json``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from oc_common.errors import ConversionError
from oc_common.fileio import atomic_write_json
from oc_common.log import get_logger
from oc_megatron.convert.from_hf import HF_ASSETS, SOURCE_CONFIG
from oc_megatron.convert.hf import (
    ARCHITECTURE_FIELDS,
    DTYPES,
    SafetensorsShardWriter,
    TokenizerSummary,
    check_tokenizer_fits,
    copy_tokenizer_files,
    dtype_name,
    generation_config,
    hf_config,
    parse_size,
    read_tokenizer,
)
from oc_megatron.convert.staging import check_output_dir, staged_output_dir

log = get_logger(__name__)


@dataclass(frozen=True)
class ToHFResult:
    hf_dir: Path
    checkpoint: Path
    dtype: str
    shards: int
    seconds: float


def _model_config(saved, preset: str | None, config: str | None, path: Path):  # noqa: ANN001 - ModelConfig | None
    """The checkpoint's own model config; ``--preset`` / ``--config`` only for checkpoints that lack one."""
    from oc_common.config import read_yaml
    from oc_common.errors import ConfigError
    from oc_megatron.models.opencoder import ModelConfig

    given = None
    if preset is not None and config is not None:
        raise ConversionError("pass --preset or --config, not both")
    try:
        if preset is not None:
            given = ModelConfig.from_preset(preset)
        elif config is not None:
            data = read_yaml(config)
            given = ModelConfig.model_validate(data.get("model", data) if isinstance(data, dict) else data)
    except (ValueError, ConfigError) as e:
        raise ConversionError(f"model config: {e}") from None
    if saved is None:
        if given is None:
            raise ConversionError(f"{path}: the checkpoint records no model config (train_state.model); "
                                  "pass --preset NAME or --config TRAIN.yaml")
        return given
    if given is not None:
        ours, theirs = saved.model_dump(), given.model_dump()
        diff = [f"{k}: checkpoint {ours[k]} vs given {theirs[k]}" for k in ARCHITECTURE_FIELDS if ours[k] != theirs[k]]
        if diff:
            raise ConversionError(f"{path}: the checkpoint's model config differs from --preset/--config: "
                                  + "; ".join(diff))
    return saved


def _find_tokenizer(tokenizer: str | None, no_tokenizer: bool, ckpt_root: Path, common: dict) -> Path | None:
    """--tokenizer, else the one from-hf carried along (hf_assets), else the one training recorded."""
    if no_tokenizer:
        if tokenizer is not None:
            raise ConversionError("pass --tokenizer or --no-tokenizer, not both")
        return None
    if tokenizer is not None:
        return Path(tokenizer)
    assets = ckpt_root / HF_ASSETS
    if (assets / "tokenizer.json").is_file() or (assets / "tokenizer.model").is_file():
        return assets
    recorded = (common.get("train_state") or {}).get("tokenizer")
    if recorded and Path(recorded).is_dir():
        return Path(recorded)
    raise ConversionError(f"{ckpt_root}: no tokenizer recorded with this checkpoint: pass --tokenizer DIR (the "
                          "tokenizer the model was trained with) or --no-tokenizer")


def _special_ids(assets: Path, tok: TokenizerSummary | None, explicit_tokenizer: bool) -> tuple:
    """BOS/EOS ids: an explicit --tokenizer's; else the original HF config's when the checkpoint came from HF (it may
    list several EOS ids); else the tokenizer's."""
    source = assets / SOURCE_CONFIG
    if source.is_file() and not explicit_tokenizer:
        cfg = json.loads(source.read_text(encoding="utf-8"))
        return cfg.get("bos_token_id"), cfg.get("eos_token_id")
    if tok is not None:
        return tok.bos_token_id, tok.eos_token_id
    return None, None


def to_hf(ckpt_dir: str | Path, hf_dir: str | Path, *, iteration: int | None = None, dtype: str = "auto",
          max_shard_size: str | int = "5GB", tokenizer: str | None = None, no_tokenizer: bool = False,
          preset: str | None = None, config: str | None = None, overwrite: bool = False) -> ToHFResult:
    """Convert one checkpoint (``--iteration`` or the latest) into a HF model directory (see module doc)."""
    from oc_megatron.convert.megatron_ckpt import (
        CheckpointReader,
        checkpoint_model_config,
        find_checkpoint,
        read_common_state,
    )
    from oc_megatron.convert.torch_dist import RecordedChecksums

    start = time.perf_counter()
    hf_dir = Path(hf_dir)
    check_output_dir(hf_dir.absolute(), overwrite, {"CKPT_DIR": ckpt_dir}, "HF_DIR")
    max_bytes = parse_size(max_shard_size)
    if dtype != "auto" and dtype not in DTYPES:
        raise ConversionError(f"--dtype {dtype!r}: expected auto, {', '.join(DTYPES)}")
    path = find_checkpoint(ckpt_dir, iteration)
    recorded = RecordedChecksums(path)  # sizes now; contents while reading: a corrupt file is refused by name
    ckpt_root = path.parent
    common = read_common_state(path, recorded)
    model = _model_config(checkpoint_model_config(common), preset, config, path)
    reader = CheckpointReader(path, model, recorded)
    out_dtype = reader.dtype if dtype == "auto" else DTYPES[dtype]
    tok_dir = _find_tokenizer(tokenizer, no_tokenizer, ckpt_root, common)
    tok = read_tokenizer(tok_dir) if tok_dir is not None else None
    if tok is not None:
        check_tokenizer_fits(tok, model.vocab_size)
    table, dims = reader.table, reader.dims
    L = model.num_layers
    log.info("to-hf %s -> %s: %d layers, %s, vocabulary %d (the checkpoint's %d rows without the padding)",
             path, hf_dir, L, dtype_name(out_dtype), dims.vocab, reader.vocab_rows)
    with staged_output_dir(hf_dir, overwrite, {"CKPT_DIR": ckpt_dir}, "convert to-hf") as tmp:
        with SafetensorsShardWriter(tmp, table.hf_tensor_shapes(dims, L), out_dtype, max_bytes) as writer:
            for rows in reader.stream():
                for name, row, col, piece in reader.hf_pieces(rows):
                    writer.write_rows(name, row, piece.to(out_dtype), col)
        bos, eos = _special_ids(ckpt_root / HF_ASSETS, tok, tokenizer is not None)
        atomic_write_json(tmp / "config.json", hf_config(model, out_dtype, bos, eos))
        carried = ckpt_root / HF_ASSETS / "generation_config.json"
        if carried.is_file():
            shutil.copyfile(carried, tmp / "generation_config.json")
        else:
            atomic_write_json(tmp / "generation_config.json", generation_config(bos, eos))
        if tok_dir is not None:
            copy_tokenizer_files(tok_dir, tmp)
    seconds = time.perf_counter() - start
    log.info("wrote %s (%d shards) in %.1f s", hf_dir, len(writer.shards), seconds)
    return ToHFResult(hf_dir, path, dtype_name(out_dtype), len(writer.shards), seconds)
