"""GPU checks (skipped without CUDA; run by scripts/gpu_check_megatron.sh): Transformer Engine spec, FP8, NCCL, and
tokens/s + MFU of opencoder-1.5b (4 of its 24 layers, full width, 4,096-token context) on one GPU in BF16 and FP8.

Everything runs in spawned worker processes (NCCL process groups, never in the pytest process). One worker runs all
single-GPU cases in turn and writes a JSON summary that the tests assert on and print.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from megatron_test_helpers import read_losses, run_distributed_test, tiny_train_config

pytestmark = pytest.mark.gpu


def _run_cases(rank: int, world_size: int, cases: list[tuple[str, dict]], summary_path: str) -> None:
    import torch

    from oc_common.config import validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.models.specs import te_available
    from oc_megatron.training.loop import run_training

    summary = {"device": torch.cuda.get_device_name(), "te": te_available(),
               "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None}
    for name, data in cases:
        cfg = validate_config(data, TrainConfig, name)
        run_training(cfg)
        summary.setdefault("backend", torch.distributed.get_backend())
        summary["backend"] = torch.distributed.get_backend()
        rows = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
        train = [r for r in rows if r["split"] == "train"]
        steady = train[2:] or train  # skip warm-up steps (allocation, TE autotuning, FP8 amax history)
        summary[name] = {
            "losses": [r["loss"] for r in train],
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
            "tflops_per_gpu": statistics.median(r["tflops_per_gpu"] for r in steady),
            "mfu": statistics.median(r["mfu"] for r in steady) if "mfu" in steady[0] else None,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
        }
        torch.cuda.reset_peak_memory_stats()
    if rank == 0:
        Path(summary_path).write_text(json.dumps(summary, indent=2))


@pytest.fixture(scope="module")
def gpu_summary(tiny_data, sft_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    tiny = dict(train={"iters": 6}, checkpoint={"interval": 0, "save_final": False},
                schedule={"warmup_steps": 1, "decay_steps": 0})
    big = dict(model={"preset": "opencoder-1.5b", "num_layers": 4},
               train={"iters": 10, "micro_batch_size": 1, "global_batch_size": 4},
               checkpoint={"interval": 0, "save_final": False}, schedule={"warmup_steps": 2, "decay_steps": 0},
               optimizer={"lr": 3e-4, "min_lr": 1e-5})
    cases = [
        ("tiny_bf16_te", tiny_train_config(tiny_data, root / "tiny_bf16", **tiny)),
        ("tiny_fp8_delayed", tiny_train_config(tiny_data, root / "tiny_fp8d", **tiny,
                                               precision={"fp8": "hybrid", "fp8_recipe": "delayed"})),
        ("tiny_fp8_tensorwise", tiny_train_config(tiny_data, root / "tiny_fp8t", **tiny,
                                                  precision={"fp8": "hybrid", "fp8_recipe": "tensorwise"})),
        ("opencoder_1.5b_4l_bf16", tiny_train_config(tiny_data, root / "oc15_bf16", **big)),
        ("opencoder_1.5b_4l_fp8", tiny_train_config(tiny_data, root / "oc15_fp8", **big,
                                                    precision={"fp8": "hybrid", "fp8_recipe": "delayed"})),
    ]
    # Packed SFT: THD (cu_seqlens, TE attention; microbatches of 2 laid end to end) vs the block-diagonal mask of
    # the local spec, on the same data and weights.
    sft = dict(train={"iters": 4, "micro_batch_size": 2, "global_batch_size": 4, "seq_length": 256},
               checkpoint={"interval": 0, "save_final": False}, schedule={"style": "cosine", "warmup_steps": 1})
    for spec in ("te", "local"):
        case = tiny_train_config(tiny_data, root / f"sft_{spec}", **sft, precision={"layer_spec": spec})
        case["data"] = {"tokenizer": str(tiny_data["tokenizer"]), "sft": {"paths": [str(sft_data["stage1"])],
                                                                          "packing": True}}
        cases.append((f"sft_packed_{spec}", case))
    summary_path = root / "summary.json"
    run_distributed_test(_run_cases, 1, cases, str(summary_path), backend="nccl")
    summary = json.loads(summary_path.read_text())
    print("\n[megatron gpu] device:", summary["device"], "| TE:", summary["te"], "| backend:", summary["backend"])
    for name, r in summary.items():
        if isinstance(r, dict):
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            print(f"[megatron gpu] {name:24s} {r['tokens_per_s']:>12,.0f} tokens/s  {r['tflops_per_gpu']:7.1f} "
                  f"TFLOP/s/GPU  MFU {mfu:>6s}  peak mem {r['peak_mem_gib']:.1f} GiB  "
                  f"loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}")
    return summary


def test_te_spec_and_nccl(gpu_summary):
    assert gpu_summary["te"], "Transformer Engine is not importable on this GPU machine"
    assert gpu_summary["backend"] == "nccl"
    losses = gpu_summary["tiny_bf16_te"]["losses"]
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("recipe", ["delayed", "tensorwise"])
def test_fp8_trains_close_to_bf16(gpu_summary, recipe):
    bf16, fp8 = gpu_summary["tiny_bf16_te"]["losses"], gpu_summary[f"tiny_fp8_{recipe}"]["losses"]
    assert fp8[-1] < fp8[0]
    assert fp8[-1] == pytest.approx(bf16[-1], rel=0.05)


def test_opencoder_1p5b_throughput(gpu_summary):
    for precision in ("bf16", "fp8"):
        r = gpu_summary[f"opencoder_1.5b_4l_{precision}"]
        assert r["tokens_per_s"] > 0 and all(math.isfinite(x) for x in r["losses"])
        assert r["mfu"] is None or 0.05 < r["mfu"] < 1.0


def test_packed_sft_thd_matches_the_mask_path(gpu_summary):
    thd, mask = gpu_summary["sft_packed_te"]["losses"], gpu_summary["sft_packed_local"]["losses"]
    assert len(thd) == len(mask) and all(math.isfinite(x) for x in thd)
    assert thd == pytest.approx(mask, rel=2e-2)  # bf16, different attention kernels


def _tp2_worker(rank: int, world_size: int, data: dict) -> None:
    from oc_common.config import validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training.loop import run_training

    run_training(validate_config(data, TrainConfig, "tp2"))


def test_nccl_tp2_matches_tp1(gpu_summary, tiny_data, tmp_path):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    data = tiny_train_config(tiny_data, tmp_path / "tp2", train={"iters": 6},
                             checkpoint={"interval": 0, "save_final": False},
                             schedule={"warmup_steps": 1, "decay_steps": 0},
                             parallel={"tensor": 2, "sequence_parallel": True})
    run_distributed_test(_tp2_worker, 2, data, backend="nccl")
    got, want = read_losses(tmp_path / "tp2"), gpu_summary["tiny_bf16_te"]["losses"]
    assert [got[s] for s in sorted(got)] == pytest.approx(want, rel=2e-2)  # bf16 tolerance
