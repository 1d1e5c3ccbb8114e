"""GPU checks (skipped without CUDA; run by scripts/gpu_check_megatron.sh with OC_TEST_GPU=1): Transformer Engine spec,
FP8, NCCL, tokens/s + MFU of opencoder-1.5b (4 of its 24 layers, full width, 4,096-token context) on one GPU in BF16
and FP8, and checkpoints on the TE spec (issue 22): save / resume / init_from with FP8 and the fused optimizer, a TE
checkpoint to HF, a local-spec and a from-hf checkpoint into a TE model.

Every case runs in its own spawned worker process (NCCL process groups never live in the pytest process), started
the first time a test asks for it; a case that fails fails only the tests that use it, with its worker's error, and
the other cases still run. Each worker writes a JSON summary that the tests assert on and print.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from megatron_test_helpers import read_losses, run_distributed_test, tiny_train_config

pytestmark = pytest.mark.gpu


# ---- workers (module level: spawn imports them) ---------------------------------------------------------------------
def _environment() -> dict[str, Any]:
    import torch

    from oc_megatron.models.specs import te_available, te_unavailable_reason

    return {"device": torch.cuda.get_device_name(), "te": te_available(), "te_reason": te_unavailable_reason(),
            "torch": torch.__version__, "cuda": torch.version.cuda}


def _run_summary(output_dir: str) -> dict[str, Any]:
    import torch

    rows = [json.loads(x) for x in (Path(output_dir) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    steady = train[2:] or train  # skip warm-up steps (allocation, TE autotuning, FP8 amax history)
    return {
        "losses": {r["step"]: r["loss"] for r in train},
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "tflops_per_gpu": statistics.median(r["tflops_per_gpu"] for r in steady),
        "mfu": statistics.median(r["mfu"] for r in steady) if "mfu" in steady[0] else None,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def run_training_case(rank: int, world_size: int, runs: list[dict], out_path: str) -> None:
    """Train each config of ``runs`` in turn in this process (a later one may resume or init from an earlier one's
    checkpoint); write the environment and every run's losses and throughput."""
    import torch

    from oc_common.config import validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training.loop import run_training

    summary: dict[str, Any] = {**_environment(), "runs": []}
    for i, data in enumerate(runs):
        cfg = validate_config(data, TrainConfig, f"run {i}")
        run_training(cfg)
        summary["backend"] = torch.distributed.get_backend()
        summary["runs"].append(_run_summary(cfg.output_dir))
        torch.cuda.reset_peak_memory_stats()
    if rank == 0:
        Path(out_path).write_text(json.dumps(summary, indent=2))


def te_checkpoint_to_hf_case(rank: int, world_size: int, run: dict, hf_dir: str, out_path: str) -> None:
    """Train on the TE spec with FP8 and save; convert that checkpoint with `oc-megatron convert to-hf` (its own
    process, as users run it); the HF model's logits (transformers, CPU) against the checkpoint loaded into the
    local-spec model on the GPU in fp32."""
    import torch

    from oc_common.config import validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.convert.verify import hf_logits, load_megatron_model, megatron_logits
    from oc_megatron.training.checkpoint import resolve_checkpoint
    from oc_megatron.training.distributed import init_model_parallel
    from oc_megatron.training.loop import run_training

    cfg = validate_config(run, TrainConfig, "te fp8")
    run_training(cfg)
    ckpt = resolve_checkpoint(cfg.checkpoint_dir)
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "convert", "to-hf", str(ckpt), hf_dir,
                           "--no-tokenizer", "--dtype", "fp32"], capture_output=True, text=True, timeout=600)
    out: dict[str, Any] = {**_environment(), "to_hf_returncode": proc.returncode, "to_hf_stderr": proc.stderr[-3000:]}
    if proc.returncode == 0:
        tokens = torch.randint(0, cfg.model.vocab_size, (2, 64), generator=torch.Generator().manual_seed(0))
        init_model_parallel()
        local = megatron_logits(load_megatron_model(ckpt), tokens)  # a TE checkpoint in the local model
        hf = hf_logits(hf_dir, tokens)
        out["max_abs_logit_diff"] = (local - hf).abs().max().item()
    if rank == 0:
        Path(out_path).write_text(json.dumps(out, indent=2))


