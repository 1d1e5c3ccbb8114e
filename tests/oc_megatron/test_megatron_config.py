"""Bad training configs fail at start with an error naming the key (no process group, no model needed)."""

from __future__ import annotations

import math
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
    assert [s.weight for s in cfg.data.blend] == [84.21, 12.44, 2.71, 2.0, 1.0]  # explicit weights win


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


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"
SCALE_RECIPES = ["pretrain_opencoder_1p5b", "pretrain_opencoder_8b", "anneal_opencoder_1p5b", "anneal_opencoder_8b",
                 "sft_stage1", "sft_stage2"]


@pytest.mark.parametrize("name", ["anneal_tiny", "sft_tiny_stage1", "sft_tiny_stage2", *SCALE_RECIPES])
def test_example_recipes_are_valid(name):
    from oc_megatron.config import load_train_config

    cfg = load_train_config(EXAMPLES / f"{name}.yaml")
    world_size = cfg.cluster.world_size if cfg.cluster else 1
    assert (cfg.cluster is not None) == (name in SCALE_RECIPES)  # every paper-scale recipe states its cluster
    cfg.check(world_size=world_size, cuda=True, te=True)
    init = cfg.checkpoint.init_from
    if name.startswith("pretrain"):  # OpenCoder: WSD, 2,000 warmup steps, 3e-4 held (annealing decays)
        assert init is None and (cfg.optimizer.lr, cfg.schedule.style, cfg.schedule.warmup_steps,
                                 cfg.schedule.decay_steps) == (3e-4, "wsd", 2000, 0)
    elif name.startswith("anneal"):  # OpenCoder: keep the optimizer, decay from the checkpoint LR to 1e-5
        assert init.keep_optimizer and init.keep_lr and not init.keep_data_position
        assert cfg.optimizer.min_lr == 1e-5 and cfg.schedule.decay_steps == cfg.train.iters
        assert [(s.name, s.weight) for s in cfg.data.blend] == [
            ("original", 84.21), ("algorithmic", 12.44), ("synthetic_snippets", 2.71), ("synthetic_textbooks", 0.91)]
    else:  # SFT: the weights only; warmup then cosine; unpacked, as released
        assert not any(init.kept.values()) and cfg.schedule.style == "cosine"
        assert not cfg.data.sft.packing and cfg.data.sft.too_long == "truncate"
    if name in ("sft_stage1", "sft_stage2"):  # OpenCoder's two stages, as its released scripts run them
        want = {"sft_stage1": (2e-5, 4096, 1216, 1), "sft_stage2": (5e-5, 512, 1500, 3)}[name]
        assert (cfg.optimizer.lr, cfg.train.global_batch_size, cfg.seq_length, cfg.data.sft.epochs) == want
        assert cfg.schedule.warmup_steps == 100 and cfg.optimizer.min_lr == 0.0


def _plan_json(config, *overrides: str) -> dict:
    import json

    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "train", str(config), "--plan", "--json",
                           *(x for o in overrides for x in ("-s", o))], capture_output=True, text=True, timeout=240,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_plan_shows_opencoders_sft_stages_and_pretraining_phases():
    """issue 16, done when: the plans of the shipped recipes show OpenCoder's numbers (docs/opencoder.md §4, §6)."""
    from oc_megatron.config import load_train_config
    from oc_megatron.training.plan import build_plan

    stage1 = _plan_json(EXAMPLES / "sft_stage1.yaml")  # through the CLI: --plan --json
    for key in ("model", "parallel", "phases", "train_steps", "total_tokens", "lr", "min_lr", "warmup_steps",
                "schedule", "packing", "epochs"):
        assert key in stage1, key
    ph = stage1["phases"]
    assert [(p["from_step"], p["global_batch_samples"], p["seq_length"], p["tokens_per_step"]) for p in ph] == [
        (0, 4096, 1216, 4096 * 1216)]
    assert (stage1["lr"], stage1["epochs"], stage1["packing"], stage1["warmup_steps"]) == (2e-5, 1, "none", 100)
    # The SFT data is not on this machine: the steps and tokens it decides are unknown, with the reason.
    assert stage1["train_steps"] is None and stage1["total_tokens"] is None
    assert "not there" in stage1["unknown"]["train_steps"] and "sft_realuser_instruct" in stage1["unknown"]["data"]
    assert stage1["parallel"]["world_size"] == 64 and stage1["parallel"]["data"] == 32
    assert ph[0]["num_microbatches"] == 16 and ph[0]["flops_per_step"] > 0

    plans = {name: build_plan(load_train_config(EXAMPLES / f"{name}.yaml"))
             for name in ("sft_stage2", "pretrain_opencoder_8b", "pretrain_opencoder_1p5b")}
    stage2 = plans["sft_stage2"]
    assert [(p["global_batch_samples"], p["seq_length"]) for p in stage2["phases"]] == [(512, 1500)]
    assert (stage2["lr"], stage2["epochs"], stage2["packing"]) == (5e-5, 3, "none")
    p8 = plans["pretrain_opencoder_8b"]
    assert [(p["from_step"], p["global_batch_samples"], p["seq_length"], p["tokens_per_step"])
            for p in p8["phases"]] == [(0, 2048, 4096, 2048 * 4096), (130_000, 1024, 8192, 1024 * 8192)]
    assert [(p["to_step"], p["steps"]) for p in p8["phases"]] == [(130_000, 130_000), (300_000, 170_000)]
    assert p8["train_steps"] == 300_000 and p8["total_tokens"] == 300_000 * 8_388_608  # 2.52T: OpenCoder's 2.5T
    assert p8["parallel"]["tensor"] == 2 and p8["parallel"]["world_size"] == 512
    assert [p["num_microbatches"] for p in p8["phases"]] == [8, 4]
    assert (p8["lr"], p8["min_lr"], p8["warmup_steps"], p8["schedule"]["style"]) == (3e-4, 1e-5, 2000, "wsd")
    p15 = plans["pretrain_opencoder_1p5b"]
    assert [(p["global_batch_samples"], p["seq_length"]) for p in p15["phases"]] == [(1024, 4096)]
    assert p15["total_tokens"] == pytest.approx(2e12, rel=1e-5) and p15["packing"] == "concatenated"
    # FLOPs per step: Megatron's count of the 8B (about 6 x 7B x 8.4M tokens + attention).
    assert p8["phases"][0]["flops_per_step"] == pytest.approx(
        PRESETS["opencoder-8b"].flops_per_token(4096, 2) * 2048 * 4096)
    assert 3.5e17 < p8["phases"][0]["flops_per_step"] < 4.5e17


