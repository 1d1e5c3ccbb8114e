"""Multi-process test helpers: real process groups (gloo on CPU) via torch.multiprocessing spawn.

``run_distributed_test(fn, world_size, *args)`` starts ``world_size`` processes that each set RANK/WORLD_SIZE/
MASTER_* (as torchrun would) and call ``fn(rank, world_size, *args)``. ``fn`` must be importable (defined at module
level). A failure in any rank fails the test with that rank's traceback.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch.multiprocessing as mp
import yaml

from oc_megatron.training.distributed import free_port


def _entry(rank: int, fn: Callable, world_size: int, port: int, backend: str, args: tuple) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
                       "OC_DIST_BACKEND": backend})
    try:
        fn(rank, world_size, *args)
    finally:
        from oc_megatron.training.distributed import destroy

        destroy()


def run_distributed_test(fn: Callable, world_size: int, *args: Any, backend: str = "gloo") -> None:
    mp.spawn(_entry, args=(fn, world_size, free_port(), backend, args), nprocs=world_size, join=True)


# Same data, seed and model; only the order of floating-point reductions differs between parallel layouts.
FP32_RTOL = 2e-5


def assert_same_losses(got: dict[int, float], want: dict[int, float], steps, what: str) -> None:
    import pytest

    for s in steps:
        assert s in got, f"{what}: no loss logged for step {s}"
        assert got[s] == pytest.approx(want[s], rel=FP32_RTOL), f"{what}, step {s}: {got[s]} != reference {want[s]}"


def write_config(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(config: Path, *overrides: str) -> list[str]:
    """The `oc-megatron train` command line (through the interpreter running the tests)."""
    return [sys.executable, "-m", "oc_megatron.cli", "train", str(config), *(x for o in overrides for x in ("-s", o))]


def cli_env() -> dict[str, str]:
    # A wide console: rich would wrap log lines (and paths in them) at 80 columns.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "COLUMNS": "1000"}


def run_cli(config: Path, *overrides: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `oc-megatron train` to completion (asserting success); stderr holds the log."""
    proc = subprocess.run(cli(config, *overrides), capture_output=True, text=True, timeout=timeout, env=cli_env(),
                          check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def read_metrics(run_dir: str | Path, split: str = "train") -> dict[int, dict[str, Any]]:
    """step -> the metrics record of a run's metrics.jsonl (the last record of a step wins: resumed runs append)."""
    out: dict[int, dict[str, Any]] = {}
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["split"] == split:
            out[rec["step"]] = rec
    return out


def read_losses(run_dir: str | Path, split: str = "train") -> dict[int, float]:
    """step -> loss from a run's metrics.jsonl."""
    return {step: rec["loss"] for step, rec in read_metrics(run_dir, split).items()}


# ---- workers (module level so that spawn can import them) ---------------------------------------------------------
def train_layouts(rank: int, world_size: int, base_config: dict, layouts: list[tuple[str, list[str]]]) -> None:
    """Run ``run_training`` once per layout in the same process group (parallel state is rebuilt each time)."""
    from oc_common.config import apply_overrides, validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training.loop import run_training

    for name, overrides in layouts:
        data = apply_overrides(copy.deepcopy(base_config), overrides)
        cfg = validate_config(data, TrainConfig, f"layout {name}")
        run_training(cfg)


def tiny_train_config(tiny_data: dict[str, Path], output_dir: Path, **sections) -> dict:
    """A TrainConfig dict for the tiny model: 12 steps of 16 x 128 tokens, WSD with warmup 3 and decay 4."""
    cfg = {
        "output_dir": str(output_dir),
        "model": {"preset": "tiny"},
        "data": {"tokenizer": str(tiny_data["tokenizer"]), "blend": [{"path": str(tiny_data["prefix"])}],
                 "split": "98,2,0", "cache_dir": str(tiny_data["root"] / "cache")},
        "train": {"iters": 12, "micro_batch_size": 4, "global_batch_size": 16, "seq_length": 128, "seed": 1234},
        "optimizer": {"lr": 3e-3, "min_lr": 3e-4},
        "schedule": {"style": "wsd", "warmup_steps": 3, "decay_steps": 4},
        "checkpoint": {"interval": 4},
        "logging": {"interval": 1, "tensorboard": False},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    if cfg["train"].get("phases"):  # each phase gives its own sequence length
        cfg["train"].pop("seq_length", None)
    return copy.deepcopy(cfg)


def sft_per_sample_losses(rank: int, world_size: int, prefix: str, seq_length: int, init_std: float,
                          out_path: str) -> None:
    """Per-sample mean losses of the SFT samples in ``prefix`` computed by one tiny model (local spec): ``alone`` in a
    padded sequence (with position_ids, and without: Megatron-Core's own RoPE); ``packed`` (block-diagonal mask,
    restarted positions); and three wrong ways to pack (without
    restarting positions, with a plain causal mask, both). Written to ``out_path`` as {variant: {sample id: loss}}."""
    import torch

    from oc_megatron.data.sft import SFTBatches, SFTSamples, packed_attention_mask, sequence_item
    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.models.opencoder import ModelConfig, build_model, transformer_config
    from oc_megatron.training.distributed import init_distributed, init_model_parallel, seed_everything

    apply_cpu_shims()
    init_distributed()
    init_model_parallel()
    seed_everything(0)
    model_cfg = ModelConfig.from_preset("tiny", init_method_std=init_std)
    tconfig = transformer_config(model_cfg, apply_rope_fusion=False)
    model = build_model(model_cfg, tconfig, spec="local", seed=0)[0].eval()
    samples = SFTSamples([prefix], seq_length, shuffle=False)

    def sequences(packing: bool):  # every sample in one step: alone in its sequence, or packed
        batches = SFTBatches(samples, seq_length, len(samples), 1, 1, 0, packing=packing, pad_id=0)
        return [(sequence_item(samples, ids, seq_length, 0), [int(x) for x in ids])
                for ids in batches.sequences(0) if len(ids)]

    causal = torch.ones(seq_length, seq_length, dtype=torch.bool).triu(1)[None, None]

    def sample_losses(batch, positions, mask) -> list[float]:
        with torch.no_grad():
            positions = None if positions is None else positions[None]
            loss = model(batch["tokens"][None], positions, mask, labels=batch["labels"][None])[0]
        seg, weight = batch["segment_ids"], batch["loss_mask"]
        return [float((loss * weight)[seg == k].sum() / weight[seg == k].sum())
                for k in range(int(seg.max())) if weight[seg == k].sum() > 0]

    out: dict[str, dict[int, float]] = {"alone": {}, "alone_megatron_rope": {}, "packed": {},
                                        "no_position_restart": {}, "causal_mask": {}, "causal_mask_no_restart": {}}
    for b, (sample,) in sequences(packing=False):
        out["alone"][sample] = sample_losses(b, b["position_ids"], causal)[0]
        # No position_ids: Megatron-Core's own RoPE (angles 0..s-1), which per-token RoPE must reproduce exactly.
        out["alone_megatron_rope"][sample] = sample_losses(b, None, causal)[0]
    for b, ids in sequences(packing=True):
        block = packed_attention_mask(b["segment_ids"][None])
        arange = torch.arange(seq_length)
        for variant, positions, mask in (("packed", b["position_ids"], block),
                                         ("no_position_restart", arange, block),
                                         ("causal_mask", b["position_ids"], causal),
                                         ("causal_mask_no_restart", arange, causal)):
            out[variant].update(zip(ids, sample_losses(b, positions, mask), strict=True))
    Path(out_path).write_text(json.dumps(out))