# ---- the cases -------------------------------------------------------------------------------------------------------
class GpuCases:
    """Runs each named case in its own worker on first use and keeps its summary (or its failure)."""

    def __init__(self, root: Path, tiny_data: dict, sft_data: dict) -> None:
        self.root, self.tiny_data, self.sft_data = root, tiny_data, sft_data
        self.results: dict[str, Any] = {}

    def __call__(self, name: str) -> dict[str, Any]:
        if name not in self.results:
            try:
                self.results[name] = self._run(name)
            except Exception as e:  # noqa: BLE001 - reported by every test that needs this case
                self.results[name] = e
            self._print(name)
        result = self.results[name]
        if isinstance(result, Exception):
            pytest.fail(f"GPU case {name} failed in its worker: {type(result).__name__}: {result}", pytrace=False)
        return result

    def _cfg(self, run: str, **sections) -> dict:
        return tiny_train_config(self.tiny_data, self.root / run, **sections)

    def _train(self, name: str, runs: list[dict], world_size: int = 1) -> dict[str, Any]:
        out = self.root / f"{name}.json"
        run_distributed_test(run_training_case, world_size, runs, str(out), backend="nccl")
        return json.loads(out.read_text())

    def _run(self, name: str) -> dict[str, Any]:
        tiny = dict(train={"iters": 6}, checkpoint={"interval": 0, "save_final": False},
                    schedule={"warmup_steps": 1, "decay_steps": 0})
        big = dict(model={"preset": "opencoder-1.5b", "num_layers": 4},
                   train={"iters": 10, "micro_batch_size": 1, "global_batch_size": 4},
                   checkpoint={"interval": 0, "save_final": False}, schedule={"warmup_steps": 2, "decay_steps": 0},
                   optimizer={"lr": 3e-4, "min_lr": 1e-5})
        fp8 = {"fp8": "hybrid", "fp8_recipe": "delayed"}
        ckpt = dict(train={"iters": 4}, checkpoint={"interval": 0, "save_final": True},
                    schedule={"warmup_steps": 1, "decay_steps": 1})
        if name == "tiny_bf16_te":
            return self._train(name, [self._cfg(name, **tiny)])
        if name.startswith("tiny_fp8_"):
            return self._train(name, [self._cfg(name, **tiny, precision={**fp8, "fp8_recipe": name[9:]})])
        if name == "opencoder_1.5b_4l_bf16":
            return self._train(name, [self._cfg(name, **big)])
        if name == "opencoder_1.5b_4l_fp8":
            return self._train(name, [self._cfg(name, **big, precision=fp8)])
        if name.startswith("sft_packed_"):
            # Packed SFT: THD (cu_seqlens, TE attention; microbatches of 2 laid end to end) vs the block-diagonal
            # mask of the local spec, on the same data and weights.
            case = self._cfg(name, train={"iters": 4, "micro_batch_size": 2, "global_batch_size": 4,
                                          "seq_length": 256},
                             checkpoint={"interval": 0, "save_final": False},
                             schedule={"style": "cosine", "warmup_steps": 1},
                             precision={"layer_spec": name[11:]})
            case["data"] = {"tokenizer": str(self.tiny_data["tokenizer"]),
                            "sft": {"paths": [str(self.sft_data["stage1"])], "packing": True}}
            return self._train(name, [case])
        if name == "ckpt_te_fp8_resume":
            # Straight 4 steps; then 2 steps, save, and a resume to 4: TE FusedAdam state, FP8 amax histories
            # (TE's _extra_state) and the data position come back.
            straight = self._cfg(f"{name}_straight", **ckpt, precision=fp8)
            first = self._cfg(f"{name}_resumed", **ckpt, precision=fp8)
            first["train"]["exit_interval"] = 2
            second = self._cfg(f"{name}_resumed", **ckpt, precision=fp8)
            return self._train(name, [straight, first, second])
        if name == "ckpt_te_fp8_init_from_keep_optimizer":
            source = self.root / "ckpt_te_fp8_resume_straight" / "checkpoints"
            self("ckpt_te_fp8_resume")  # the checkpoint to start from
            run = self._cfg(name, train={"iters": 2}, checkpoint={"save_final": True, "init_from": {
                "path": str(source), "keep_optimizer": True, "keep_lr": True, "keep_iteration": False,
                "keep_data_position": False}}, schedule={"warmup_steps": 0, "decay_steps": 1}, precision=fp8)
            return self._train(name, [run])
        if name == "ckpt_local_into_te":
            # A checkpoint of the local spec (what every CPU run and every from-hf output is) into a TE model.
            local = self._cfg(f"{name}_local", train={"iters": 2}, checkpoint={"save_final": True},
                              schedule={"warmup_steps": 1, "decay_steps": 0}, precision={"layer_spec": "local"})
            te = self._cfg(f"{name}_te", train={"iters": 2}, schedule={"warmup_steps": 1, "decay_steps": 0},
                           checkpoint={"save_final": False, "init_from": str(self.root / f"{name}_local" /
                                                                             "checkpoints")},
                           precision={"layer_spec": "te", **fp8})
            return self._train(name, [local, te])
        if name == "ckpt_from_hf_into_te":
            return self._from_hf_into_te(name, fp8)
        if name == "ckpt_te_to_hf":
            run = self._cfg(name, **ckpt, precision={"layer_spec": "te", **fp8})
            out = self.root / f"{name}.json"
            run_distributed_test(te_checkpoint_to_hf_case, 1, run, str(self.root / f"{name}_hf"), str(out),
                                 backend="nccl")
            return json.loads(out.read_text())
        raise KeyError(name)

    def _from_hf_into_te(self, name: str, fp8: dict) -> dict[str, Any]:
        """The documented SFT-from-HF route: a HF model through `convert from-hf`, then init_from on the TE spec."""
        from test_convert_padding import make_llama

        from oc_megatron.training.checkpoint import read_train_state

        hf = make_llama(self.root / f"{name}_hf", vocab_size=1024, max_position_embeddings=128)
        ckpt = self.root / f"{name}_ckpt"
        subprocess.run([sys.executable, "-m", "oc_megatron.cli", "convert", "from-hf", str(hf), str(ckpt)],
                       check=True, timeout=600)  # its own process, as users run it (no process group here)
        model = {**read_train_state(ckpt).model, "preset": None}  # the HF model's architecture, not tiny's
        run = self._cfg(name, model=model, train={"iters": 3}, schedule={"warmup_steps": 1, "decay_steps": 0},
                        checkpoint={"save_final": False, "init_from": str(ckpt)},
                        precision={"layer_spec": "te", **fp8})
        return self._train(name, [run])

    def _print(self, name: str) -> None:
        r = self.results[name]
        if isinstance(r, Exception):
            print(f"\n[megatron gpu] {name:38s} FAILED: {type(r).__name__}: {str(r)[-500:]}")
            return
        env = f"{r.get('device')} | TE {r.get('te')} ({r.get('te_reason')}) | torch {r.get('torch')}"
        for i, run in enumerate(r.get("runs", [])):
            losses = list(run["losses"].values())
            mfu = f"{100 * run['mfu']:.1f}%" if run["mfu"] is not None else "n/a"
            print(f"\n[megatron gpu] {name:30s} run {i}: {run['tokens_per_s']:>12,.0f} tokens/s "
                  f"{run['tflops_per_gpu']:7.1f} TFLOP/s/GPU  MFU {mfu:>6s}  peak mem {run['peak_mem_gib']:.1f} GiB  "
                  f"loss {losses[0]:.4f} -> {losses[-1]:.4f}  [{env}]")
        if "max_abs_logit_diff" in r or "to_hf_returncode" in r:
            print(f"\n[megatron gpu] {name:30s} to-hf rc {r['to_hf_returncode']}, max |logit diff| "
                  f"{r.get('max_abs_logit_diff')}  [{env}]")