def test_plan_computes_data_dependent_numbers_when_the_data_is_there(tiny_data, sft_data, tmp_path):
    from oc_megatron.data.sft import SFTSamples
    from oc_megatron.training.plan import build_plan, format_plan

    data = tiny_train_config(tiny_data, tmp_path)
    data["data"] = {"tokenizer": str(tiny_data["tokenizer"]), "sft": {"paths": [str(sft_data["stage2"])], "epochs": 3}}
    data["train"] = {"micro_batch_size": 1, "global_batch_size": 5, "seq_length": 120}
    data["schedule"] = {"style": "cosine", "warmup_steps": 1}
    plan = build_plan(validate_config(data, TrainConfig))
    samples = SFTSamples([str(sft_data["stage2"])], 120)
    assert plan["train_steps"] == 3 * math.ceil(len(samples) / 5) and "train_steps" not in plan["unknown"]
    assert plan["total_tokens"] == 3 * samples.stats.tokens
    assert plan["data"]["truncated"] == samples.stats.truncated > 0  # cut at seq_length tokens, as released
    assert plan["data"]["formats"][0]["target"] == "opencoder"
    assert "samples per epoch" in format_plan(plan)
    pre = build_plan(make(tiny_data, tmp_path))  # pretraining: documents and passes per source
    src = pre["data"]["sources"][0]
    assert src["splits"]["train"]["documents"] + src["splits"]["validation"]["documents"] == src["documents"]
    assert src["passes"] == pytest.approx(12 * 16 * 128 / src["splits"]["train"]["tokens"])


def test_phases_are_validated(tiny_data, tmp_path):
    ph = [{"from_step": 0, "global_batch_size": 16, "seq_length": 64},
          {"from_step": 6, "global_batch_size": 8, "seq_length": 128}]
    cfg = make(tiny_data, tmp_path, train={"global_batch_size": None, "phases": ph})
    assert [(p.from_step, p.global_batch_size, p.seq_length) for p in cfg.phases] == [(0, 16, 64), (6, 8, 128)]
    assert cfg.phase_at(5).seq_length == 64 and cfg.phase_at(6).seq_length == 128
    with pytest.raises(ConfigError, match=r"train\.phases gives each phase's global_batch_size"):
        make(tiny_data, tmp_path, train={"phases": ph})
    with pytest.raises(ConfigError, match="first phase must have from_step 0"):
        make(tiny_data, tmp_path, train={"global_batch_size": None, "phases": ph[1:]})
    with pytest.raises(ConfigError, match=r"train\.phases\[1\]\.global_batch_size: 8 is not divisible"):
        make(tiny_data, tmp_path, train={"global_batch_size": None, "phases": ph}).check(world_size=4)
    with pytest.raises(ConfigError, match=r"train\.phases\[1\]\.from_step: 20 is not below train\.iters"):
        make(tiny_data, tmp_path, train={"global_batch_size": None,
                                         "phases": [ph[0], {**ph[1], "from_step": 20}]}).check(world_size=1)


def test_a_split_without_documents_is_refused_before_any_work(tiny_data, tmp_path):
    """issue 13: the README's 5-document preprocess output trained with pretrain_tiny.yaml's 98,2,0 split spun forever
    in Megatron-Core's GPTDataset; now it is one line naming the key and the numbers, before any work."""
    import time

    from oc_megatron.data.preprocess import preprocess

    five = tmp_path / "five.jsonl"
    five.write_text("".join(line + "\n" for line in tiny_data["corpus"].read_text().splitlines()[:5]))
    preprocess(five, tmp_path / "tok" / "curated", tiny_data["tokenizer"], append_eod=True, progress=False)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "oc_megatron.cli", "train", str(EXAMPLES / "pretrain_tiny.yaml"),
                           "-s", f"data.blend=[{{path: {tmp_path / 'tok' / 'curated'}, weight: 1.0}}]",
                           "-s", f"data.tokenizer={tiny_data['tokenizer']}", "-s", f"output_dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: data.split: '98,2,0' leaves data.blend[0]") and "5 documents" in line
    assert "0 documents in the validation split" in line and "100,0,0" in line
    assert not (tmp_path / "run").exists()  # refused before anything was written
    print(f"refused in {time.perf_counter() - t0:.1f} s: {line}")
    # The same data with no validation split trains; with a split for validation of its own, too.
    ok = make(tiny_data, tmp_path, data={"blend": [{"path": str(tmp_path / "tok" / "curated")}], "split": "100,0,0"},
              train={"eval_interval": 0})
    ok.check_data()
    tiny = {"blend": [{"path": str(tmp_path / "tok" / "curated")}], "split": "98,2,0",
            "valid_blend": [{"path": str(tiny_data["prefix"])}]}
    make(tiny_data, tmp_path, data=tiny).check_data()
