"""What a read of Megatron-Core, Transformer Engine and vLLM predicted would break on the first GPU run, proven fixed
on the CPU where the CPU can show it (issue 22; the rest is in scripts/gpu_check.sh via test_megatron_gpu.py).

* Optimizer state for a resharding load comes from the optimizer class's own layout: TE's FusedAdam (emulated here:
  ``step`` in the param groups, a ``state_dict()`` that refuses unknown per-parameter keys) gets no per-parameter
  ``step``; torch's Adam does. A resume through Megatron-Core's DistributedOptimizer with that FusedAdam layout
  continues the loss curve exactly; the old preparation fails it with ``KeyError: 'step'``.
* A checkpoint with ``_extra_state`` entries the model lacks (as TE >= 2.0's final RMSNorm writes them) loads into
  the local-spec model, and a local checkpoint loads into a model that has them (they start fresh); a missing weight
  is still an error.
* FLOPs per token equal Megatron-LM's ``num_floating_point_operations`` for the 1.5B and 8B presets.
* Fusions: masked-softmax fusion is never on; RoPE fusion only with TE; nothing on the CPU.
* With the distributed optimizer and ``overlap_param_gather`` on 2 data-parallel ranks, a checkpoint holds the
  parameters after the last step (the same as without overlap); skipping the forced gather would not.
* A Transformer Engine that is installed but does not import is a warning naming the error, and ``layer_spec: te``
  fails with that error.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from megatron_test_helpers import read_losses, run_distributed_test, tiny_train_config


# ---- optimizer state layouts -----------------------------------------------------------------------------------------
class FusedAdamEmulation(torch.optim.Optimizer):
    """The state layout of Transformer Engine's ``FusedAdam`` (``transformer_engine/pytorch/optimizers/
    fused_adam.py``), with its arithmetic in plain torch: the step count lives in each param group (``group["step"]``,
    created by the first ``step()``), each parameter's state holds ``exp_avg`` and ``exp_avg_sq``, and
    ``state_dict()`` looks every per-parameter key up in ``name_to_dtype_map`` (TE converts each state to its dtype
    there), so a key it does not know is a ``KeyError``."""

    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 adam_w_mode=True, **unused):
        super().__init__(params, dict(lr=lr, bias_correction=bias_correction, betas=betas, eps=eps,
                                      weight_decay=weight_decay))
        self.adam_w_mode = adam_w_mode
        self.name_to_dtype_map = {"exp_avg": torch.float32, "exp_avg_sq": torch.float32,
                                  "master_param": torch.float32}

    def state_dict(self):
        state_dict = super().state_dict()
        for param_state in state_dict["state"].values():
            for name in param_state:
                _ = self.name_to_dtype_map[name]
        return state_dict

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
            beta1, beta2 = group["betas"]
            t = group["step"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                g = p.grad
                if group["weight_decay"] and not self.adam_w_mode:
                    g = g + group["weight_decay"] * p
                state["exp_avg"].mul_(beta1).add_(g, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = state["exp_avg"] / (1 - beta1 ** t)
                v_hat = state["exp_avg_sq"] / (1 - beta2 ** t)
                if group["weight_decay"] and self.adam_w_mode:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(m_hat, v_hat.sqrt().add_(group["eps"]), value=-group["lr"])


def _params():
    return [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]


def test_optimizer_state_layout_comes_from_the_class():
    from oc_megatron.training.checkpoint import prepare_optimizer_state_for_load

    fused = FusedAdamEmulation(_params(), lr=1e-3, weight_decay=0.1)
    prepare_optimizer_state_for_load(SimpleNamespace(optimizer=fused))
    for p in fused.param_groups[0]["params"]:
        assert set(fused.state[p]) == {"exp_avg", "exp_avg_sq"}
        assert fused.state[p]["exp_avg"].shape == p.shape and not fused.state[p]["exp_avg"].any()
    assert "step" not in fused.param_groups[0]  # the probe's step count did not leak into the real groups
    fused.state_dict()  # what Megatron-Core's DistributedOptimizer calls next: fine
    fused.state[fused.param_groups[0]["params"][0]]["step"] = torch.zeros(())  # what the old preparation added
    with pytest.raises(KeyError, match="step"):
        fused.state_dict()

    adam = torch.optim.AdamW(_params(), lr=1e-3)
    prepare_optimizer_state_for_load(SimpleNamespace(optimizer=adam))
    for p in adam.param_groups[0]["params"]:
        st = adam.state[p]
        assert set(st) == {"step", "exp_avg", "exp_avg_sq"}
        assert st["step"].dim() == 0 and float(st["step"]) == 0.0 and st["exp_avg_sq"].shape == p.shape
    assert st["step"] is not adam.state[adam.param_groups[0]["params"][0]]["step"]  # one tensor per parameter


def _use_fused_adam_layout() -> None:
    """Make Megatron-Core build its Adam as on a TE machine, with the emulation in place of TE's FusedAdam."""
    import megatron.core.optimizer as mopt
    import megatron.core.optimizer.distrib_optimizer as dopt

    mopt.Adam = dopt.Adam = FusedAdamEmulation
    mopt.USING_PYTORCH_OPTIMIZER = False
    dopt.HAVE_APEX_OR_TE, dopt.USING_TE_OPTIMIZER = True, True


