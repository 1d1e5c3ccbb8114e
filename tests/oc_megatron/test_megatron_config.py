"""Bad training configs fail at start with an error naming the key (no process group, no model needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from megatron_test_helpers import tiny_train_config

from oc_common.config import ConfigError, validate_config
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
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "train", str(path), "parallel.tensor=3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "parallel.tensor: 3 does not divide model.num_attention_heads (4)" in proc.stderr
    assert "Traceback" not in proc.stderr
