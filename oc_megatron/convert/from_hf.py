"""HF ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` -> Megatron-Core torch_dist checkpoint (``oc-megatron convert
from-hf``).

Everything that can be wrong with the input is checked before anything is written: the config (a Llama-family
model we can represent), every tensor (present, right shape, readable: a truncated shard fails here), the parallel
layout and the tokenizer's vocabulary. The checkpoint is then written tensor by tensor straight from the HF shards
(see ``megatron_ckpt.write_checkpoint``: one process, no process group, its SHA-256 checksums computed while
writing) into a hidden staging directory that is renamed into place at the end.

The embedding (and output) matrix gets Megatron's padded row count for ``--tp`` (``vocab_size`` rounded up to a
multiple of ``--make-vocab-size-divisible-by`` x TP); the padding rows repeat the last real row, as Megatron-LM's
own converter pads (``tools/checkpoint/saver_base.py``). The model config in ``train_state`` keeps the real
``vocab_size`` (and the divisor), so training ignores the padded logits and to-hf strips the rows again.

Output (the trainer's layout, loadable with ``init_from`` / ``load_checkpoint`` at any TP / PP)::

    CKPT_DIR/iter_0000000/                      torch_dist checkpoint; train_state holds the model config
    CKPT_DIR/latest_checkpointed_iteration.txt  0
    CKPT_DIR/hf_assets/                         tokenizer files, generation_config.json and the source
                                                config.json, so that to-hf reproduces them
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from oc_common.errors import ConversionError
from oc_common.fileio import atomic_write_text
from oc_common.log import get_logger
from oc_megatron.convert import llama_mapping as lm
from oc_megatron.convert.hf import (
    DTYPES,
    HFModelDir,
    check_tokenizer_fits,
    copy_tokenizer_files,
    dtype_name,
    model_config_from_hf,
    read_tokenizer,
)
from oc_megatron.convert.layout import check_parallel_layout
from oc_megatron.convert.staging import check_output_dir, staged_output_dir

log = get_logger(__name__)

HF_ASSETS = "hf_assets"
SOURCE_CONFIG = "source_config.json"


@dataclass(frozen=True)
class FromHFResult:
    checkpoint: Path
    model: object  # ModelConfig
    dtype: str
    tensors: int
    seconds: float


def check_hf_tensors(hf: HFModelDir, table: lm.Table, dims: lm.Dims, num_layers: int, tied: bool) -> None:
    expected = table.hf_tensor_shapes(dims, num_layers)
    present = hf.tensors
    ignored = re.compile(lm.IGNORED_HF_TENSORS + (f"|{re.escape(lm.TIED_OUTPUT_HF)}" if tied else ""))
    missing = [n for n in expected if n not in present]
    unexpected = [n for n in present if n not in expected and not ignored.fullmatch(n)]
    wrong = [f"{n} has shape {list(present[n].shape)}, config.json implies {list(s)}"
             for n, s in expected.items() if n in present and present[n].shape != s]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors this model type does not have (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append("; ".join(wrong[:3]) + (" (vocab_size / padding mismatch?)" if any(
            "embed_tokens" in w or "lm_head" in w for w in wrong) else ""))
    if problems:
        raise ConversionError(f"{hf.path}: " + "; ".join(problems))


def from_hf(hf_dir: str | Path, ckpt_dir: str | Path, *, tp: int = 1, pp: int = 1,
            first_stage_layers: int | None = None, last_stage_layers: int | None = None,
            make_vocab_size_divisible_by: int = 128, preset: str | None = None, dtype: str = "auto",
            overwrite: bool = False) -> FromHFResult:
    """Convert a HF model directory into a torch_dist checkpoint for a TP x PP layout (see module doc).

    ``first_stage_layers`` / ``last_stage_layers``: an uneven pipeline split (Megatron-Core's
    ``num_layers_in_first/last_pipeline_stage``); torch_dist files do not depend on it, it is checked and recorded.
    """
    from oc_megatron.convert.megatron_ckpt import write_checkpoint
    from oc_megatron.training.checkpoint import LATEST_FILE, TrainState, iteration_dir

    start = time.perf_counter()
    ckpt_dir = Path(ckpt_dir)
    check_output_dir(ckpt_dir.absolute(), overwrite, {"HF_DIR": hf_dir}, "CKPT_DIR")
    if make_vocab_size_divisible_by < 1:
        raise ConversionError(f"--make-vocab-size-divisible-by {make_vocab_size_divisible_by}: must be >= 1")
    hf = HFModelDir(hf_dir)
    model = model_config_from_hf(hf.config, str(hf.path / "config.json"), preset, make_vocab_size_divisible_by)
    stages = check_parallel_layout(model, tp, pp, first_stage_layers, last_stage_layers)
    vocab_rows = model.padded_vocab_size(tp)
    table = lm.Table.of(model)
    dims = lm.Dims.of(model, vocab_rows=vocab_rows)
    check_hf_tensors(hf, table, dims, model.num_layers, model.tie_embeddings)
    if dtype == "auto":
        out_dtype = hf.tensors[table.first[0].hf].dtype
    elif dtype in DTYPES:
        out_dtype = DTYPES[dtype]
    else:
        raise ConversionError(f"--dtype {dtype!r}: expected auto, {', '.join(DTYPES)}")
    tok_dir = hf.tokenizer_dir()
    if tok_dir is not None:
        check_tokenizer_fits(read_tokenizer(tok_dir), model.vocab_size)
    else:
        log.warning("%s has no tokenizer files; to-hf will need --tokenizer", hf.path)

    layout = {"tensor": tp, "pipeline": pp, "virtual_pipeline": 1, "data": 1}
    if first_stage_layers is not None or last_stage_layers is not None:
        layout["pipeline_stage_layers"] = stages
    train_state = TrainState(iteration=0, consumed_samples=0, model=model.model_dump(), layout=layout)
    log.info("from-hf %s -> %s: %d layers, %s, TP %d x PP %d (layers per stage %s), vocabulary %d padded to %d rows",
             hf.path, ckpt_dir, model.num_layers, dtype_name(out_dtype), tp, pp, stages, model.vocab_size, vocab_rows)
    with staged_output_dir(ckpt_dir, overwrite, {"HF_DIR": hf_dir}, "convert from-hf") as tmp:
        it_dir = iteration_dir(tmp, 0)
        it_dir.mkdir()
        # checksums.json is written with it, verified by init_from and to-hf like a training checkpoint's
        write_checkpoint(it_dir, model, out_dtype, hf, train_state.__dict__.copy(), vocab_rows)
        atomic_write_text(tmp / LATEST_FILE, "0\n")
        assets = tmp / HF_ASSETS
        assets.mkdir()
        shutil.copyfile(hf.path / "config.json", assets / SOURCE_CONFIG)
        if (hf.path / "generation_config.json").is_file():
            shutil.copyfile(hf.path / "generation_config.json", assets / "generation_config.json")
        if tok_dir is not None:
            copy_tokenizer_files(tok_dir, assets)
    seconds = time.perf_counter() - start
    n = len(table.hf_tensor_shapes(dims, model.num_layers))
    log.info("wrote %s (%d HF tensors) in %.1f s", ckpt_dir, n, seconds)
    return FromHFResult(ckpt_dir, model, dtype_name(out_dtype), n, seconds)