def fused_adam_resume_worker(rank: int, world_size: int, base: dict, out_path: str) -> None:
    from oc_common.config import apply_overrides, validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training import checkpoint
    from oc_megatron.training.loop import run_training

    _use_fused_adam_layout()

    def run(name: str, *overrides: str):
        return run_training(validate_config(apply_overrides(json.loads(json.dumps(base)), list(overrides)),
                                            TrainConfig, name))

    root = Path(out_path).parent
    run("straight", f"output_dir={root / 'straight'}")
    run("first_half", f"output_dir={root / 'resumed'}", "train.exit_interval=2")
    result = run("second_half", f"output_dir={root / 'resumed'}")
    out = {"resumed_iteration": result.iteration}

    def old_preparation(optimizer):  # what checkpoint.py did before: a per-parameter step for every class
        for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
            for group in opt.optimizer.param_groups:
                for p in group["params"]:
                    st = opt.optimizer.state[p]
                    st.setdefault("exp_avg", torch.zeros_like(p.data))
                    st.setdefault("exp_avg_sq", torch.zeros_like(p.data))
                    st.setdefault("step", torch.zeros((), dtype=torch.float32))

    checkpoint.prepare_optimizer_state_for_load = old_preparation
    try:
        run("old_preparation", f"output_dir={root / 'old'}",
            f"checkpoint.load_from={root / 'resumed' / 'checkpoints' / 'iter_0000002'}")
        out["old_preparation"] = "no error"
    except KeyError as e:
        out["old_preparation"] = f"KeyError: {e}"
    Path(out_path).write_text(json.dumps(out))


def test_resume_with_the_fused_adam_state_layout_continues_exactly(tiny_data, tmp_path):
    base = tiny_train_config(tiny_data, tmp_path / "unused", train={"iters": 4},
                             checkpoint={"interval": 0, "save_final": True},
                             schedule={"warmup_steps": 1, "decay_steps": 1})
    out = tmp_path / "result.json"
    run_distributed_test(fused_adam_resume_worker, 1, base, str(out))
    result = json.loads(out.read_text())
    assert result["resumed_iteration"] == 4
    straight, resumed = read_losses(tmp_path / "straight"), read_losses(tmp_path / "resumed")
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):  # after the resume: Adam moments and the group step count came back
        assert resumed[step] == pytest.approx(straight[step], rel=1e-6), step
    assert result["old_preparation"] == "KeyError: 'step'"