@pytest.fixture(scope="module")
def gpu_case(tiny_data, sft_data, tmp_path_factory) -> GpuCases:
    return GpuCases(tmp_path_factory.mktemp("gpu"), tiny_data, sft_data)


def _losses(result: dict, run: int = 0) -> list[float]:
    losses = result["runs"][run]["losses"]
    return [losses[k] for k in sorted(losses, key=int)]


# ---- training --------------------------------------------------------------------------------------------------------
def test_te_spec_and_nccl(gpu_case):
    r = gpu_case("tiny_bf16_te")
    assert r["te"], f"Transformer Engine is not usable on this GPU machine: {r['te_reason']}"
    assert r["backend"] == "nccl"
    losses = _losses(r)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("recipe", ["delayed", "tensorwise"])
def test_fp8_trains_close_to_bf16(gpu_case, recipe):
    bf16, fp8 = _losses(gpu_case("tiny_bf16_te")), _losses(gpu_case(f"tiny_fp8_{recipe}"))
    assert fp8[-1] < fp8[0]
    assert fp8[-1] == pytest.approx(bf16[-1], rel=0.05)


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_opencoder_1p5b_throughput(gpu_case, precision):
    run = gpu_case(f"opencoder_1.5b_4l_{precision}")["runs"][0]
    assert run["tokens_per_s"] > 0 and all(math.isfinite(x) for x in run["losses"].values())
    assert run["mfu"] is None or 0.05 < run["mfu"] < 1.0


