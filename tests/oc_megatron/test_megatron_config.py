"""Bad training configs fail at start with an error naming the key (no process group, no model needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from megatron_test_helpers import tiny_train_config

from oc_common.config import validate_config
from oc_common.errors import ConfigError
from oc_megatron.config import TrainConfig
from oc_megatron.models.opencoder import PRESETS, ModelConfig


def make(tiny_data, tmp_path, **sections) -> TrainConfig:
    return validate_config(tiny_train_config(tiny_data, tmp_path / "run", **sections), TrainConfig)


def test_presets_have_opencoders_shapes():
    m = PRESETS["opencoder-1.5b"]
    assert (m.num_layers, m.hidden_size, m.num_attention_heads, m.num_query_groups, m.head_dim, m.ffn_hidden_size,
            m.vocab_size, m.seq_length, m.rotary_base) == (24, 2240, 14, 14, 160, 6144, 96640, 4096, 10000.0)
    m = PRESETS["opencoder-8b"]
    assert (m.num_layers, m.hidden_size, m.num_attention_heads, m.num_query_groups, m.head_dim, m.ffn_hidden_size,
            m.vocab_size, m.seq_length, m.rotary_base) == (32, 4096, 32, 8, 128, 14336, 96640, 8192, 500000.0)
    # Parameter counts of the released checkpoints: 1.91B and 7.77B.
    assert PRESETS["opencoder-1.5b"].num_parameters() == pytest.approx(1.91e9, rel=0.01)
    assert PRESETS["opencoder-8b"].num_parameters() == pytest.approx(7.77e9, rel=0.01)


def test_preset_overrides_and_shape_checks():
    m = ModelConfig.from_preset("opencoder-1.5b", num_layers=4)
    assert (m.num_layers, m.hidden_size) == (4, 2240)
    with pytest.raises(ValueError, match="unknown preset"):
        ModelConfig.from_preset("opencoder-3b")
    with pytest.raises(ValueError, match="num_query_groups"):
        ModelConfig.from_preset("tiny", num_query_groups=3)


def test_transformer_config_is_llama_shaped():
    from oc_megatron.models.opencoder import transformer_config

    tc = transformer_config(PRESETS["opencoder-8b"], tensor_parallel=2, sequence_parallel=True)
    assert (tc.num_query_groups, tc.kv_channels, tc.normalization, tc.gated_linear_unit, tc.add_bias_linear) == (
        8, 128, "RMSNorm", True, False)
    assert tc.layernorm_epsilon == 1e-5 and tc.tensor_model_parallel_size == 2 and tc.sequence_parallel


def test_tp_must_divide_the_heads(tiny_data, tmp_path):
    cfg = make(tiny_data, tmp_path, model={"preset": "opencoder-1.5b"}, parallel={"tensor": 4})
    with pytest.raises(ConfigError, match=r"parallel\.tensor: 4 does not divide model\.num_attention_heads \(14\)"):
        cfg.check(world_size=4)
    make(tiny_data, tmp_path, model={"preset": "opencoder-1.5b"}, parallel={"tensor": 2}).check(world_size=2)


def test_global_batch_must_divide_by_micro_batch_times_dp(tiny_data, tmp_path):
    cfg = make(tiny_data, tmp_path, train={"micro_batch_size": 4, "global_batch_size": 8})
    cfg.check(world_size=2)  # DP 2: 8 = 4 x 2 x 1
    with pytest.raises(ConfigError, match=r"train\.global_batch_size: 8 is not divisible by .* \(4 x 4\)"):
        cfg.check(world_size=4)


def test_layout_checks(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"parallel\.sequence_parallel"):
        make(tiny_data, tmp_path, parallel={"sequence_parallel": True}).check(1)
    with pytest.raises(ConfigError, match=r"parallel\.pipeline: model\.num_layers \(4\)"):
        make(tiny_data, tmp_path, parallel={"pipeline": 3}).check(3)
    with pytest.raises(ConfigError, match=r"parallel\.virtual_pipeline"):
        make(tiny_data, tmp_path, parallel={"virtual_pipeline": 2}).check(1)


def test_missing_data_prefix(tiny_data, tmp_path):
    cfg = make(tiny_data, tmp_path, data={"blend": [{"path": str(tiny_data["prefix"])},
                                                    {"path": str(tmp_path / "nope"), "weight": 0.5}]})
    with pytest.raises(ConfigError, match=r"data\.blend\[1\]\.path: .*nope\.bin and \.idx not found"):
        cfg.check_data()


def test_tokenizer_larger_than_model_vocab(tiny_data, tmp_path):
    cfg = make(tiny_data, tmp_path, model={"preset": "tiny", "vocab_size": 512})
    with pytest.raises(ConfigError, match=r"data\.tokenizer: vocabulary of 1024 .* model\.vocab_size \(512\)"):
        cfg.check_data()
    assert make(tiny_data, tmp_path).check_data() == 0  # <|endoftext|> is id 0


def test_fp8_without_transformer_engine(tiny_data, tmp_path):
    cfg = make(tiny_data, tmp_path, precision={"fp8": "hybrid"})
    with pytest.raises(ConfigError, match=r"precision\.fp8: 'hybrid' needs Transformer Engine and a CUDA GPU"):
        cfg.check(world_size=1, cuda=False, te=False)


def test_unknown_key_and_bad_value_name_the_key(tiny_data, tmp_path):
    data = tiny_train_config(tiny_data, tmp_path, optimizer={"lrr": 1e-3})
    with pytest.raises(ConfigError, match=r"optimizer\.lrr: unknown key"):
        validate_config(data, TrainConfig)
    with pytest.raises(ConfigError, match=r"precision\.fp8"):
        validate_config(tiny_train_config(tiny_data, tmp_path, precision={"fp8": "e5m2"}), TrainConfig)


def test_cli_reports_a_bad_config_in_one_line(tiny_data, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_train_config(tiny_data, tmp_path / "run")))
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "train", str(path), "-s", "parallel.tensor=3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "parallel.tensor: 3 does not divide model.num_attention_heads (4)" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- annealing / SFT configs ----------------------------------------------------------------------------------------
def test_annealing_blend_weights_default_to_opencoders_token_counts(tiny_data, tmp_path):
    p = str(tiny_data["prefix"])
    cfg = make(tiny_data, tmp_path, data={"blend": [
        {"name": "original", "path": p}, {"name": "algorithmic", "path": p},
        {"name": "synthetic_snippets", "path": p}, {"name": "synthetic_textbooks", "path": p, "weight": 2.0},
        {"path": p}]})
    assert [s.weight for s in cfg.data.blend] == [84.0, 12.44, 2.71, 2.0, 1.0]  # explicit weights win


def test_init_from_states_every_kept_piece(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match=r"checkpoint\.init_from\.keep_optimizer: Field required"):
        make(tiny_data, tmp_path, checkpoint={"init_from": {"path": "x", "keep_lr": True}})
    shorthand = make(tiny_data, tmp_path, checkpoint={"init_from": "ckpt/dir"}).checkpoint.init_from
    assert shorthand.path == "ckpt/dir" and not any(shorthand.kept.values())  # a bare path: weights only
    with pytest.raises(ConfigError, match=r"load_from .*init_from .*exclude each other"):
        make(tiny_data, tmp_path, checkpoint={"init_from": "a", "load_from": "b"})


def test_init_from_missing_iteration_lists_the_available_ones(reference, tiny_data, tmp_path):
    from oc_megatron.training.start import plan_start

    init = {"path": str(reference["dir"] / "checkpoints"), "iteration": 5, "keep_optimizer": True, "keep_lr": True,
            "keep_iteration": False, "keep_data_position": False}
    with pytest.raises(ConfigError, match=r"init_from\.iteration: .*iter_0000005 is not a checkpoint \(available .*"
                                          r"iter_0000004, iter_0000008, iter_0000012\)"):
        plan_start(make(tiny_data, tmp_path, checkpoint={"init_from": init}))
    init["iteration"] = 8
    start = plan_start(make(tiny_data, tmp_path, checkpoint={"init_from": init}))
    assert (start.kind, start.saved.iteration, start.iteration, start.peak_lr) == ("init", 8, 0, 3e-3)


def test_data_is_a_blend_or_sft_and_sft_derives_iters(tiny_data, sft_data, tmp_path):
    sft = {"tokenizer": str(tiny_data["tokenizer"]), "sft": {"paths": [str(sft_data["stage1"])]}}
    data = tiny_train_config(tiny_data, tmp_path)
    data["data"] = sft
    del data["train"]["iters"]
    cfg = validate_config(data, TrainConfig)
    assert cfg.train.iters is None and cfg.data.sft.epochs == 1
    cfg.check_data()
    with pytest.raises(ConfigError, match=r"exactly one of data\.blend .* and data\.sft"):
        validate_config({**data, "data": {**sft, "blend": [{"path": "x"}]}}, TrainConfig)
    with pytest.raises(ConfigError, match=r"train\.iters: required for pretraining and annealing"):
        validate_config({**data, "data": tiny_train_config(tiny_data, tmp_path)["data"]}, TrainConfig)
    with pytest.raises(ConfigError, match=r"data\.sft\.paths\[0\]: .*nope\.bin.*nope\.loss_mask\.idx not found"):
        validate_config({**data, "data": {**sft, "sft": {"paths": [str(tmp_path / "nope")]}}},
                        TrainConfig).check_data()


@pytest.mark.parametrize("name, world_size", [("anneal_tiny", 1), ("anneal_opencoder_1p5b", 256),
                                              ("sft_tiny_stage1", 1), ("sft_tiny_stage2", 1),
                                              ("sft_stage1", 64), ("sft_stage2", 64)])
def test_example_recipes_are_valid(name, world_size):
    from pathlib import Path

    from oc_megatron.config import load_train_config

    cfg = load_train_config(Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml")
    cfg.check(world_size=world_size, cuda=True, te=True)
    init = cfg.checkpoint.init_from
    if name.startswith("anneal"):  # OpenCoder: keep the optimizer, decay from the checkpoint LR to 1e-5
        assert init.keep_optimizer and init.keep_lr and not init.keep_data_position
        assert cfg.optimizer.min_lr == 1e-5 and cfg.schedule.decay_steps == cfg.train.iters
        assert [(s.name, s.weight) for s in cfg.data.blend] == [
            ("original", 84.0), ("algorithmic", 12.44), ("synthetic_snippets", 2.71), ("synthetic_textbooks", 0.91)]
    else:  # SFT: the weights only; warmup then cosine
        assert not any(init.kept.values()) and cfg.schedule.style == "cosine"
    if name in ("sft_stage1", "sft_stage2"):  # OpenCoder's two stages
        want = {"sft_stage1": (2e-5, 4096, 1), "sft_stage2": (5e-5, 512, 3)}[name]
        assert (cfg.optimizer.lr, cfg.train.global_batch_size, cfg.data.sft.epochs) == want
        assert cfg.schedule.warmup_steps == 100