# ---- _extra_state across layer specs ---------------------------------------------------------------------------------
def extra_state_worker(rank: int, world_size: int, root: str, out_path: str) -> None:
    """TE >= 2.0's RMSNorm (our final norm on the TE spec) has ``get_extra_state``; the local RMSNorm has not."""
    import pickle

    from megatron.core import dist_checkpointing
    from megatron.core.dist_checkpointing.serialization import load_sharded_metadata
    from torch.distributed.checkpoint import CheckpointException

    from oc_common.errors import CheckpointError
    from oc_megatron.models import specs
    from oc_megatron.models.cpu_compat import apply_cpu_shims
    from oc_megatron.models.opencoder import ModelConfig, build_model, transformer_config
    from oc_megatron.training.checkpoint import CheckpointSaver, TrainState, current_layout, load_checkpoint
    from oc_megatron.training.distributed import init_distributed, init_model_parallel, seed_everything

    class TEStyleRMSNorm(specs.RMSNorm):
        """Extra state as TE's modules write it: a uint8 tensor of pickled FP8 metadata."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.fp8_meta = {"amax_history": [0.0], "scale": 1.0}  # fresh

        def get_extra_state(self):
            return torch.tensor(list(pickle.dumps(self.fp8_meta)), dtype=torch.uint8)

        def set_extra_state(self, state):
            self.fp8_meta = pickle.loads(bytes(state.tolist()))

    apply_cpu_shims()
    init_distributed()
    init_model_parallel()
    seed_everything(0)
    model_cfg = ModelConfig.from_preset("tiny", num_layers=2)
    local_final_norm = specs.final_norm_class

    def build(te_style: bool, seed: int):
        specs.final_norm_class = (lambda backend: TEStyleRMSNorm) if te_style else local_final_norm
        try:
            return build_model(model_cfg, transformer_config(model_cfg), spec="local", seed=seed)
        finally:
            specs.final_norm_class = local_final_norm

    def save(chunks, name: str) -> Path:
        state = TrainState(layout=current_layout(), model=model_cfg.model_dump())
        return CheckpointSaver(Path(root) / name, "fully_reshardable").save(chunks, None, None, state)

    def same_weights(a, b) -> bool:
        sa, sb = a[0].state_dict(), b[0].state_dict()
        return all(torch.equal(sa[k], sb[k]) for k in sa if isinstance(sa[k], torch.Tensor) and "_extra" not in k)

    out: dict = {}
    trained = build(True, 1)
    trained[0].decoder.final_layernorm.fp8_meta = {"amax_history": [1.0, 2.0], "scale": 0.5}  # as after FP8 steps
    te_written = save(trained, "te_style")
    saved_keys = {key.split("/")[0] for key in load_sharded_metadata(str(te_written))}
    out["te_written_has_final_norm_extra_state"] = "decoder.final_layernorm._extra_state" in saved_keys

    local = build(False, 2)
    load_checkpoint(te_written, local)  # extra state the local model lacks: ignored
    out["te_to_local_same_weights"] = same_weights(local, build(True, 1))

    local_written = save(local, "local")
    te_model = build(True, 3)
    load_checkpoint(local_written, te_model)  # extra state the checkpoint lacks: the module keeps its own
    out["local_to_te_same_weights"] = same_weights(te_model, local)
    out["local_to_te_extra_state"] = te_model[0].decoder.final_layernorm.fp8_meta
    load_checkpoint(te_written, te_model)
    out["te_to_te_extra_state"] = te_model[0].decoder.final_layernorm.fp8_meta

    try:  # Megatron-Core's default strict load of the same pair: the failure the first GPU run would have hit
        state = {"model": te_model[0].sharded_state_dict()}
        dist_checkpointing.load(state, str(local_written))
        out["plain_load"] = "no error"
    except (Exception, CheckpointException) as e:  # noqa: BLE001 - DCP's CheckpointException is a BaseException
        out["plain_load"] = f"{type(e).__name__}: {e}"

    biased = ModelConfig.from_preset("tiny", num_layers=2, qkv_bias=True)  # a weight the checkpoint lacks
    chunks = build_model(biased, transformer_config(biased), spec="local", seed=4)
    try:
        load_checkpoint(local_written, chunks)
        out["missing_weight"] = "no error"
    except CheckpointError as e:
        out["missing_weight"] = str(e)
    Path(out_path).write_text(json.dumps(out))


def test_extra_state_checkpoints_load_across_layer_specs(tmp_path):
    out = tmp_path / "result.json"
    run_distributed_test(extra_state_worker, 1, str(tmp_path), str(out))
    r = json.loads(out.read_text())
    assert r["te_written_has_final_norm_extra_state"]
    assert r["te_to_local_same_weights"] and r["local_to_te_same_weights"]
    assert r["local_to_te_extra_state"] == {"amax_history": [0.0], "scale": 1.0}  # not in the checkpoint: fresh
    assert r["te_to_te_extra_state"] == {"amax_history": [1.0, 2.0], "scale": 0.5}  # in it: loaded
    assert "final_layernorm._extra_state" in r["plain_load"]
    assert "lacks 1 tensors" in r["missing_weight"] and "linear_qkv.bias" in r["missing_weight"]


# ---- FLOPs -----------------------------------------------------------------------------------------------------------
def megatron_lm_flops(args: SimpleNamespace, batch_size: int) -> float:
    """Megatron-LM's ``num_floating_point_operations`` (megatron/training/training.py, ``transformer_flops``), dense
    GQA branch without MoE, MTP or linear attention, transcribed term by term with its own names."""
    forward_backward_expansion_factor = 3
    fma_expansion_factor = 2
    ffn_expansion_factor = 3 if args.swiglu else 2
    query_projection_size = args.kv_channels * args.num_attention_heads
    key_projection_size = args.kv_channels * args.num_query_groups
    value_projection_size = args.kv_channels * args.num_query_groups
    standard_self_attn_term = (
        forward_backward_expansion_factor * fma_expansion_factor * (
            args.hidden_size * (query_projection_size + key_projection_size + value_projection_size)
            + query_projection_size * args.seq_length / 2 * 2
            + query_projection_size * args.hidden_size))
    return batch_size * args.seq_length * (
        forward_backward_expansion_factor * fma_expansion_factor * args.hidden_size
        * (args.ffn_hidden_size * ffn_expansion_factor) * args.num_layers
        + standard_self_attn_term * args.num_layers
        + forward_backward_expansion_factor * fma_expansion_factor * args.hidden_size * args.padded_vocab_size)


@pytest.mark.parametrize("preset, tp", [("opencoder-1.5b", 1), ("opencoder-1.5b", 2), ("opencoder-8b", 1),
                                        ("opencoder-8b", 8)])
def test_flops_per_token_is_megatron_lms(preset, tp):
    from oc_megatron.models.opencoder import PRESETS

    m = PRESETS[preset]
    padded = {1: 96640, 2: 96768, 8: 97280}[tp]  # Megatron-LM's _vocab_size_with_padding: multiples of 128 x TP
    assert m.padded_vocab_size(tp) == padded
    args = SimpleNamespace(num_layers=m.num_layers, hidden_size=m.hidden_size, kv_channels=m.head_dim,
                           num_attention_heads=m.num_attention_heads, num_query_groups=m.num_query_groups,
                           ffn_hidden_size=m.ffn_hidden_size, seq_length=m.seq_length, swiglu=True,
                           padded_vocab_size=padded)
    assert m.flops_per_token(m.seq_length, tp) == pytest.approx(megatron_lm_flops(args, 8) / (8 * m.seq_length),
                                                                rel=1e-12)
    # the attention scores over the causal half: 6 * L * s * q per token, not 12 (the full square, which made the
    # reported MFU 10-13% too high at these presets' context lengths)
    full_square = m.flops_per_token(m.seq_length, tp) + 6 * m.num_layers * m.seq_length * m.hidden_size
    assert 1.10 < full_square / m.flops_per_token(m.seq_length, tp) < 1.14


# ---- fusions ---------------------------------------------------------------------------------------------------------
def test_fusions_are_those_the_specs_can_use():
    from oc_megatron.models.opencoder import PRESETS, kernel_fusions, transformer_config

    assert not any(kernel_fusions(cuda=False, te=False).values())
    local_gpu, te_gpu = kernel_fusions(cuda=True, te=False), kernel_fusions(cuda=True, te=True)
    assert not local_gpu["masked_softmax_fusion"] and not te_gpu["masked_softmax_fusion"]  # never: see its doc
    assert not local_gpu["apply_rope_fusion"] and te_gpu["apply_rope_fusion"]  # TE's kernel
    assert local_gpu["bias_activation_fusion"] and local_gpu["cross_entropy_loss_fusion"]  # Megatron-Core's own
    tc = transformer_config(PRESETS["tiny"])  # this machine: no CUDA, nothing fused
    assert not any(getattr(tc, flag) for flag in local_gpu)


# ---- param sync before save ------------------------------------------------------------------------------------------
def overlap_save_worker(rank: int, world_size: int, base: dict, runs: dict) -> None:
    from oc_common.config import apply_overrides, validate_config
    from oc_megatron.config import TrainConfig
    from oc_megatron.training import checkpoint
    from oc_megatron.training.loop import run_training

    def run(name: str, *overrides: str) -> None:
        run_training(validate_config(apply_overrides(json.loads(json.dumps(base)), list(overrides)), TrainConfig,
                                     name))

    run("no_overlap", f"output_dir={runs['no_overlap']}")
    run("overlap", f"output_dir={runs['overlap']}", "parallel.overlap_param_gather=true",
        "parallel.overlap_grad_reduce=true")
    checkpoint.sync_params_before_save = lambda ddp_models: None  # what saving did before
    run("overlap_unsynced", f"output_dir={runs['overlap_unsynced']}", "parallel.overlap_param_gather=true",
        "parallel.overlap_grad_reduce=true")


def test_overlap_param_gather_saves_the_parameters_after_the_last_step(tiny_data, tmp_path):
    from test_convert_roundtrip import read_hf_tensors

    from oc_megatron.convert.to_hf import to_hf

    base = tiny_train_config(tiny_data, tmp_path / "unused", train={"iters": 2, "micro_batch_size": 2,
                                                                     "global_batch_size": 4},
                             checkpoint={"interval": 0, "save_final": True},
                             schedule={"warmup_steps": 1, "decay_steps": 0})
    runs = {name: str(tmp_path / name) for name in ("no_overlap", "overlap", "overlap_unsynced")}
    run_distributed_test(overlap_save_worker, 2, base, runs)
    weights = {}
    for name, d in runs.items():
        to_hf(Path(d) / "checkpoints", tmp_path / f"hf_{name}", no_tokenizer=True)
        weights[name] = read_hf_tensors(tmp_path / f"hf_{name}")
    assert read_losses(runs["overlap"]) == pytest.approx(read_losses(runs["no_overlap"]), rel=1e-6)
    for k in weights["no_overlap"]:
        assert torch.allclose(weights["overlap"][k], weights["no_overlap"][k], rtol=1e-6, atol=1e-7), k
    stale = [k for k in weights["no_overlap"] if not torch.allclose(weights["overlap_unsynced"][k],
                                                                    weights["no_overlap"][k], rtol=1e-6, atol=1e-7)]
    assert stale, "without the forced gather the checkpoint should hold some one-step-old shards"


# ---- a broken Transformer Engine is loud -----------------------------------------------------------------------------
@pytest.fixture
def broken_te(tmp_path, monkeypatch):
    """An installed ``transformer_engine`` whose PyTorch extension fails to import (a wrong build, as after pip
    replaced an NGC container's torch), on a machine that reports a CUDA device."""
    from oc_megatron.models import specs

    pkg = tmp_path / "site" / "transformer_engine"
    (pkg / "pytorch").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "pytorch" / "__init__.py").write_text(
        "raise ImportError('transformer_engine_torch: undefined symbol: _ZN3c104cuda9SetDeviceEi')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(specs, "_TE_IMPORT_ERROR", [])
    for name in [m for m in sys.modules if m.startswith("transformer_engine")]:
        monkeypatch.delitem(sys.modules, name)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(specs.log.name)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    for name in [m for m in sys.modules if m.startswith("transformer_engine")]:
        del sys.modules[name]


def test_a_broken_transformer_engine_is_loud(broken_te, tiny_data, tmp_path):
    from oc_common.config import validate_config
    from oc_common.errors import ConfigError
    from oc_megatron.config import TrainConfig
    from oc_megatron.models import specs

    assert specs.te_available() is False
    warnings = [r.getMessage() for r in broken_te if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "undefined symbol" in warnings[0] and "falls back to local" in warnings[0]
    assert specs.te_available() is False and len(broken_te) == 1  # warned once, not at every call
    assert specs.resolve_spec_backend("auto", announce=False) == "local"
    with pytest.raises(ValueError, match="does not import: ImportError: transformer_engine_torch: undefined symbol"):
        specs.resolve_spec_backend("te")
    cfg = validate_config(tiny_train_config(tiny_data, tmp_path, precision={"layer_spec": "te"}), TrainConfig, "te")
    with pytest.raises(ConfigError, match=r"precision\.layer_spec: 'te' needs .*undefined symbol"):
        cfg.check(world_size=1, te=specs.te_available())


def test_transformer_engine_not_installed_is_quiet(monkeypatch):
    import importlib.util

    from oc_megatron.models import specs

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "transformer_engine" else real_find_spec(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert specs.te_available() is False and specs.te_import_error() is None
    assert specs.te_unavailable_reason() == "transformer_engine is not installed"
