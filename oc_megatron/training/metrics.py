"""Throughput and MFU, and the metric sinks: console, ``metrics.jsonl``, TensorBoard, W&B (optional).

Every step logs what it was: ``samples`` (SFT: conversations; pretraining: sequences), ``tokens`` (input positions
holding a real token), ``positions`` (computed, padding included), ``microbatches`` and, for SFT, ``sequences`` and
``trained_tokens`` (the loss mask's count), so a packed and an unpacked SFT step can be compared at a glance.

TFLOP/s per GPU counts model FLOPs (``ModelConfig.flops_per_token``: 6 x matmul parameters + causal attention,
forward + backward, no recompute), so MFU = achieved model TFLOP/s per GPU / the GPU's dense peak. Peaks are dense
(not 2:4 sparse) tensor-core numbers from NVIDIA's data sheets; override with ``logging.peak_tflops``. On a CPU there
is no peak: MFU is not reported.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from oc_common.log import get_logger

log = get_logger(__name__)

# (BF16, FP8) dense peak TFLOP/s per GPU, matched on the device name.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 1979.0),
    "H100 NVL": (835.0, 1671.0),
    "H100 PCIe": (756.0, 1513.0),
    "H100": (989.0, 1979.0),  # SXM
    "H800": (989.0, 1979.0),
    "H20": (148.0, 296.0),
    "B200": (2250.0, 4500.0),
    "A100": (312.0, 312.0),  # no FP8 on Ampere
    "A800": (312.0, 312.0),
    "L40S": (362.0, 733.0),
}


def device_peak_tflops(fp8: bool, override: float | None = None) -> float | None:
    if override is not None:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, (bf16_peak, fp8_peak) in PEAK_TFLOPS.items():
        if key in name:
            return fp8_peak if fp8 else bf16_peak
    return None


def throughput(step_seconds: float, tokens: int, flops: float, world_size: int,
               peak_tflops: float | None) -> dict[str, float]:
    """tokens/s (real tokens: padding excluded), model TFLOP/s per GPU (``flops``: the step's model FLOPs, counted
    on every computed position) and MFU."""
    tokens_per_s = tokens / step_seconds
    tflops_per_gpu = flops / step_seconds / world_size / 1e12
    out = {"tokens_per_s": tokens_per_s, "tokens_per_s_per_gpu": tokens_per_s / world_size,
           "tflops_per_gpu": tflops_per_gpu}
    if peak_tflops:
        out["mfu"] = tflops_per_gpu / peak_tflops
    return out


class MetricsLogger:
    """Writes on the last rank (which holds the loss): console line, metrics.jsonl, TensorBoard, W&B."""

    def __init__(self, output_dir: str | Path, enabled: bool, tensorboard: bool = True,
                 wandb_project: str | None = None, run_config: dict | None = None, append: bool = False) -> None:
        self.enabled = enabled
        self.path = Path(output_dir) / "metrics.jsonl"
        self._tb = None
        self._wandb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not append and self.path.exists():
            self.path.unlink()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(Path(output_dir) / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed: TensorBoard logging is off")
        if wandb_project:
            try:
                import wandb
            except ImportError:
                log.warning("logging.wandb_project is set but wandb is not installed: W&B logging is off")
            else:
                self._wandb = wandb.init(project=wandb_project, config=run_config, dir=str(output_dir),
                                         resume="allow")

    def log(self, step: int, values: dict[str, Any], prefix: str = "train") -> None:
        if not self.enabled:
            return
        record = {"step": step, "split": prefix, "time": time.time(), **values}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        for k, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                if self._tb is not None:
                    self._tb.add_scalar(f"{prefix}/{k}", v, step)
        if self._wandb is not None:
            self._wandb.log({f"{prefix}/{k}": v for k, v in values.items()}, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def format_line(step: int, total: int, v: dict[str, Any]) -> str:
    parts = [f"step {step}/{total}", f"loss {v['loss']:.6f}"]
    if "samples" in v:
        parts.append(f"{int(v['samples'])} samples, {int(v['tokens']):,} tokens")
    if "grad_norm" in v:
        parts.append(f"grad_norm {v['grad_norm']:.4f}")
    parts.append(f"lr {v['lr']:.3e}")
    if "tokens_per_s" in v:
        parts.append(f"{v['tokens_per_s']:,.0f} tok/s")
        parts.append(f"{v['tflops_per_gpu']:.2f} TFLOP/s/GPU")
    if "mfu" in v:
        parts.append(f"MFU {100 * v['mfu']:.1f}%")
    return " | ".join(parts)