def test_packed_sft_thd_matches_the_mask_path(gpu_case):
    thd, mask = _losses(gpu_case("sft_packed_te")), _losses(gpu_case("sft_packed_local"))
    assert len(thd) == len(mask) and all(math.isfinite(x) for x in thd)
    assert thd == pytest.approx(mask, rel=2e-2)  # bf16, different attention kernels


def _tp2_worker(rank: int, world_size: int, data: dict) -> None:
    from oc_common.config import validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training.loop import run_training

    run_training(validate_config(data, TrainConfig, "tp2"))


def test_nccl_tp2_matches_tp1(gpu_case, tiny_data, tmp_path):
    import torch

    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    data = tiny_train_config(tiny_data, tmp_path / "tp2", train={"iters": 6},
                             checkpoint={"interval": 0, "save_final": False},
                             schedule={"warmup_steps": 1, "decay_steps": 0},
                             parallel={"tensor": 2, "sequence_parallel": True})
    run_distributed_test(_tp2_worker, 2, data, backend="nccl")
    got, want = read_losses(tmp_path / "tp2"), _losses(gpu_case("tiny_bf16_te"))
    assert [got[s] for s in sorted(got)] == pytest.approx(want, rel=2e-2)  # bf16 tolerance


# ---- checkpoints on the TE spec (issue 22) -------------------------------------------------------------------------
def test_te_fp8_save_and_resume_continue_the_curve(gpu_case):
    r = gpu_case("ckpt_te_fp8_resume")
    straight, resumed = r["runs"][0]["losses"], {**r["runs"][1]["losses"], **r["runs"][2]["losses"]}
    assert sorted(resumed, key=int) == sorted(straight, key=int)
    for step in ("3", "4"):  # after the resume
        assert resumed[step] == pytest.approx(straight[step], rel=1e-2), step


def test_te_fp8_init_from_keeping_the_optimizer(gpu_case):
    losses = _losses(gpu_case("ckpt_te_fp8_init_from_keep_optimizer"))
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_a_local_spec_checkpoint_loads_into_a_te_model(gpu_case):
    r = gpu_case("ckpt_local_into_te")
    local, te = _losses(r, 0), _losses(r, 1)
    assert all(math.isfinite(x) for x in te)
    assert te[0] < local[0]  # it starts from the trained weights, not from scratch


def test_a_from_hf_checkpoint_loads_into_a_te_model(gpu_case):
    losses = _losses(gpu_case("ckpt_from_hf_into_te"))
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)


def test_a_te_checkpoint_converts_to_hf(gpu_case):
    r = gpu_case("ckpt_te_to_hf")
    assert r["to_hf_returncode"] == 0, r["to_hf_stderr"]
    assert r["max_abs_logit_diff"] < 1e-3  # bf16 weights, fp32 forward on both sides (GPU vs CPU kernels)
